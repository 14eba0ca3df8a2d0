"""ProgrammingPlan / DriftPlan: the fields a profile compiles into, and the laws they evaluate."""

import math

import numpy as np
import pytest

from cimsim.devices.drift import DEFAULT_T0_S, DriftLaws, DriftPlan, drift_plan
from cimsim.devices.programming import (
    NOISE_CONSTANT,
    NOISE_FUNCTION,
    NOISE_NONE,
    NOISE_RELATIVE,
    ProgrammingLaws,
    ProgrammingPlan,
    programming_plan,
)
from cimsim.profiles.loader import load_profile


def _types(plan):
    return [type(v) for v in plan]


def test_programming_plan_pcm_and_with_drift():
    p = load_profile("pcm")
    plan = programming_plan(p)
    assert plan.noise == NOISE_FUNCTION
    assert plan.prog_param == p.conductance.g_max_us / p.programming.noise.g_ref_us
    assert plan.has_drift and plan.nu_absolute
    assert not (plan.has_var or plan.has_fault or plan.stochastic or plan.clip_upper) and plan.n_levels == 0
    assert plan.same_targets
    no_drift = programming_plan(p, with_drift=False)
    assert not no_drift.has_drift and not no_drift.nu_absolute
    # fixed field types: one compiled kernel per dtype, whatever the profile
    other = programming_plan(load_profile("pcm", overrides={"conductance.n_levels": 9, "faults.stuck_at_g_min_rel": 0.1}))
    assert _types(plan) == _types(other) == _types(no_drift)


@pytest.mark.parametrize("overrides,want", [
    ({"programming.noise": {"kind": "constant", "sigma_us": 0.7}}, dict(noise=NOISE_CONSTANT, prog_param=0.7)),
    ({"programming.noise": {"kind": "constant", "sigma_us": 0.0}}, dict(noise=NOISE_NONE, prog_param=0.0)),
    ({"programming.noise": {"kind": "relative", "sigma_rel": 0.04}}, dict(noise=NOISE_RELATIVE, prog_param=0.04)),
    ({"programming.noise": {"kind": "none"}}, dict(noise=NOISE_NONE)),
    ({"faults.stuck_at_g_min_rel": 0.02}, dict(has_fault=True, p_stuck_min=0.02, p_stuck_max=0.0)),
    ({"faults.stuck_at_g_max_rel": 0.01}, dict(has_fault=True, p_stuck_min=0.0, p_stuck_max=0.01)),
    ({"variability.g_max_spread_rel": 0.05}, dict(has_var=True, var_sigma_rel=0.05)),
    ({"conductance.n_levels": 16, "programming.stochastic_rounding": True}, dict(n_levels=16, stochastic=True)),
    ({"drift.absolute": False, "programming.clip_upper": True}, dict(nu_absolute=False, clip_upper=True)),
])
def test_programming_plan_fields(overrides, want):
    plan = programming_plan(load_profile("pcm", overrides=overrides))
    for k, v in want.items():
        assert getattr(plan, k) == v, k
    assert plan.same_targets == (plan.n_levels <= 1 and not plan.has_var and not plan.has_fault)


def test_programming_laws():
    p = load_profile("sonos")
    plan = programming_plan(p)
    assert plan.noise == NOISE_FUNCTION and not plan.has_drift  # sonos: no drift
    laws = ProgrammingLaws(p, plan)
    x = np.linspace(-0.1, 1.0, 12, dtype=np.float32)
    sig = laws.sigma_us(x)
    assert sig.dtype == np.float32
    np.testing.assert_array_equal(sig, np.maximum(p.programming.noise.sigma.evaluate(x), 0) * np.float32(plan.prog_param))
    assert laws.nu_mean(x).shape == laws.nu_std(x).shape == (0,)
    pcm = load_profile("pcm")
    laws = ProgrammingLaws(pcm, programming_plan(pcm))
    np.testing.assert_array_equal(laws.nu_mean(x), pcm.drift.nu.mean.evaluate(x))
    flat = load_profile("pcm", overrides={"programming.noise": {"kind": "relative", "sigma_rel": 0.04}})
    assert ProgrammingLaws(flat, programming_plan(flat)).sigma_us(x).shape == (0,)


