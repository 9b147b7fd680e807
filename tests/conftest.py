"""Shared test fixtures.

``chromium``: the path of a headless Chromium (or Chrome) for tests that render a report page. Tests
never install a browser themselves: ``.ci/run`` installs Debian's ``chromium`` before the suite runs and
exports its path as ``GRADFLOW_CHROMIUM``; on a machine without one the tests that ask for it skip.
Tests that need it also carry the ``browser`` marker, so ``pytest -m "not browser"`` leaves them out.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

#: Executable names tried on PATH, in order, when ``GRADFLOW_CHROMIUM`` is not set.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: renders a page in headless Chromium (skipped when none is on PATH)"
    )


def find_chromium():
    """The browser named by ``GRADFLOW_CHROMIUM`` if it is executable, else the first of
    :data:`BROWSER_NAMES` on PATH, else None."""
    given = os.environ.get("GRADFLOW_CHROMIUM")
    if given:
        path = shutil.which(given)
        if path:
            return path
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    """Path of a headless-capable Chromium; skips the test when there is none (nothing is installed)."""
    path = find_chromium()
    if path is None:
        pytest.skip("no headless Chromium on PATH (.ci/run installs Debian's chromium; "
                    "or set GRADFLOW_CHROMIUM to a browser executable)")
    return path


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the rendezvous of the 2-process gloo tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
