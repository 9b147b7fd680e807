"""The README's "Your own network" examples run as printed (SpikingJelly and snnTorch are real imports)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks(title: str) -> list:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


BLOCKS = _section_blocks("Your own network")


def test_the_section_has_both_examples():
    assert len(BLOCKS) == 2
    assert "spikingjelly" in BLOCKS[0] and "snntorch" in BLOCKS[1]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    pytest.importorskip("spikingjelly" if index == 0 else "snntorch")
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)  # noqa: S102 - our own README
    assert capsys.readouterr().out.strip()  # each example prints what it recorded
