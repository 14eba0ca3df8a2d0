"""Drift studies: physics trend on pcm, reproducibility, parallel == serial, resume, bad input."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cimsim.evaluation.drift as drift_mod
from cimsim.data import digits
from cimsim.errors import CimsimError, DataError, ParameterError, StateFormatError
from cimsim.evaluation import DriftReport, evaluate_drift, program
from cimsim.rng import chip_seeds
from cimsim.evaluation.drift import points_path
from cimsim.models import lenet, mlp
from cimsim.nn import convert
from cimsim.profiles import load_profile

TIMES = [1.0, 3600.0, 86400.0, 3.15576e7, 3.15576e8]  # 1 s, 1 h, 1 d, 1 y, 10 y


def _train_float(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150, lr: float = 1e-2) -> torch.nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):  # full batch: deterministic and quick
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


@pytest.fixture(scope="module")
def pcm():
    return load_profile("pcm")


@pytest.fixture(scope="module")
def model(data, pcm):
    """A float-trained digits MLP 64-64-10 with biases, deployed on pcm."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = mlp(64, (64,), 10)
    _train_float(net, data.x_train, data.y_train)
    return convert(net, pcm, mode="hardware", seed=0)


@pytest.fixture(scope="module")
def small_data(data):
    return data.x_test[:120], data.y_test[:120]


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


def test_per_column_compensation_runs(model, small_data):
    rep = evaluate_drift(model, small_data, times_s=[1.0, 3.15576e7], repeats=2, compensation="per_column", seed=0, workers=1)
    assert rep.compensation == "per_column" and rep.scores.shape == (2, 2)
    assert np.all((rep.scores >= 0) & (rep.scores <= 1))


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


def test_parallel_equals_serial(model, small_data):
    serial = evaluate_drift(model, small_data, times_s=TIMES, repeats=4, seed=5, workers=1)
    parallel = evaluate_drift(model, small_data, times_s=TIMES, repeats=4, seed=5, workers=2)
    assert parallel.meta["workers"] == 2
    assert parallel.equals(serial)
    assert parallel.scores.tobytes() == serial.scores.tobytes()


def test_auto_workers_switch_to_processes_after_the_first_chip(model, small_data, monkeypatch):
    serial = evaluate_drift(model, small_data, times_s=TIMES[:2], repeats=3, seed=6, workers=1)
    auto = evaluate_drift(model, small_data, times_s=TIMES[:2], repeats=3, seed=6, workers=None)
    assert auto.meta["workers"] == 1 and auto.equals(serial)  # a short study stays in-process
    monkeypatch.setattr(drift_mod, "_PARALLEL_MIN_S", 0.0)  # pretend the study is long
    switched = evaluate_drift(model, small_data, times_s=TIMES[:2], repeats=3, seed=6, workers=None)
    assert switched.meta["workers"] == 2 and switched.equals(serial)


def test_custom_metric(model, small_data):
    def mean_ce(outputs, targets):
        return float(F.cross_entropy(outputs, targets))

    rep = evaluate_drift(model, small_data, times_s=[1.0, 3.15576e8], repeats=2, compensation="none", seed=0, metric=mean_ce, workers=1)
    assert rep.metric.endswith("mean_ce")
    assert rep.mean[1] > rep.mean[0]  # the loss grows as the chip ages
    named = evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, metric="cross_entropy", workers=1)
    assert named.metric == "cross_entropy" and named.scores[0, 0] > 0


