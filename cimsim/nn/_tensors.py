"""Plumbing between torch tensors and the numpy chip, shared by the bridge's modules.

The chip (:mod:`cimsim.crossbar`) takes dense batches as float32/float64 numpy arrays on the
CPU. :func:`_to_numpy` and :func:`_to_torch` move tensors there and back (no copy when a tensor
already is such an array), :func:`check_dense` refuses nested tensors with a message that says
how to avoid them, and :func:`_dac_is_ideal` tells the STE whether the DAC leaves the input
unchanged (then it saves ``x`` itself instead of a quantised copy).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from ..peripherals import dac_plan

__all__ = ["check_dense"]


def _dac_is_ideal(profile) -> bool:
    """The peripherals' one definition of an ideal DAC (:attr:`DacPlan.identity`)."""
    return dac_plan(profile.dac).identity


def check_dense(x: torch.Tensor) -> None:
    """Refuse, with a named error, what the chip cannot read: a nested tensor (it takes dense
    batches), a complex one (a real crossbar has no imaginary part; ``nn.Linear`` refuses it too)
    and one on the ``meta`` device (no values to program or read)."""
    if x.is_complex():
        raise ParameterError(f"analog layers take real inputs (got dtype {x.dtype}); a crossbar has no imaginary "
                             "part: pass x.real and x.imag through the layer separately")
    if x.is_meta:
        raise ParameterError("analog layers run the chip on real values; this input is on the 'meta' device. Build "
                             "on meta if you like, then model.to_empty(device='cpu'), load the weights and run")
    if x.is_nested:
        raise ParameterError(
            "analog layers take dense tensors, not nested ones (nn.TransformerEncoder builds nested tensors from a "
            "src_key_padding_mask in eval): build it with nn.TransformerEncoder(..., enable_nested_tensor=False)"
        )


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` detached, on the CPU, contiguous, in float32 or float64 (other dtypes: float32)."""
    t = t.detach()
    if t.is_meta:
        raise ParameterError("an analog layer's weight is on the 'meta' device, which holds no values: "
                             "model.to_empty(device='cpu') and load the weights before running it")
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.contiguous().numpy()


def _to_torch(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``a`` as a tensor on ``like``'s device (the dtype stays ``a``'s; callers cast)."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.device != like.device:
        t = t.to(like.device)
    return t
