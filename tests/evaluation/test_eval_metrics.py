"""What a study scores (evaluation/metrics.py): named and custom metrics, data checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cimsim.errors import DataError, ParameterError
from cimsim.evaluation import METRICS, evaluate_drift
from cimsim.evaluation.metrics import accuracy, as_eval_data, cross_entropy, resolve_metric, score


def test_named_metrics():
    out = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    assert accuracy(out, y) == pytest.approx(2 / 3)
    assert cross_entropy(out, y) == pytest.approx(float(F.cross_entropy(out.double(), y)))
    assert resolve_metric("accuracy") == ("accuracy", accuracy) and set(METRICS) == {"accuracy", "cross_entropy"}
    with pytest.raises(ParameterError, match=r"unknown metric 'f1'"):
        resolve_metric("f1")
    with pytest.raises(ParameterError, match=r"metric must be a name .* \(got 3\)"):
        resolve_metric(3)


def test_eval_data_from_a_loader_equals_the_pair():
    x, y = torch.arange(30.0).reshape(10, 3), torch.arange(10) % 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    lin = torch.nn.Linear(3, 2)
    seen = {}

    def grab(outputs, targets):
        seen.update(outputs=outputs, targets=targets)
        return 0.0

    score(lin, as_eval_data((x, y), 3), grab)
    assert torch.equal(seen["outputs"], lin(x).detach()) and torch.equal(seen["targets"], y)  # batches of 3, in order
    for data in (loader, loader.dataset, (x.numpy(), y.numpy())):
        batches = list(as_eval_data(data, 3).batches())
        assert torch.equal(torch.cat([b[0] for b in batches]), x) and torch.equal(torch.cat([b[1] for b in batches]), y)
    assert [len(b[1]) for b in as_eval_data(loader, 3).batches()] == [4, 4, 2]  # a loader keeps its own batches


def test_custom_metric(model, small_data):
    def mean_ce(outputs, targets):
        return float(F.cross_entropy(outputs, targets))

    rep = evaluate_drift(model, small_data, times_s=[1.0, 3.15576e8], repeats=2, compensation="none", seed=0, metric=mean_ce, workers=1)
    assert rep.metric.endswith("mean_ce")
    assert rep.mean[1] > rep.mean[0]  # the loss grows as the chip ages
    named = evaluate_drift(model, small_data, times_s=[1.0], repeats=1, seed=0, metric="cross_entropy", workers=1)
    assert named.metric == "cross_entropy" and named.scores[0, 0] > 0


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


@pytest.mark.parametrize("metric, bad", [("cross_entropy", 12), ("accuracy", 10), ("accuracy", -3)])
def test_target_out_of_range_is_named(model, small_data, metric, bad):
    x, y = small_data
    y = y.clone()
    y[7] = bad
    with pytest.raises(DataError, match=rf"{metric}: target value {bad} is out of range for 10 classes.*0\.\.9.*1 of 120 targets"):
        evaluate_drift(model, (x, y), times_s=[1.0], repeats=1, seed=0, workers=1, metric=metric)


def test_ignored_and_bad_targets_in_the_metrics():
    out = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(out, torch.tensor([0, -100, 1])) == 0.5  # -100 is not scored
    assert cross_entropy(out, torch.tensor([0, -100, 1])) == pytest.approx(float(F.cross_entropy(out.double(), torch.tensor([0, -100, 1]))))
    with pytest.raises(DataError, match=r"target value 2 is out of range for 2 classes"):
        cross_entropy(out, torch.tensor([0, 2, 1]))
    with pytest.raises(DataError, match=r"every target is -100"):
        accuracy(out, torch.full((3,), -100))
    with pytest.raises(DataError, match=r"accuracy needs integer class targets \(got torch.float32\)"):
        accuracy(out, torch.tensor([0.0, 1.0, 1.0]))
