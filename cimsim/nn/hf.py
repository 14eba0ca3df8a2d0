"""HuggingFace transformers' ``Conv1D`` (GPT-2's, GPT's projections) on the chip: ``AnalogConv1D``.

``transformers.pytorch_utils.Conv1D(nf, nx)`` is a linear layer with its weight stored transposed,
``W [nx, nf] = [in, out]``: ``y = x W + b``. Its analog twin puts ``W^T [out, in]`` on the crossbar
(``weight_matrices``) and keeps the Parameter as it is, so the state dict and HF checkpoints
still load both ways and the gradient reaches ``W`` through the transpose.

transformers is never imported here: :func:`conv1d_class` only looks in ``sys.modules`` (a model
holding a ``Conv1D`` has imported it already), and the analog class is built on first use, a
subclass of both :class:`~cimsim.nn.modules.AnalogLayer` and ``Conv1D``. It is reachable as
``cimsim.nn.hf.AnalogConv1D`` (a module ``__getattr__``), so ``torch.save(model)`` and pickle
find it by name.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ParameterError, ShapeError
from .config import AnalogConfig, as_config
from .modules import AnalogLayer
from .noise_injection import programming_noise_std

__all__ = ["conv1d_class", "analog_conv1d_class"]

_BUILT: dict[str, type] = {}


def conv1d_class() -> type[nn.Module] | None:
    """transformers' ``Conv1D`` if transformers is already imported, else ``None`` (no import)."""
    for mod in ("transformers.pytorch_utils", "transformers.modeling_utils"):
        cls = getattr(sys.modules.get(mod), "Conv1D", None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls
    return None


def _import_conv1d() -> type[nn.Module]:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        raise ParameterError("AnalogConv1D needs HuggingFace transformers (pip install transformers)") from None
    return Conv1D


def analog_conv1d_class() -> type[AnalogLayer]:
    """The ``AnalogConv1D`` class (built once; importing transformers if it is not yet)."""
    if "AnalogConv1D" in _BUILT:
        return _BUILT["AnalogConv1D"]
    base = conv1d_class() or _import_conv1d()

    class AnalogConv1D(AnalogLayer, base):  # type: ignore[valid-type, misc]
        """transformers' ``Conv1D`` (``y = x W + b``, ``W [in, out]``) on a simulated analog chip.

        ``AnalogConv1D(nf, nx, *, config=None, **settings)`` as ``Conv1D(nf, nx)`` (``nf`` outputs,
        ``nx`` inputs) plus an :class:`AnalogConfig` and/or its fields as keywords. The crossbar
        holds ``W^T [nf, nx]``. Inputs may have any leading dimensions.
        """

        _FLOAT_CLS = base

        if TYPE_CHECKING:  # the members of transformers' Conv1D
            nf: int
            nx: int
            bias: torch.Tensor

        def __init__(self, nf: int, nx: int, *, config: AnalogConfig | None = None, **settings: Any):
            super().__init__(nf, nx)
            self._setup_analog(as_config(config, type(self).__name__, **settings))

        @classmethod
        def _empty_like(cls, m, **kw):
            return cls(m.nf, m.nx, **kw)

        def _empty_float(self):
            return base(self.nf, self.nx)

        def weight_matrices(self) -> list[torch.Tensor]:
            return [self.weight.t()]

        def noisy_weight(self) -> torch.Tensor:
            wt = self.weight.t()
            return self._with_noise(wt, programming_noise_std(wt, self.profile)).t()

        def _float(self, x, w):
            y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), w)
            return y.reshape(*x.shape[:-1], self.nf)

        def _analog(self, x, calls):
            if x.shape[-1] != self.nx:
                raise ShapeError(f"AnalogConv1D: input's last dimension must be nx={self.nx} (got input {tuple(x.shape)})")
            y = self._mm(x.reshape(-1, self.nx), self.weight.t(), self.bias, calls[0])
            return y.reshape(*x.shape[:-1], self.nf)

        def extra_repr(self) -> str:
            return f"nf={self.nf}, nx={self.nx}" + AnalogLayer.extra_repr(self)

        __repr__ = nn.Module.__repr__

    AnalogConv1D.__module__ = __name__
    AnalogConv1D.__qualname__ = "AnalogConv1D"
    _BUILT["AnalogConv1D"] = AnalogConv1D
    return AnalogConv1D


def __getattr__(name: str) -> Any:
    if name == "AnalogConv1D":
        return analog_conv1d_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
