"""Drift studies (evaluation/study.py): physics trend on pcm, reproducibility, one chip, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cimsim.data import digits
from cimsim.errors import CimsimError, DataError, ParameterError
from cimsim.evaluation import evaluate_drift, program
from cimsim.models import lenet
from cimsim.nn import convert
from cimsim.rng import chip_seeds

TIMES = [1.0, 3600.0, 86400.0, 3.15576e7, 3.15576e8]  # 1 s, 1 h, 1 d, 1 y, 10 y


# --------------------------------------------------------------------------- physics trend
def test_drift_lowers_accuracy_and_global_compensation_recovers_most(model, data):
    none = evaluate_drift(model, data, times_s=TIMES, repeats=6, compensation="none", seed=1, workers=1)
    glob = evaluate_drift(model, data, times_s=TIMES, repeats=6, compensation="global", seed=1, workers=1)
    assert none.digital_score > 0.93
    loss_none = none.mean[0] - none.mean[-1]
    loss_glob = glob.mean[0] - glob.mean[-1]
    # without compensation the decaying conductances shrink the analog outputs against the
    # digital biases: accuracy falls by at least 5 standard errors of the difference
    se = np.sqrt(none.std[0] ** 2 / 6 + none.std[-1] ** 2 / 6)
    assert loss_none > max(0.05, 5 * se), none.to_markdown()
    # monotone on average (within noise) from 1 s to 10 y
    assert none.mean[-1] < none.mean[2] < none.mean[0] + 0.01
    # global compensation recovers most of the loss
    assert loss_glob < 0.5 * loss_none, glob.to_markdown() + none.to_markdown()
    assert glob.mean[-1] > none.mean[-1] + 0.5 * loss_none
    # same chips: right after programming the two agree closely
    assert abs(glob.mean[0] - none.mean[0]) < 0.02


def test_per_column_compensation_recovers_drift(model, small_data):
    kw = dict(times_s=[1.0, 3.15576e8], repeats=2, seed=0, workers=1)
    rep = evaluate_drift(model, small_data, compensation="per_column", **kw)
    none = evaluate_drift(model, small_data, compensation="none", **kw)
    assert rep.compensation == "per_column" and rep.scores.shape == (2, 2)
    assert np.all((rep.scores >= 0) & (rep.scores <= 1))
    # same chips (same seeds): at 10 years the per-column factors restore the column gains, so
    # the compensated accuracy beats the uncompensated one by more than two standard errors of
    # a mean of 2 x 120 samples, and most of the loss since 1 s is recovered
    n = 2 * len(small_data[1])
    se = np.sqrt(2 * 0.1 * 0.9 / n)
    assert rep.mean[-1] > none.mean[-1] + 2 * se, rep.to_markdown() + none.to_markdown()
    assert rep.mean[0] - rep.mean[-1] < 0.5 * (none.mean[0] - none.mean[-1])


# --------------------------------------------------------------------------- reproducibility
def test_reproducible_from_seed(model, small_data):
    a = evaluate_drift(model, small_data, times_s=TIMES, repeats=3, seed=7, workers=1)
    b = evaluate_drift(model, small_data, times_s=TIMES, repeats=3, seed=7, workers=1)
    c = evaluate_drift(model, small_data, times_s=TIMES, repeats=3, seed=8, workers=1)
    assert a.equals(b)
    assert a.chip_seeds == chip_seeds(7, 3) and a.chip_seeds != c.chip_seeds
    assert not np.array_equal(a.scores, c.scores)


def test_point_does_not_depend_on_other_points(model, small_data):
    """A point is keyed by (chip seed, t): sub-studies reproduce the full study's entries."""
    full = evaluate_drift(model, small_data, times_s=TIMES, repeats=3, seed=3, workers=1)
    part = evaluate_drift(model, small_data, times_s=TIMES[2:4], repeats=2, seed=3, workers=1)
    np.testing.assert_array_equal(part.scores, full.scores[:2, 2:4])


