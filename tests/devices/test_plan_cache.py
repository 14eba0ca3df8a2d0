"""Plans are built once per profile object and reused: across the training steps of a layer
(each programs a fresh chip), never across profiles; entries go with their profile."""

import gc

import pytest
import torch

import cimsim.crossbar.drift as crossbar_drift
import cimsim.crossbar.mvm as crossbar_mvm
import cimsim.crossbar.program as crossbar_program
import cimsim.devices.programming as devices_programming
from cimsim.devices import PlanCache, drift_laws, drift_plan, programming_laws, programming_plan
from cimsim.nn import AnalogLinear
from cimsim.peripherals import adc_plan, dac_plan
from cimsim.profiles.loader import load_profile


def _spy(monkeypatch, owner, name, seen):
    fn = getattr(owner, name)

    def spy(*args, **kwargs):
        out = fn(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(owner, name, spy)


def test_a_layer_reuses_its_plans_across_forwards(monkeypatch):
    prof = load_profile("pcm", overrides={"tile.rows": 32, "tile.cols": 32})  # a fresh profile object
    builds, laws, mvm_plans, drift_runs = [], [], [], []
    _spy(monkeypatch, devices_programming, "_compile", builds)
    _spy(monkeypatch, crossbar_program, "programming_laws", laws)
    _spy(monkeypatch, crossbar_mvm, "mvm_plan", mvm_plans)
    init = crossbar_drift.DriftRun.__init__

    def drift_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        drift_runs.append(self)

    monkeypatch.setattr(crossbar_drift.DriftRun, "__init__", drift_init)
    layer = AnalogLinear(40, 24, profile=prof, mode="hardware", seed=3).train()
    x = torch.randn(8, 40, generator=torch.Generator().manual_seed(0))
    y1, y2 = layer(x), layer(x)
    assert not torch.equal(y1, y2)  # two steps, two chips (fresh seeds)
    assert len(builds) == 1  # the programming plan was compiled once
    assert len(laws) == 2 and laws[0] is laws[1] and laws[0].plan is builds[0]
    assert len(drift_runs) == 2
    assert drift_runs[0].plan is drift_runs[1].plan and drift_runs[0].laws is drift_runs[1].laws
    assert len(mvm_plans) == 2 and mvm_plans[0] is not mvm_plans[1]  # per chip
    assert mvm_plans[0].dac is mvm_plans[1].dac and mvm_plans[0].adc is mvm_plans[1].adc
    assert mvm_plans[0].dac is dac_plan(prof.dac) and mvm_plans[0].adc is adc_plan(prof.adc)


def test_another_profile_gets_its_own_plans():
    pcm, levels = load_profile("pcm"), load_profile("pcm", overrides={"conductance.n_levels": 9, "dac.bits": 6})
    twin = load_profile("pcm")  # equal, but another object
    assert programming_plan(pcm) is programming_plan(pcm)
    assert programming_plan(pcm, with_drift=False) is not programming_plan(pcm)
    assert programming_plan(levels) != programming_plan(pcm) and programming_plan(levels).n_levels == 9
    assert programming_plan(twin) == programming_plan(pcm) and programming_plan(twin) is not programming_plan(pcm)
    assert programming_laws(levels, programming_plan(levels)) is not programming_laws(pcm, programming_plan(pcm))
    assert dac_plan(levels.dac).levels == 31 and dac_plan(pcm.dac).levels != 31
    assert dac_plan(pcm.dac) is dac_plan(pcm.dac) and adc_plan(pcm.adc) is adc_plan(pcm.adc)
    a = drift_plan(pcm, 10.0, noiseless=False, has_nu=True)
    assert a is drift_plan(pcm, 10.0, noiseless=False, has_nu=True)
    assert drift_plan(pcm, 20.0, noiseless=False, has_nu=True).t_s == 20.0
    assert drift_plan(pcm, 10.0, noiseless=True, has_nu=True) != a
    assert str(drift_plan(pcm, -0.0, noiseless=False, has_nu=True).t_s) == "-0.0"  # the plan keeps t as given
    assert drift_plan(pcm, 0.0, noiseless=False, has_nu=True).t_s == 0.0
    assert drift_laws(pcm, a, "float32") is drift_laws(pcm, a, "float32")
    assert drift_laws(pcm, a, "float64").dtype == "float64"


class _Owner:
    pass


def test_plan_cache_drops_dead_owners_and_bounds_entries():
    cache = PlanCache(per_owner=2)
    a, b = _Owner(), _Owner()
    va = cache.get(a, 1, lambda: ["a1"])
    assert cache.get(a, 1, lambda: pytest.fail("built again")) is va
    assert cache.get(b, 1, lambda: ["b1"]) == ["b1"] and len(cache) == 2
    del b
    gc.collect()
    assert len(cache) == 1
    cache.get(a, 2, lambda: ["a2"])
    cache.get(a, 3, lambda: ["a3"])  # the oldest key of a goes
    assert cache.get(a, 1, lambda: ["a1 again"]) == ["a1 again"]
    del a
    gc.collect()
    assert len(cache) == 0