def test_drift_plan_pcm():
    p = load_profile("pcm")
    t = 3600.0
    plan = drift_plan(p, t, noiseless=False, has_nu=True)
    t0, tr = p.drift.t0_s, p.read_noise.t_read_s
    assert plan.log_ratio == math.log((t + t0) / t0)
    assert plan.c_read == math.sqrt(math.log((t + t0 + tr) / (2 * tr)))
    assert plan.w_unit == 1.0 / (p.conductance.g_max_us - p.conductance.g_min_us)
    assert plan.has_nu and plan.has_read and plan.differential and plan.draws
    assert not (plan.digital or plan.has_var or plan.has_ir or plan.has_sig or plan.has_relax or plan.shared_neg)
    quiet = drift_plan(p, t, noiseless=True, has_nu=False)
    assert not (quiet.has_nu or quiet.has_read or quiet.draws) and quiet.log_ratio == 0.0 == quiet.c_read
    assert _types(plan) == _types(quiet)
    # the drift factor law
    nu = np.array([[0.0, 0.05, 0.1]], np.float32)
    (d,) = DriftLaws(p, plan, np.float32).drift_factor(nu)
    np.testing.assert_array_equal(d, np.exp(nu * np.float32(-plan.log_ratio)))


def test_drift_plan_layouts_and_noise_kinds():
    single = drift_plan(load_profile("pcm", overrides={"mapping.kind": "single_reference",
                                                        "read_noise.per_read_sigma_rel": 0.03}),
                        10.0, noiseless=False, has_nu=True)
    assert single.w_unit == 2.0 / 25.0 and single.has_var and single.shared_neg and single.var_rel2 == 0.03 * 0.03
    wires = drift_plan(load_profile("pcm", overrides={"tile.bit_line_r_ohm": 2.0}), 10.0, noiseless=False, has_nu=True)
    assert wires.has_ir and wires.r_us == 2e-6 and not wires.digital
    word = drift_plan(load_profile("pcm", overrides={"tile.bit_line_r_ohm": 2.0, "tile.word_line_r_ohm": 1.0}),
                      10.0, noiseless=False, has_nu=True)
    assert word.word_ir and word.digital and not word.has_ir and word.r_us == 0.0  # the whole tile is solved apart
    sonos = load_profile("sonos")
    s = drift_plan(sonos, 10.0, noiseless=False, has_nu=True)
    assert s.has_sig and s.has_var and not s.has_nu and not s.has_read  # gaussian law, no power-law drift
    assert s.log_ratio == 0.0 and not drift_plan(sonos, 10.0, noiseless=True, has_nu=True).has_var
    g = np.array([[0.0, 1.0, 3.2]], np.float32)
    (s2,) = DriftLaws(sonos, s, np.float32).read_sigma2(g)
    want = np.maximum(sonos.read_noise.sigma.evaluate(g / np.float32(3.2)), 0)
    np.testing.assert_array_equal(s2, want * want)


def test_drift_plan_relaxation():
    p = load_profile("reram_cmo")
    rx = p.drift
    assert not drift_plan(p, 0.0, noiseless=False, has_nu=True).has_relax  # none at t = 0
    assert not drift_plan(p, 100.0, noiseless=True, has_nu=True).has_relax
    plan = drift_plan(p, 0.5, noiseless=False, has_nu=True)  # read at t_min_s = 1 s below it
    assert plan.has_relax and not plan.has_nu and plan.draws
    assert plan.relax_mu_us == rx.mean_slope_us * math.log(rx.t_min_s) + rx.mean_at_1s_us
    assert plan.relax_sigma_us == max(rx.sigma_slope_us * math.log(rx.t_min_s) + rx.sigma_at_1s_us, 0.0)
    g = np.array([1.0, 5.0, 0.0], np.float32)
    z = np.array([0.5, -1.0, -3.0], np.float32)
    out = plan.relaxed(g, z, np.array([0, 1, 0], np.int8), np.float32)
    assert out[1] == g[1] and out[2] == 0.0  # stuck keeps its G, G >= 0
    assert out[0] == np.float32(np.float32(z[0] * np.float32(plan.relax_sigma_us)) + np.float32(plan.relax_mu_us)) + g[0]


def test_plans_are_named_tuples_of_scalars():
    for plan in (programming_plan(load_profile("pcm")), drift_plan(load_profile("pcm"), 1.0, noiseless=False, has_nu=True)):
        assert isinstance(plan, (ProgrammingPlan, DriftPlan))
        assert all(type(v) in (bool, int, float) for v in plan), plan
    assert DEFAULT_T0_S == 20.0


def test_plan_types_pickle_for_the_kernel_cache():
    """Numba's on-disk cache finds a compiled kernel again by its argument types: a plan's
    Numba type (which names the NamedTuple class) must pickle and compare equal."""
    import pickle

    import numba

    for plan in (programming_plan(load_profile("pcm")), drift_plan(load_profile("pcm"), 1.0, noiseless=False, has_nu=True)):
        ty = numba.typeof(plan)
        assert pickle.loads(pickle.dumps(ty)) == ty