def test_cnn_model(data, pcm):
    img = digits(seed=0, image=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = lenet(1, 10, input_size=8, channels=(4, 8), hidden=(16,))
    model = convert(net, pcm, seed=0)
    rep = evaluate_drift(model, (img.x_test[:40], img.y_test[:40]), times_s=[1.0, 86400.0], repeats=2, seed=0, workers=1)
    assert rep.scores.shape == (2, 2) and len(rep.meta["analog_layers"]) == 4


# --------------------------------------------------------------------------- chips
def test_study_of_one_chip_equals_the_matching_repeat(model, small_data):
    rep = evaluate_drift(model, small_data, times_s=TIMES[:3], repeats=2, seed=4, workers=1)
    chip = program(model, seed=rep.chip_seeds[1])
    one = evaluate_drift(chip, small_data, times_s=TIMES[:3], workers=1)
    np.testing.assert_array_equal(one.scores[0], rep.scores[1])
    assert one.repeats == 1 and one.chip_seeds == [rep.chip_seeds[1]]


# --------------------------------------------------------------------------- bad input
class _NoAnalog(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x)


BAD_INPUT = [
    (dict(times_s=[3600.0, 1.0]), ParameterError, r"strictly increasing \(got 3600 followed by 1.*sort them"),
    (dict(times_s=[1.0, 1.0]), ParameterError, r"strictly increasing"),
    (dict(times_s=[-1.0, 5.0]), ParameterError, r"finite seconds >= 0.*\[-1.0\].*use 0"),
    (dict(times_s=[]), ParameterError, r"times_s is empty"),
    (dict(times_s="1h,1s"), ParameterError, r"strictly increasing"),
    (dict(times_s="1 fortnight"), ParameterError, r"cannot read the time"),
    (dict(repeats=0), ParameterError, r"repeats must be an integer >= 1 \(got 0\)"),
    (dict(repeats=2.5), ParameterError, r"repeats must be an integer >= 1"),
    (dict(compensation="drift"), ParameterError, r"compensation must be one of \['none', 'global', 'per_column', 'global_aihwkit'\] \(got 'drift'\)"),
    (dict(metric="f1"), ParameterError, r"unknown metric 'f1'.*accuracy"),
    (dict(workers=-3), ParameterError, r"workers must be >= 1, -1 .* \(got -3\)"),
    (dict(seed=-1), ParameterError, r"seed must be an int in \[0, 2\^63 - 1\] \(got -1\), e.g. evaluate_drift"),
    (dict(batch_size=0), ParameterError, r"batch_size must be an integer >= 1 \(got 0\)"),
    (dict(batch_size=1.5), ParameterError, r"batch_size must be an integer >= 1 \(got 1.5\), e.g. batch_size=256"),
    (dict(batch_size=-1), ParameterError, r"batch_size must be an integer >= 1 \(got -1\)"),
    (dict(batch_size=True), ParameterError, r"batch_size must be an integer >= 1 \(got True\)"),
    (dict(batch_size="64"), ParameterError, r"batch_size must be an integer >= 1 \(got '64'\)"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_INPUT)
def test_bad_arguments(model, small_data, kwargs, exc, match):
    args = dict(times_s=[1.0], repeats=1, seed=0, workers=1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        evaluate_drift(model, small_data, **args)


def test_model_without_analog_layers(small_data):
    with pytest.raises(ParameterError, match=r"no analog layers.*convert it first.*cimsim.nn.convert"):
        evaluate_drift(_NoAnalog(), small_data, times_s=[1.0], repeats=1, seed=0)
    with pytest.raises(ParameterError, match=r"no analog layers.*convert it first"):
        program(_NoAnalog(), seed=0)


def test_chip_with_repeats(model, small_data):
    chip = program(model, seed=0)
    with pytest.raises(ParameterError, match="repeats must be 1 .*pass the model instead"):
        evaluate_drift(chip, small_data, times_s=[1.0], repeats=3)


def test_errors_are_cimsim_errors():
    assert issubclass(DataError, CimsimError) and issubclass(ParameterError, ValueError)
