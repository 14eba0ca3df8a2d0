"""Inputs an analog layer cannot read give a named error, as torch's own layers refuse them."""

from __future__ import annotations

import pytest
import torch

from cimsim import AnalogLinear, convert, load_profile
from cimsim.errors import NonFiniteError, ParameterError, ProfileError


@pytest.fixture(scope="module")
def layer() -> AnalogLinear:
    return AnalogLinear(30, 8, profile="pcm", seed=0)


def test_complex_input_is_refused_like_nn_linear(layer):
    x = torch.ones(2, 30, dtype=torch.complex64)
    with pytest.raises(RuntimeError):  # torch's own layer refuses complex input too
        torch.nn.Linear(30, 8)(x)
    with pytest.raises(ParameterError, match=r"real inputs \(got dtype torch.complex64\).*x.real and x.imag"):
        layer(x)


def test_meta_input_and_meta_weights_are_named(layer):
    with pytest.raises(ParameterError, match=r"'meta' device.*to_empty"):
        layer(torch.ones(2, 30, device="meta"))
    meta_layer = AnalogLinear(30, 8, profile="pcm", device="meta")
    with pytest.raises(ParameterError, match=r"weight is on the 'meta' device.*to_empty"):
        meta_layer(torch.ones(2, 30))
    meta_layer.to_empty(device="cpu")  # the fix the message gives works
    torch.nn.init.normal_(meta_layer.weight)
    torch.nn.init.zeros_(meta_layer.bias)
    assert torch.isfinite(meta_layer(torch.ones(2, 30))).all()


def test_forward_overflow_raises_nonfinite_naming_the_stage():
    # weights of one sign: 30 products of 3e38 x ~0.5 sum past float32's 3.4e38 on every chip
    # (random weights may cancel, and then nothing overflows)
    layer = AnalogLinear(30, 8, profile="pcm", seed=0)
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.bias.zero_()
    with pytest.raises(NonFiniteError, match=r"GEMM \+ ADC .*overflow float32"):
        layer(torch.full((2, 30), 3e38))
    assert torch.isfinite(layer(torch.full((2, 30), 1e3))).all()


def test_seed_out_of_range_and_drift_times_past_the_universe():
    with pytest.raises(ParameterError, match=r"seed must be an int in \[0, 2\^63 - 1\] \(got 18446744073709551616\)"):
        convert(torch.nn.Sequential(torch.nn.Linear(3, 2)), "pcm", seed=2**64)
    with pytest.raises(ProfileError, match=r"training.drift_t_max_s: must be a number in \[0, 4.35e17\].*1e\+308"):
        load_profile("pcm", {"training.drift_t_min_s": 1.0, "training.drift_t_max_s": 1e308})