def test_cnn_model(data, pcm):
    img = digits(seed=0, image=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = lenet(1, 10, input_size=8, channels=(4, 8), hidden=(16,))
    model = convert(net, pcm, seed=0)
    rep = evaluate_drift(model, (img.x_test[:40], img.y_test[:40]), times_s=[1.0, 86400.0], repeats=2, seed=0, workers=1)
    assert rep.scores.shape == (2, 2) and len(rep.meta["analog_layers"]) == 4


# --------------------------------------------------------------------------- resume
def _interrupt_after(monkeypatch, k: int) -> None:
    """Make the (k+1)-th chip read raise KeyboardInterrupt (the 1st forward is the digital reference)."""
    real = drift_mod._forward_all
    calls = {"n": 0}

    def flaky(module, x, batch_size):
        calls["n"] += 1
        if calls["n"] > k + 1:
            raise KeyboardInterrupt
        return real(module, x, batch_size)

    monkeypatch.setattr(drift_mod, "_forward_all", flaky)


@pytest.mark.parametrize("k", [0, 4, 7])
def test_interrupted_study_resumes_to_the_same_report(model, small_data, tmp_path, monkeypatch, k):
    kw = dict(times_s=TIMES, repeats=3, compensation="global", seed=11, workers=1)
    whole = evaluate_drift(model, small_data, **kw, out=tmp_path / "whole.json")
    out = tmp_path / "study.json"
    with monkeypatch.context() as mp:
        _interrupt_after(mp, k)
        with pytest.raises(KeyboardInterrupt):
            evaluate_drift(model, small_data, **kw, out=out)
    assert not out.exists()
    lines = points_path(out).read_text().splitlines()
    assert len(lines) == 1 + k  # header + the k finished points
    resumed = evaluate_drift(model, small_data, **kw, out=out)
    assert resumed.meta["points_resumed"] == k
    assert resumed.meta["points_computed"] == 15 - k
    assert resumed.equals(whole)
    assert DriftReport.from_json(out).equals(whole)
    # a finished study re-run with the same out computes nothing
    again = evaluate_drift(model, small_data, **kw, out=out)
    assert again.meta["points_computed"] == 0 and again.equals(whole)


def test_resume_ignores_torn_line_and_extends(model, small_data, tmp_path):
    kw = dict(repeats=2, compensation="none", seed=2, workers=1)
    out = tmp_path / "s.json"
    first = evaluate_drift(model, small_data, times_s=TIMES[:2], **kw, out=out)
    with open(points_path(out), "a") as f:
        f.write('{"repeat": 0, "chip_seed": 1')  # torn by a crash mid-write
    more = evaluate_drift(model, small_data, times_s=TIMES[:3], repeats=3, compensation="none", seed=2, workers=1, out=out)
    assert more.meta["points_resumed"] == 4 and more.meta["points_computed"] == 5
    np.testing.assert_array_equal(more.scores[:2, :2], first.scores)
    fresh = evaluate_drift(model, small_data, times_s=TIMES[:3], repeats=3, compensation="none", seed=2, workers=1)
    assert more.equals(fresh)


def test_resume_refuses_another_study(model, small_data, tmp_path):
    out = tmp_path / "s.json"
    evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, workers=1, out=out)
    with pytest.raises(ParameterError, match="different study.*another out path"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=1, workers=1, out=out)
    points_path(tmp_path / "bad.json").write_text("garbage\n")
    with pytest.raises(StateFormatError, match="not a cimsim points file"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, workers=1, out=tmp_path / "bad.json")


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
    (dict(compensation="drift"), ParameterError, r"compensation must be one of \['none', 'global', 'per_column'\] \(got 'drift'\)"),
    (dict(metric="f1"), ParameterError, r"unknown metric 'f1'.*accuracy"),
    (dict(workers=-3), ParameterError, r"workers must be >= 1, -1 .* \(got -3\)"),
    (dict(seed=-1), ParameterError, r"seed must be a non-negative integer"),
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


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x, y: (x[:, :32], y), r"do not fit the model.*shape \(32,\).*expects 64 input features"),
        (lambda x, y: (x.reshape(-1, 1, 8, 8)[:, :, :4], y), r"do not fit the model.*\(1, 4, 8\)"),
        (lambda x, y: (x, y[:-1]), r"same number of samples \(got 120 inputs .* 119 targets"),
        (lambda x, y: (x[:0], y[:0]), r"at least one input sample"),
        (lambda x, y: (x * float("nan"), y), r"NaN/Inf"),
        (lambda x, y: "digits", r"cannot evaluate on data of type str"),
    ],
)
def test_bad_data(model, small_data, make, match):
    with pytest.raises(DataError, match=match):
        evaluate_drift(model, make(*small_data), times_s=[1.0], repeats=1, seed=0, workers=1)


def test_chip_with_repeats(model, small_data):
    chip = program(model, seed=0)
    with pytest.raises(ParameterError, match="repeats must be 1 .*pass the model instead"):
        evaluate_drift(chip, small_data, times_s=[1.0], repeats=3)


def test_unpicklable_metric_with_explicit_workers(model, small_data):
    with pytest.raises(ParameterError, match="cannot be sent to worker processes.*workers=1"):
        evaluate_drift(model, small_data, times_s=[1.0], repeats=2, seed=0, workers=2, metric=lambda o, t: 0.0)


def test_errors_are_cimsim_errors():
    assert issubclass(DataError, CimsimError) and issubclass(ParameterError, ValueError)
