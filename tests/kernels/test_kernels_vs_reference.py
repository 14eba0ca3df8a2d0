"""Every jitted kernel against its plain-numpy twin, over shapes and dtypes.

Tolerances: the twins do the same float64 arithmetic in the same order except where numpy
vectorises (libm vs numpy log/exp/pow: a few ulp), so float64 outputs agree to rtol 1e-12 and
float32 outputs to 2 float32 ulp (rtol 3e-7); quantised outputs (DAC/ADC codes, masks) must
agree exactly.
"""

import numpy as np

from cimsim.peripherals import RANGE_DYNAMIC, DacPlan
import pytest

from cimsim.devices.drift import drift_plan
from cimsim.devices.programming import (
    NOISE_CONSTANT,
    NOISE_NONE,
    NOISE_RELATIVE,
    programming_plan,
)
from cimsim.kernels import FASTMATH, KERNEL_NAMES
from cimsim.kernels import NUMBA as NB
from cimsim.kernels import REFERENCE as RF
from cimsim.profiles.loader import load_profile

#: a programming plan with g_min = 0, g_max = 25 µS and the PCM noise law, to vary field by field
PLAN = programming_plan(load_profile("pcm", overrides={"conductance.g_min_us": 0.0, "conductance.g_max_us": 25.0}))

SHAPES = [(1, 1), (256, 256), (37, 300), (1, 513), (5, 7)]
DTYPES = [(np.float32, 3e-7), (np.float64, 1e-12)]


def test_every_kernel_has_a_twin_and_fastmath_is_safe():
    for name in KERNEL_NAMES:
        assert callable(getattr(NB, name)) and callable(getattr(RF, name))
    assert not FASTMATH & {"nnan", "ninf", "fast"}
    for name in ("dac_convert", "adc_tiles"):
        assert not getattr(NB, name).parallel.targetoptions.get("fastmath")
        assert not getattr(NB, name).serial.targetoptions.get("fastmath")


#: Random123's known answers for Philox4x32-10 (kat_vectors: counter[4], key[2] -> output[4])
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def test_philox_known_answers():
    from cimsim.kernels import philox, philox_ref

    for ctr, key, want in PHILOX_KAT:
        got = philox.philox4x32(*(np.uint64(v) for v in ctr + key))
        assert [int(v) for v in got] == list(want)
        ref = philox_ref.philox4x32(*(np.array([v, v], np.uint64) for v in ctr), *key)
        assert [int(v[1]) for v in ref] == list(want)


@pytest.mark.parametrize("half", [True, False])
def test_ziggurat_kernels(half):
    """Parallel kernel, serial copy and numpy twin bit-equal, over enough normals that the
    wedge and tail paths run thousands / dozens of times."""
    from cimsim.kernels.ziggurat import ZIG, ZIGGURAT_R
    from cimsim.kernels.ziggurat_ref import _units

    n = 400_003
    dt = np.float32 if half else np.float64
    words = np.random.default_rng(0).bit_generator.random_raw(2)
    outs = []
    for f in (NB.zig_normals.parallel, NB.zig_normals.serial, RF.zig_normals):
        out = np.empty(n, dt)
        f(words, half, out)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    # the slow path ran: units that fail the fast test, and values beyond r (tail path only)
    r = _units(words[0] & 0xFFFFFFFF, words[0] >> np.uint64(32), words[1] & 0xFFFFFFFF, words[1] >> np.uint64(32),
               np.arange(n, dtype=np.uint64), half)
    m = (r >> np.uint64(9)) & (np.uint64(0x7FFFFF) if half else np.uint64(0xFFFFFFFFFFFFF))
    assert (m >= ZIG[half].ks[(r & np.uint64(0x1FF)).astype(np.int64)]).sum() > 3000
    assert (np.abs(outs[0]) > ZIGGURAT_R).sum() > 30


