"""Analog forwards run outside ``torch.compile``, without importing TorchDynamo up front.

The chip is numpy/Numba, which TorchDynamo cannot trace, so every analog layer's ``forward`` is
wrapped in ``torch.compiler.disable``: a compiled model breaks its graph at each analog layer
and runs the layer as it is (same draws, same bits).  ``torch.compiler.disable`` imports
``torch._dynamo``, a heavy import, in every script, CLI call and worker process, compiled or
not.  Everything that traces with TorchDynamo imports
``torch._dynamo`` first, so :func:`run_eagerly` wraps a class's ``forward`` at once when it is
already imported, and otherwise as soon as it finishes importing (an import hook that removes
itself after that one import).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

import torch

__all__ = ["run_eagerly"]

_DYNAMO = "torch._dynamo"
_PENDING: list[type] = []
_LOCK = threading.Lock()


def _disable(cls: type) -> None:
    setattr(cls, "forward", torch.compiler.disable(cls.__dict__["forward"]))  # noqa: B010 - a class without a declared forward


def _dynamo_loaded() -> None:
    with _LOCK:
        pending = list(_PENDING)
        _PENDING.clear()
    for cls in pending:
        _disable(cls)


class _AfterDynamoImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the import of ``torch._dynamo`` it steps aside, lets the normal
    finders locate the module, and has its loader call :func:`_dynamo_loaded` once the module
    body has run."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _DYNAMO:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _dynamo_loaded()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # wraps this one loader's method
        return spec


_HOOK = _AfterDynamoImport()


def run_eagerly(cls: type) -> None:
    """Wrap ``cls.forward`` (defined in ``cls`` itself) in ``torch.compiler.disable``, now if
    TorchDynamo is loaded, else when it is."""
    if "forward" not in cls.__dict__:
        return
    with _LOCK:
        if _DYNAMO not in sys.modules:
            _PENDING.append(cls)
            if _HOOK not in sys.meta_path:
                sys.meta_path.insert(0, _HOOK)
            return
    _disable(cls)
