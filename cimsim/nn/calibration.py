"""``calibrate(model, data)``: calibrated converter ranges for every analog layer of a model.

A profile whose ``dac.range`` or ``adc.range`` has ``kind: calibrated`` sets the converter's
full scale from reference inputs (:mod:`cimsim.crossbar.calibration`): the DAC bound is the
``percentile`` of ``|x_ref|``, each ADC tile column's bound the ``percentile`` of its noise-free
``|partial sum|`` over ``x_ref``. For a model:

1. ``data`` runs through the model once in eval mode, the analog layers computing in float
   (``F.linear`` of the float weights: the activations a digital model would hand on), each
   noting the rows its crossbar matrices would see (im2col patches for a convolution, ``[x_t,
   h_{t-1}]`` per step for a recurrent layer, the projections' inputs for attention, scaled by
   ``B / alpha`` where a learnable input range is set). Rows are kept evenly spaced: at most
   ``2 * max_rows`` per matrix, every ``2^k``-th row of the stream.
2. Each matrix is programmed once as the layer's reference chip (seed: the layer's config seed,
   :func:`~cimsim.rng.group_seed` per matrix) and calibrated on its rows
   (``ProgrammedState.calibrate``).
3. The bounds are stored on the layer (``layer.calibration``, a
   :class:`~cimsim.nn.modules.LayerCalibration`) and set on every chip the layer programs from
   then on: training and eval forwards, ``layer.program`` and so ``cimsim.program`` /
   ``evaluate_drift`` chips; :func:`cimsim.save` stores them.

Calibrate after training (the ADC bounds are in the units of the weights' mapping, so weights
that change much later deserve a new calibration); a layer whose profile has no calibrated range
is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from .convert import analog_layers
from .modules import AnalogLayer, LayerCalibration

__all__ = ["calibrate"]


class _Rows:
    """Evenly spaced rows of a stream of ``[n, in]`` batches: global rows ``0, s, 2s, ...`` with
    the step ``s`` doubled whenever more than ``2 * cap`` rows are held."""

    def __init__(self, cap: int):
        self.cap, self.step, self.seen = cap, 1, 0
        self.parts: list[torch.Tensor] = []
        self.held = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).to("cpu", torch.float64)
        start = (-self.seen) % self.step
        kept = x[start :: self.step]
        self.seen += x.shape[0]
        self.parts.append(kept)
        self.held += kept.shape[0]
        while self.held > 2 * self.cap:
            rows = torch.cat(self.parts)[::2]
            self.parts, self.held, self.step = [rows], rows.shape[0], self.step * 2

    def rows(self) -> np.ndarray | None:
        return torch.cat(self.parts).numpy() if self.held else None


def _calibrated(layer: AnalogLayer) -> bool:
    p = layer.profile
    return p.dac.range.kind == "calibrated" or p.adc.range.kind == "calibrated"


def _run(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, torch.Tensor):
        model(batch)
    elif isinstance(batch, Mapping):
        model(**batch)
    elif isinstance(batch, (tuple, list)) and batch:
        _run(model, batch[0])
    else:
        raise ParameterError(
            f"calibrate: a batch must be a tensor, a dict of model inputs or a tuple/list whose first item is "
            f"the input, e.g. a DataLoader's (x, y) (got {type(batch).__name__})"
        )


def _batches(data: Any) -> Iterable[Any]:
    if isinstance(data, (torch.Tensor, Mapping)):
        return [data]
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        return data
    raise ParameterError(
        f"calibrate: data must be a tensor, a dict of model inputs, or an iterable of batches such as a DataLoader "
        f"(got {type(data).__name__})"
    )


def calibrate(model: nn.Module, data: Any, *, max_rows: int = 4096) -> nn.Module:
    """Calibrate the converter ranges of every analog layer of ``model`` whose profile has a
    ``calibrated`` DAC or ADC range, in place, from reference inputs ``data`` (see the module
    docstring); returns ``model``.

    ``data``: a tensor (one batch), a dict of keyword inputs (``model(**batch)``), or an iterable of
    batches (a ``DataLoader``, a list), each a tensor, a dict, or a tuple/list whose first item is
    the input. ``max_rows``: rows kept per crossbar matrix are between ``max_rows`` and twice that.
    """
    if not isinstance(model, nn.Module):
        raise ParameterError(f"calibrate: model must be a torch nn.Module (got {type(model).__name__})")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ParameterError(f"calibrate: max_rows must be a positive int (got {max_rows!r})")
    layers = [(n, m) for n, m in analog_layers(model) if _calibrated(m)]
    if not layers:
        raise ParameterError(
            "calibrate: no analog layer of the model has a calibrated converter range; use a profile with "
            "dac.range or adc.range {kind: calibrated} (e.g. load_profile('fefet', overrides={'adc.range': "
            "{'kind': 'calibrated', 'percentile': 99.5}})) and convert the model with it"
        )
    flags = {m: m.training for m in model.modules()}
    for _, layer in layers:
        layer._recorder = [_Rows(max_rows) for _ in layer.weight_matrices()]
    try:
        model.eval()
        with torch.no_grad():
            for batch in _batches(data):
                _run(model, batch)
        recorded = {name: layer._recorder for name, layer in layers}
    finally:
        for _, layer in layers:
            layer._recorder = None
        for m, flag in flags.items():
            m.training = flag
    for name, layer in layers:
        rows = [r.rows() for r in recorded[name] or []]
        if any(r is None for r in rows):
            raise ParameterError(
                f"calibrate: layer {name!r} saw no input while the data ran through the model (is it used in forward?)"
            )
        bounds = []
        for state, x_ref in zip(layer._program_raw(layer.seed), rows):
            cal = state.calibrate(x_ref)
            adc = None if cal.adc_bound is None else np.array(cal.adc_bound)
            bounds.append((cal.dac_bound, adc))
        layer.calibration = LayerCalibration(layer.profile, tuple(bounds))
    return model
