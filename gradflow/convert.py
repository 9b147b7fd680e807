"""``gradflow.convert(model)``: swap other libraries' neurons for gradflow's (see :mod:`gradflow.adapters`).

This module is itself callable, so ``gradflow.convert(model)`` works whether or not anything ran
``import gradflow.convert`` (which binds the module, not the function, to ``gradflow.convert``).
"""

from __future__ import annotations

import sys
import types

from .adapters import convert

__all__ = ["convert"]


class _CallableModule(types.ModuleType):
    """A module object that forwards calls to :func:`gradflow.adapters.convert`."""

    def __call__(self, model):
        return convert(model)


sys.modules[__name__].__class__ = _CallableModule