@pytest.mark.parametrize("half", [True, False])
def test_inline_normals_equal_the_bulk_draw(half):
    """normal32_at / normal64_at (jitted, in any order) and their twins give the bulk kernel's bits."""
    from numba import njit

    from cimsim.kernels import ziggurat, ziggurat_ref
    from cimsim.kernels.philox import philox_key

    at = ziggurat.normal32_at if half else ziggurat.normal64_at

    @njit
    def draw(words, idx, out):
        k0, k1, c2, c3 = philox_key(words[0], words[1])
        for t in range(idx.shape[0]):
            out[t] = at(k0, k1, c2, c3, idx[t])

    n = 200_000
    dt = np.float32 if half else np.float64
    words = np.random.default_rng(7).bit_generator.random_raw(2)
    bulk = np.empty(n, dt)
    NB.zig_normals(words, half, bulk)
    idx = np.random.default_rng(8).permutation(n)
    got = np.empty(n, dt)
    draw(words, idx, got)
    np.testing.assert_array_equal(got, bulk[idx])
    key = [int(v) for v in (words[0] & 0xFFFFFFFF, words[0] >> np.uint64(32), words[1] & 0xFFFFFFFF, words[1] >> np.uint64(32))]
    twin = (ziggurat_ref.normal32_at if half else ziggurat_ref.normal64_at)(*key, idx[:5000].astype(np.uint64))
    np.testing.assert_array_equal(twin, bulk[idx[:5000]])


