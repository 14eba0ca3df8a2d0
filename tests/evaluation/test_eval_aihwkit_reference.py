"""The aihwkit reference network read through pcm_aihwkit (issue 19): aihwkit's digits MLP
64-256-256-10, float-trained as its users train it, at 1 s and 10 years after programming with
and without aihwkit's drift compensation, 10 chips each (the whole curve: docs/aihwkit.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from cimsim.evaluation import evaluate_drift
from cimsim.models import mlp
from cimsim.nn import convert

YEAR = 365.25 * 86400
CHIPS = 10
#: aihwkit 1.1 (InferenceRPUConfig + PCMLikeNoiseModel), same network and split, 10 years, no
#: compensation: 90.6-90.9 % over its users' runs (issue 19)
AIHWKIT_10Y_NONE = (0.906, 0.909)


def _reference_mlp():
    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.2, random_state=0)
    xtr, xte = (torch.tensor(a / 16.0, dtype=torch.float32) for a in (xtr, xte))
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = mlp(64, (256, 256), 10)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(30):
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, xte, yte


@pytest.mark.slow
def test_pcm_aihwkit_reproduces_aihwkit_reference_numbers():
    net, x, y = _reference_mlp()
    with torch.no_grad():
        float_acc = (net(x).argmax(1) == y).float().mean().item()
    assert float_acc > 0.95  # the float network is the reference's (96-97 %)
    analog = convert(net, "pcm_aihwkit", mode="hardware", seed=0)
    reps = {comp: evaluate_drift(analog, (x, y), times_s=[1.0, 10 * YEAR], repeats=CHIPS, compensation=comp,
                                 seed=0, workers=1, progress=False)
            for comp in ("none", "global_aihwkit")}
    none, comp = reps["none"], reps["global_aihwkit"]
    se = lambda r, i: float(r.std[i]) / math.sqrt(CHIPS)  # noqa: E731
    # 1 s: within a point of the float network
    assert none.mean[0] > float_acc - 0.015 and comp.mean[0] > float_acc - 0.015
    # 10 years without compensation: aihwkit's number within 3 standard errors of our 10-chip
    # mean plus the spread of aihwkit's own runs (the shipped pcm profile reads ~93 % here)
    lo, hi = AIHWKIT_10Y_NONE
    tol = 3 * se(none, 1) + (hi - lo)
    assert lo - tol < none.mean[1] < hi + tol, (none.mean, none.std)
    # aihwkit's global compensation recovers most of the drift loss at 10 years
    gain = comp.mean[1] - none.mean[1]
    assert gain > 3 * math.hypot(se(none, 1), se(comp, 1)) and gain > 0.015, (comp.mean, none.mean)
    assert np.all(np.isfinite(none.mean)) and np.all(np.isfinite(comp.mean))
