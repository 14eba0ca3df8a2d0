"""Memory-saving paths of the torch bridge give the same values as the direct ones."""

from __future__ import annotations

import numpy as np
import torch

from cimsim.crossbar import program_drifted, tile_mvm
from cimsim.nn import expected_adc_slope, hardware_mvm
from cimsim.nn.hardware import adc_input_lsb
from cimsim.profiles.loader import load_profile
from cimsim.rng import split_seed


def test_expected_slopes_tile_by_tile_equal_the_whole_array_bit_for_bit():
    """hardware_mvm builds the expected-ADC slopes one input tile at a time (no [B, T, out]
    float64 u, no [B, T, out, thresholds] temporaries); they equal expected_adc_slope on the whole
    adc_input_lsb array bit for bit: 5 input tiles (the last one partial), a batch and width large
    enough for torch's multi-threaded elementwise and reduction paths, saturating tiles included."""
    prof = load_profile("pcm", overrides={"tile.rows": 64, "tile.cols": 64, "adc.bits": 4, "adc.range.bound": 3.0,
                                          "adc.noise_lsb": 0.7})
    rng = np.random.default_rng(1)
    w = rng.standard_normal((300, 290)).astype(np.float32)
    x = (2 * rng.standard_normal((257, 290))).astype(np.float32)
    seed = 11
    hw = hardware_mvm(torch.from_numpy(x), torch.from_numpy(w), prof, seed=seed, adc_backward="expected")
    prog, read = split_seed(seed)
    ds = program_drifted(w, prof, rng=prog, t_s=0.0, read_rng=read)
    _, m = tile_mvm(x, ds, rng=read, return_masks=True)
    u = adc_input_lsb(ds, x, m.x_q)
    whole = expected_adc_slope(torch.from_numpy(u).to(torch.float32), 7, 0.7)
    assert hw.adc_slope is not None and hw.adc_slope.shape == (257, 5, 300)
    assert hw.adc_slope.dtype == torch.float32
    assert bool((whole < 0.5).any()) and bool((whole > 0.9).any())  # rails and linear range both present
    assert torch.equal(hw.adc_slope, whole)