@pytest.mark.parametrize("half", [True, False])
def test_batched_slow_path_is_finish(half):
    """The bulk kernel's batched slow path gives _finish's value (the definition) for every
    flagged unit and leaves the others alone; on units that all fail the fast test (random
    layers, every fourth the tail), so that its rare cases (the tail, a wedge rejection whose
    new unit fails again) come by the hundreds, not by the dozen as in a natural draw."""
    from numba import njit

    from cimsim.kernels import ziggurat as Z

    n = 1 << 16
    bits = 23 if half else 52
    rng = np.random.default_rng(3)
    layer = rng.integers(0, 256, n)
    layer[::4] = 0
    ki = Z.ZIG[half].ki[layer].astype(np.float64)
    m = (ki + rng.random(n) * (2.0**bits - ki)).astype(np.uint64)  # ki <= m < 2^bits: fails
    units = np.uint64(layer) | (rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(8)) | (m << np.uint64(9))
    units = units.astype(np.uint32) if half else units
    fail = (rng.random(n) < 0.9).astype(np.uint8)
    key = tuple(np.uint64(v) for v in rng.integers(0, 2**32, 4, dtype=np.uint64))
    i0 = 5 * Z.BLOCK
    dt = np.float32 if half else np.float64
    got = np.full(n, 7.0, dt)
    Z._slow_path(*key, got, i0, units, fail, half)

    @njit
    def finish_each(k0, k1, c2, c3, i0, units, out):
        for k in range(units.shape[0]):
            out[k] = Z._finish(k0, k1, c2, c3, np.uint64(i0 + k), np.uint64(units[k]), half)

    want = np.empty(n, dt)
    finish_each(*key, i0, units, want)
    flagged = fail.astype(bool)
    np.testing.assert_array_equal(got[flagged], want[flagged])
    assert (got[~flagged] == 7.0).all()
    assert (np.abs(got[flagged]) > Z.ZIGGURAT_R).sum() > 5000  # tail values


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,rtol", DTYPES)
@pytest.mark.parametrize("differential", [True, False])
def test_map_targets(shape, dtype, rtol, differential):
    rng = np.random.default_rng(1)
    W = (rng.standard_normal(shape) * 2).astype(dtype)
    rows = 64
    scales = rng.uniform(0.5, 3, (-(-shape[1] // rows), shape[0]))
    outs = []
    for K in (NB, RF):
        a = np.empty(shape, dtype)
        b = np.empty(shape if differential else (0, 0), dtype)
        K.map_targets(W, scales, rows, differential, PLAN._replace(g_min_us=1.0, g_max_us=25.0), a, b)
        outs.append((a, b))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=rtol)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=rtol)


@pytest.mark.parametrize("n", [1, 1000, 4097])
@pytest.mark.parametrize("dtype,rtol", DTYPES)
@pytest.mark.parametrize("variant", ["pcm", "levels_sr_faults_var", "constant", "relative", "none"])
def test_program_targets_and_devices(n, dtype, rtol, variant):
    prof = load_profile("pcm")
    rng = np.random.default_rng(2)
    target = rng.uniform(0, 25, n).astype(dtype)
    target[::3] = 0.0
    u = rng.random(n).astype(np.float32)
    z1, z2, z3 = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    plan = PLAN._replace(prog_param=1.0)
    if variant == "levels_sr_faults_var":
        plan = plan._replace(n_levels=9, stochastic=True, clip_upper=True, nu_absolute=False, var_sigma_rel=0.1,
                             has_var=True, p_stuck_min=0.05, p_stuck_max=0.1, has_fault=True)
    elif variant == "constant":
        plan = plan._replace(noise=NOISE_CONSTANT, prog_param=0.5)
    elif variant == "relative":
        plan = plan._replace(noise=NOISE_RELATIVE, prog_param=0.05)
    elif variant == "none":
        plan = plan._replace(noise=NOISE_NONE, has_drift=False, nu_absolute=False)
    res = []
    for K in (NB, RF):
        t = np.empty(n)
        f = np.zeros(n, np.int8)
        K.program_targets(target, u, z1, u[::-1].copy(), plan, t, f)
        x = t / 25.0
        sig = np.maximum(prof.programming.noise.sigma.evaluate(x), 0.0) * plan.prog_param
        mu, sd = prof.drift.nu.mean.evaluate(x), prof.drift.nu.std.evaluate(x)
        g, nu = (np.empty(n, dtype) for _ in range(2))
        K.program_devices(t, f, z2, z3, sig, mu, sd, plan, g, nu)
        res.append((t, g, nu if plan.has_drift else None, f if plan.has_fault else None))
    for a_, b_ in zip(res[0], res[1]):
        if a_ is not None:
            np.testing.assert_allclose(a_, b_, rtol=rtol, atol=1e-12)
    if plan.has_fault and n > 100:
        assert 0 < (res[0][3] != 0).sum() < n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_program_devices_takes_the_targets_themselves(dtype):
    """With no levels, variability or faults, program_matrix hands the mapped targets (chip
    dtype) straight to program_devices instead of program_targets' float64 copy: same bits."""
    rng = np.random.default_rng(5)
    n = 5000
    target = rng.uniform(0, 25, n).astype(dtype)
    target[::4] = 0.0
    plan = PLAN._replace(prog_param=1.0)
    assert plan.same_targets
    z2, z3 = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    t64 = np.empty(n)
    f = np.zeros(n, np.int8)
    NB.program_targets(target, z2, z2, z2, plan, t64, f)
    assert np.array_equal(t64, target.astype(np.float64))
    sig = rng.uniform(0, 1, n).astype(dtype)
    mu, sd = (rng.uniform(0, 0.1, n).astype(dtype) for _ in range(2))
    out = []
    for t in (t64, target):
        g, nu = (np.empty(n, dtype) for _ in range(2))
        NB.program_devices(t, f, z2, z3, sig, mu, sd, plan, g, nu)
        out.append((g, nu))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,rtol", DTYPES)
@pytest.mark.parametrize("digital,single", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("r_ohm,sig,clamp", [(0.0, 0, 0), (2000.0, 0, 0), (2000.0, 1, 0), (0.0, 0, 1)])
def test_drift_to_blocks(shape, dtype, rtol, digital, single, r_ohm, sig, clamp):
    rng = np.random.default_rng(3)
    n_out, n_in = shape
    rows, cols = 64, 16
    neg_rows = -(-n_out // cols) if single else n_out
    neg_row = (np.arange(n_out) // cols) if single else np.arange(n_out)
    arrs = [rng.uniform(0, 25, s).astype(dtype) for s in [shape, (neg_rows, n_in)]]
    # drift factors exp(-nu ln((t + t0)/t0)), as DriftRun passes them
    ds = [np.exp(-rng.uniform(0, 0.1, a.shape) * np.log(1e5)) for a in arrs]
    arrs[0][:, ::3] = 0.0  # devices at g_min (= 0 here), as the unused half of a pair
    zs = [rng.standard_normal(a.shape).astype(dtype) for a in arrs]
    qs = [rng.uniform(0, 0.2, a.shape) for a in arrs]
    plan = drift_plan(load_profile("pcm"), 1e5, noiseless=False, has_nu=True)._replace(
        c_read=3.0, w_unit=1 / 25, var_rel2=0.02**2, r_us=r_ohm * 1e-6, has_nu=True, has_read=True,
        digital=bool(digital), has_var=True, shared_neg=bool(single), has_ir=r_ohm > 0, has_sig=bool(sig),
        clamp=bool(clamp), g_min_us=5.0, g_max_us=20.0)  # clamp: G(t) in [5, 20] µS (drift.clamp)
    # shared_neg with single_reference: the reference's variance is drawn apart
    ss = [rng.uniform(0, 0.3, a.shape) if sig else np.zeros((0, 0)) for a in arrs]  # squared read-noise sigma, µS^2
    outs = []
    for K in (NB, RF):
        o = [np.full(n_out * n_in, np.nan, dtype) for _ in range(4)]
        if not digital:
            o[1], o[3] = np.empty(0, dtype), np.empty(0, dtype)
        # in two row chunks, as the crossbar calls it (z, q of a chunk's own rows; reference rows whole);
        # the first chunk with whole device arrays, the second with its own rows only (row offsets)
        cut = n_out // 2
        for o0, o1 in ((0, cut), (cut, n_out)):
            dn, zn, qn, zn0 = (ds[1], zs[1], qs[1], 0) if single else (ds[1][o0:o1], zs[1][o0:o1], qs[1][o0:o1], o0)
            sp = ss[0][o0:o1] if sig else ss[0]
            sn = (ss[1] if single else ss[1][o0:o1]) if sig else ss[1]
            if o0 == 0:
                gp, gn, p0, n0 = arrs[0], arrs[1], 0, 0
            else:
                gp, p0 = arrs[0][o0:o1], o0
                gn, n0 = (arrs[1], 0) if single else (arrs[1][o0:o1], o0)
            K.drift_to_blocks(gp, ds[0][o0:o1], zs[0][o0:o1], qs[0][o0:o1], sp, gn, dn, zn, qn, sn, neg_row, n_out, o0, o1,
                              p0, n0, zn0, rows, plan, *o)
        assert not np.isnan(o[0]).any()
        outs.append(o)
    if single and digital:
        assert np.all(outs[0][3] == 0)
    if clamp and digital:  # every device's G(t) = w / w_unit within [g_min, g_max]
        for a in (outs[0][0], outs[0][1]):
            g = a.astype(np.float64) * 25
            assert g.min() >= 5.0 * (1 - 1e-6) and g.max() <= 20.0 * (1 + 1e-6)
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=rtol * 1e-3)


def _dac(levels, nl, noise):
    """A DAC plan with L = ``levels`` (0: ideal), nonlinearity ``(code, spec)`` and noise (LSB)."""
    return DacPlan(ideal=levels == 0, levels=levels, nl_code=nl[0], nl_spec=np.array(nl[1], float), noise_lsb=noise,
                   bit_serial=False, range_kind=RANGE_DYNAMIC)


def _xcases(dtype):
    rng = np.random.default_rng(4)
    for shape in [(1, 1), (1, 300), (256, 256), (7, 33)]:
        yield rng.standard_normal(shape).astype(dtype) * 2
    yield np.zeros((3, 5), dtype)
    yield np.full((2, 9), 50.0, dtype)  # saturating


@pytest.mark.parametrize("dtype,rtol", DTYPES)
@pytest.mark.parametrize("nl", [(0, [0.0]), (1, [0.0, 1.0, 0.0, -0.1]), (2, [3, -1, 0, 1, -0.9, 0.1, 0.95]), (3, [2.0])])
@pytest.mark.parametrize("levels,noise", [(0, 0.0), (127, 0.0), (7, 0.5)])
def test_dac_convert(dtype, rtol, nl, levels, noise):
    for x in _xcases(dtype):
        bound = np.full(x.shape[0], 1.5)
        z = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
        outs = []
        for K in (NB, RF):
            a, b = np.empty_like(x), np.empty_like(x)
            c = np.empty(x.shape, bool)
            K.dac_convert(x, bound, _dac(levels, nl, noise), z, a, b, c, True)
            outs.append((a, b, c))
        np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=rtol, atol=0)
        np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=rtol, atol=0)
        np.testing.assert_array_equal(outs[0][2], outs[1][2])


