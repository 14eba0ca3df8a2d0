"""End to end: a drift study of the digits MLP on the profile fitted to simulated pcm
measurements agrees with the same study on pcm itself, within their confidence intervals, at
1 s, 1 day and 1 year."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cimsim import convert, evaluate_drift, fit_profile, load_profile, simulate_measurements
from cimsim.data import digits
from cimsim.models import mlp


@pytest.mark.slow
def test_drift_study_on_fitted_profile_matches_generating_profile():
    data = digits(seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = mlp(64, (64,), 10)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):  # full batch: deterministic and quick
        loss = F.cross_entropy(net(data.x_train), data.y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pcm = load_profile("pcm")
    levels = np.r_[0.02, 0.05, np.linspace(0.1, 1.0, 10)] * 25.0
    table = simulate_measurements(pcm, levels, [1, 3, 10, 30, 100, 1e3, 1e4, 1e5, 1e6], devices_per_target=150, reads=3,
                                  seed=5)
    # pcm's range is 0-25 µS; the lowest target here is 0.5 µS, so the range is given
    fitted = fit_profile(table, base="pcm", g_range_us=(0.0, 25.0), n_levels=None).profile
    assert fitted.drift.kind == "power_law" and fitted.read_noise.kind == "one_over_f"
    times = [1.0, 86400.0, 3.15576e7]
    # a control the comparison must reject: the fitted profile with a wrong nu spread and 1/f amplitude
    wrong = fitted.with_overrides({"drift.nu.std": 0.05, "read_noise.q_s": 0.05})
    gen, fit, bad = (
        evaluate_drift(convert(copy.deepcopy(net), prof, mode="hardware", seed=0), data, times_s=times, repeats=8,
                       seed=3, workers=1, progress=False)
        for prof in (pcm, fitted, wrong)
    )
    gap = np.abs(gen.mean - fit.mean)
    assert np.all(gap <= gen.ci_halfwidth() + fit.ci_halfwidth()), (gen.mean, fit.mean, gen.ci_halfwidth(), fit.ci_halfwidth())
    assert abs(gen.mean[-1] - bad.mean[-1]) > gen.ci_halfwidth()[-1] + bad.ci_halfwidth()[-1], (gen.mean, bad.mean)
