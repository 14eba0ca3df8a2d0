"""The fused all-tiles ADC kernel and the bfloat16 per-read-variance GEMM of tile_mvm."""

import math

import numba
import numpy as np
import pytest
import torch

from cimsim.crossbar import program_matrix, tile_mvm
from cimsim.crossbar import gemm
from cimsim.crossbar.gemm import VarianceGemm, bf16_bits as _bf16_bits, bf16_round as _bf16_round, gemm_tiles as _gemm_tiles
from cimsim.crossbar.mvm import mvm_plan as _plan
from cimsim.peripherals import RANGE_FIXED, AdcPlan, DacPlan
from cimsim.kernels import NUMBA as NB, REFERENCE as RF, converters_ref
from cimsim.profiles.loader import load_profile

Z = 5.0  # tolerance: 5 standard errors


def _adc(levels, nl, inl, noise):
    """An ADC plan with L = ``levels`` (0: ideal), nonlinearity ``(code, spec)``, INL table, noise (LSB)."""
    inl = np.asarray(inl, float)
    return AdcPlan(ideal=levels == 0, levels=levels, nl_code=nl[0], nl_spec=np.array(nl[1], float), inl=inl,
                   noise_lsb=noise, noisy=noise > 0 and levels > 0,
                   linear=nl[0] == 0 and inl.shape[0] == 0 and noise == 0.0 and levels > 0, range_kind=RANGE_FIXED)


def _coef(bound, gain, off, cs, levels):
    L = float(levels)
    sc = bound * cs
    z = np.zeros_like(bound)
    return np.stack([(1 + gain) * L / bound if L else z, off, sc / L if L else z, 1 / bound, 1 + gain, sc])


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 3e-7), (np.float64, 1e-12)])
@pytest.mark.parametrize("nl", [(0, [0.0]), (1, [0.01, 0.98, 0.0, -0.05]), (3, [1.5])])
@pytest.mark.parametrize("levels,noise,inl", [(0, 0.0, False), (127, 0.0, False), (7, 0.7, True), (15, 0.0, True)])
@pytest.mark.parametrize("var", ["none", "float", "bf16"])
def test_adc_tiles_numba_vs_reference(dtype, rtol, nl, levels, noise, inl, var):
    rng = np.random.default_rng(6)
    for nt, nb, no in [(1, 1, 1), (3, 5, 7), (4, 33, 300)]:
        part = (rng.standard_normal((nt, nb, no)) * 2).astype(dtype)
        part[0, 0, 0] = 50.0  # saturating
        v = rng.uniform(0, 0.1, part.shape).astype(dtype)
        v[..., 0] = 0.0
        vf = v if var == "float" else np.zeros((0, 0, 0), dtype)
        v16 = _bf16_bits(v) if var == "bf16" else np.zeros((0, 0, 0), np.uint16)
        z1, z2 = (rng.standard_normal(part.shape).astype(dtype) for _ in range(2))
        coef = _coef(rng.uniform(1, 3, (nt, no)), rng.normal(0, 0.05, (nt, no)), rng.normal(0, 0.5, (nt, no)),
                     rng.uniform(0.5, 2, (nt, no)), levels)
        rs = rng.uniform(0.5, 2, nb)
        inl_t = rng.normal(0, 0.3, 2 * levels + 1) if inl else np.zeros(0)
        y0 = rng.standard_normal((nb, no)).astype(dtype)
        outs = []
        for K in (NB, RF):
            y = y0.copy()
            sat = np.zeros((nb, nt, no), bool)
            K.adc_tiles(part, vf, v16, z1, z2, coef, 0, rs, -1.0, _adc(levels, nl, inl_t, noise),
                        np.zeros((nb, no)), y, sat, True, True)
            outs.append((y, sat))
        np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=rtol, atol=rtol)
        np.testing.assert_array_equal(outs[0][1], outs[1][1])
        if levels:
            assert outs[0][1][0, 0, 0]


@pytest.mark.parametrize("K", [NB, RF], ids=["numba", "reference"])
def test_adc_tiles_rounds_float32_variance_bits_as_torch(K):
    """float32 variance bits (uint32) are rounded to bfloat16 in the kernel exactly as torch's cast
    (ties to even, carries into the exponent): the same outputs as the cast's bfloat16 bits."""
    rng = np.random.default_rng(11)
    part = (rng.standard_normal((3, 9, 40)) * 2).astype(np.float32)
    v = rng.uniform(0, 0.5, part.shape).astype(np.float32)
    bits = v.view(np.uint32)
    bits[0, :, :8] = (bits[0, :, :8] & np.uint32(0xFFFF0000)) | np.uint32(0x8000)  # exact ties, both parities
    bits[1, :, :4] = np.uint32(0x3F7FFFFF)  # rounds up into the exponent
    v[2, :, :3] = 0.0
    z1 = rng.standard_normal(part.shape).astype(np.float32)
    z2 = np.zeros((0, 0, 0), np.float32)
    coef = _coef(rng.uniform(1, 3, (3, 40)), np.zeros((3, 40)), np.zeros((3, 40)), np.ones((3, 40)), 127)
    rs = np.ones(9)
    cast = torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert not np.array_equal(cast.astype(np.uint32) << np.uint32(16), bits)  # the rounding matters here
    outs = []
    for v16 in (cast, bits):
        y = np.zeros((9, 40), np.float32)
        sat = np.zeros((9, 3, 40), bool)
        K.adc_tiles(part, np.zeros((0, 0, 0), np.float32), v16, z1, z2, coef, 0, rs, 1.0, _adc(127, (0, [0.0]), [], 0.0),
                    np.zeros((9, 40)), y, sat, True, True)
        outs.append((y, sat))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


# one tile converted on its own (the per-tile ADC the fused kernel replaced), as the oracle
def _per_tile_adc(part, var, z_read, z_conv, bound, gain, offset, colscale, rowscale, sign,
                  levels, nl_code, nl_spec, inl, noise_lsb, y, sat, want_sat):
    val = part.astype(np.float64)
    if var.shape[0] > 0:
        val = val + np.sqrt(np.maximum(var.astype(np.float64), 0.0)) * z_read.astype(np.float64)
    u = val / bound
    u = converters_ref._nl_np(nl_code, nl_spec, u)
    u = (1.0 + gain) * u
    if levels > 0:
        u = u + offset / levels
        if noise_lsb > 0.0:
            u = u + noise_lsb * z_conv.astype(np.float64) / levels
        if want_sat:
            sat |= np.abs(u) > 1.0
        c = np.clip(np.rint(u * levels), -levels, levels)
        if inl.shape[0] > 0:
            c = c + inl[c.astype(np.int64) + levels]
        u = c / levels
    y[...] = (y.astype(np.float64) + u * bound * colscale * (rowscale.astype(np.float64) * sign)[:, None]).astype(y.dtype)


def test_adc_tiles_matches_per_tile_conversion():
    """Same codes as converting each tile on its own (linear fast path and general path)."""
    rng = np.random.default_rng(1)
    nt, nb, no = 3, 17, 40
    part = rng.standard_normal((nt, nb, no)) * 2
    v = rng.uniform(0, 0.1, part.shape)
    z1, z2 = rng.standard_normal(part.shape), rng.standard_normal(part.shape)
    bound = rng.uniform(1, 3, (nt, no))
    gain = rng.normal(0, 0.05, (nt, no))
    off = rng.normal(0, 0.5, (nt, no))
    cs = rng.uniform(0.5, 2, (nt, no))
    rs = rng.uniform(0.5, 2, nb)
    for nl, noise in (((0, [0.0]), 0.0), ((3, [1.5]), 0.4)):
        y1 = np.zeros((nb, no))
        y2 = np.zeros((nb, no))
        s1 = np.zeros((nb, nt, no), bool)
        s2 = np.zeros((nb, nt, no), bool)
        NB.adc_tiles(part, v, np.zeros((0, 0, 0), np.uint16), z1, z2, _coef(bound, gain, off, cs, 127), 0, rs, 1.0,
                     _adc(127, nl, [], noise), np.zeros((nb, no)), y1, s1, True, True)
        for k in range(nt):
            _per_tile_adc(part[k], v[k], z1[k], z2[k], bound[k], gain[k], off[k], cs[k], rs, 1.0, 127, nl[0],
                              np.array(nl[1]), np.zeros(0), noise, y2, s2[:, k, :], True)
        np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("K", [NB, RF])
@pytest.mark.parametrize("levels,nl,noise", [(127, (0, [0.0]), 0.0), (7, (3, [1.5]), 0.4),
                                             (0, (1, [0.01, 0.98, 0.0, -0.05]), 0.0)])
@pytest.mark.parametrize("var", ["none", "float", "bf16"])
def test_adc_tiles_in_groups_bitwise(K, levels, nl, noise, var):
    """Tiles converted group by group into one float64 accumulator (y written once, by the last
    group): the same bits and saturation masks as all tiles in one call."""
    rng = np.random.default_rng(4)
    nt, nb, no = 7, 9, 33
    part = (rng.standard_normal((nt, nb, no)) * 2).astype(np.float32)
    part[3, 2, 1] = 60.0
    v = rng.uniform(0, 0.1, part.shape).astype(np.float32)
    vf = v if var == "float" else np.zeros((0, 0, 0), np.float32)
    v16 = _bf16_bits(v) if var == "bf16" else np.zeros((0, 0, 0), np.uint16)
    z1, z2 = (rng.standard_normal(part.shape).astype(np.float32) for _ in range(2))
    coef = _coef(rng.uniform(1, 3, (nt, no)), rng.normal(0, 0.05, (nt, no)), rng.normal(0, 0.5, (nt, no)),
                 rng.uniform(0.5, 2, (nt, no)), levels)
    rs = rng.uniform(0.5, 2, nb)
    y0 = rng.standard_normal((nb, no)).astype(np.float32)
    res = []
    for groups in ([(0, 7)], [(0, 3), (3, 6), (6, 7)], [(k, k + 1) for k in range(7)]):
        y, sat, acc = y0.copy(), np.zeros((nb, nt, no), bool), np.zeros((nb, no))
        for k0, k1 in groups:
            sl = slice(k0, k1)
            K.adc_tiles(part[sl], vf[sl], v16[sl], z1[sl], z2[sl], coef, k0, rs, 0.5, _adc(levels, nl, [], noise),
                        acc, y, sat, True, k1 == nt)
            if k1 < nt:
                np.testing.assert_array_equal(y, y0)  # y is written once, at the end
        res.append((y, sat))
    for y, sat in res[1:]:
        np.testing.assert_array_equal(y, res[0][0])
        np.testing.assert_array_equal(sat, res[0][1])
    if levels:
        assert res[0][1][2, 3, 1]


@pytest.mark.parametrize("backend_name", ["numba", "reference"])
@pytest.mark.parametrize("sub,dtype", [("analog", np.float32), ("digital", np.float32), ("analog", np.float64)])
def test_tile_mvm_groups_of_tiles_bitwise(monkeypatch, backend_name, sub, dtype):
    """A layer whose tiles go through the GEMMs and the ADC in several groups (small group byte
    budget): the same bits and masks as one group of all the tiles."""
    import cimsim.crossbar.mvm as M

    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02, "mapping.subtraction": sub,
                                          "adc.noise_lsb": 0.3, "tile.rows": 64})
    rng = np.random.default_rng(9)
    W = (rng.standard_normal((90, 500)) / 20).astype(dtype)  # 8 tiles, the last one ragged
    x = rng.standard_normal((12, 500)).astype(dtype)
    ds = program_matrix(W, prof, rng=1).drift(60.0, 2, backend_name=backend_name)
    assert ds.state.grid.n_in_tiles == 8
    outs = []
    for budget in (1 << 30, 3 * 12 * 90 * np.dtype(dtype).itemsize, 1):  # groups of 8, 3 (3 + 3 + 2), 1 tiles
        monkeypatch.setattr(M, "_GROUP_BYTES", budget)
        outs.append(tile_mvm(x, ds, rng=5, return_masks=True, backend_name=backend_name))
    for y, m in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(m.adc_sat, outs[0][1].adc_sat)
        np.testing.assert_array_equal(m.x_q, outs[0][1].x_q)
    assert outs[0][1].adc_sat.shape == (12, 8, 90)


def test_bf16_helpers_match_torch():
    x = np.random.default_rng(2).standard_normal(10001).astype(np.float32) * np.float32(1e3)
    x[:3] = [0.0, 1.0, 2.0**-130]
    t = torch.from_numpy(x).to(torch.bfloat16)
    np.testing.assert_array_equal(_bf16_bits(x), t.view(torch.int16).numpy().view(np.uint16))
    np.testing.assert_array_equal(_bf16_round(x), t.float().numpy())
    assert np.all(np.abs(_bf16_round(x[3:]) - x[3:]) <= 2.0**-8 * np.abs(x[3:]))  # normal numbers: unit roundoff 2^-8


@pytest.mark.parametrize("backend_name,bf16_gemm", [("numba", True), ("numba", False), ("reference", False)])
def test_bf16_variance_gemm_error_bound(backend_name, bf16_gemm, monkeypatch):
    """sigma from the bf16 variance GEMM is within 1.5 2^-8 (relative) of the exact float64 value,
    on bfloat16 tensors (CPUs with bf16 instructions) and as fp32 GEMM of the rounded values.

    Three bf16 roundings (x^2, V, the GEMM output; unit roundoff 2^-8 each) bound the variance's
    relative error by (1 + 2^-8)^3 - 1, so sigma's by (1 + 2^-8)^1.5 - 1 < 1.5 2^-8.
    """
    monkeypatch.setattr(gemm, "BF16_GEMM", bf16_gemm)
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.05, "tile.rows": 64})
    rng = np.random.default_rng(0)
    W = rng.standard_normal((50, 150)).astype(np.float32)
    ds = program_matrix(W, prof, rng=0).drift(10.0, 1, backend_name=backend_name)
    from cimsim.kernels import engine as backend

    K = backend(backend_name)
    pl = _plan(ds, K)
    assert pl.gemm.var in (VarianceGemm.BF16, VarianceGemm.BF16_AS_FP32)
    x = rng.uniform(-1, 1, (9, 150)).astype(np.float32)
    grid = ds.state.grid
    exact = np.stack([(x[:, slice(*grid.in_slice(k))].astype(np.float64) ** 2)
                      @ ds.block(ds.v, k).astype(np.float64).T for k in range(grid.n_in_tiles)])
    vb = pl.streams[0].v
    if K.torch_gemm:
        assert vb[0].dtype == (torch.bfloat16 if bf16_gemm else torch.float32)
        x2 = torch.from_numpy(x).square().to(torch.bfloat16).to(vb[0].dtype)
        out = torch.empty(exact.shape, dtype=vb[0].dtype)
        _gemm_tiles(x2, vb, out)
        got = out.to(torch.bfloat16).float().numpy()
    else:
        x2 = _bf16_round(x * x)
        got = _bf16_round(np.stack([x2[:, slice(*grid.in_slice(k))] @ vb[k].T for k in range(grid.n_in_tiles)]))
    rel = np.abs(np.sqrt(got) / np.sqrt(exact) - 1)
    assert rel.max() <= 1.5 * 2.0**-8, rel.max()


@pytest.mark.parametrize("dtype,bf16_gemm", [(np.float32, True), (np.float32, False), (np.float64, False)])
def test_per_read_output_variance_float32_and_float64(dtype, bf16_gemm, monkeypatch):
    """var(y) = sum_j x_j^2 sigma_ij^2 (float32 chips: bf16 variance GEMM, |d var / var| <= 3 2^-8,
    on bfloat16 tensors or as fp32 GEMM of the rounded values, whichever the CPU has)."""
    monkeypatch.setattr(gemm, "BF16_GEMM", bf16_gemm)
    sig = 0.05
    prof = load_profile("ideal", overrides={"read_noise": {"kind": "gaussian", "sigma_rel": sig}, "tile.rows": 8})
    rng = np.random.default_rng(3)
    W = rng.uniform(-1, 1, (3, 20))
    W[:, 0] = 1.0
    x = rng.uniform(-1, 1, (1, 20))
    x[0, 0] = 1.0
    st = program_matrix(W.astype(dtype), prof, rng=0)
    assert st.dtype == dtype
    n = 20000
    y = tile_mvm(np.repeat(x, n, axis=0).astype(dtype), st, t_s=0, rng=4).astype(np.float64)
    Wd = W.astype(dtype).astype(np.float64)
    xd = x.astype(dtype).astype(np.float64)
    var = sig**2 * (xd**2 @ (Wd**2).T)[0]
    np.testing.assert_allclose(y.mean(0), (xd @ Wd.T)[0], atol=float(Z * np.sqrt(var.max() / n)))
    ratio = y.var(0, ddof=1) / var
    tol = Z * math.sqrt(2.0 / (n - 1)) + (3 * 2.0**-8 if dtype == np.float32 else 0.0)
    assert np.all(np.abs(ratio - 1) < tol), ratio


@pytest.mark.parametrize("variance", ["exact", "column_mean"])
@pytest.mark.parametrize("sub", ["analog", "digital"])
def test_torch_and_numba_threads_bitwise(sub, variance):
    """Same seed -> same bits with 1 and all torch/numba threads (bf16 variance GEMM or its
    column_mean approximation, ragged tile)."""
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02, "mapping.subtraction": sub,
                                          "adc.noise_lsb": 0.2, "tile.rows": 128,
                                          "read_noise.per_read_variance": variance})
    rng = np.random.default_rng(5)
    W = (rng.standard_normal((300, 600)) / 25).astype(np.float32)
    x = rng.standard_normal((64, 600)).astype(np.float32)
    ds = program_matrix(W, prof, rng=1).drift(3600.0, 2)
    y_all = tile_mvm(x, ds, rng=7)
    nt, nn = torch.get_num_threads(), numba.get_num_threads()
    try:
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        y_one = tile_mvm(x, ds, rng=7)
    finally:
        torch.set_num_threads(nt)
        numba.set_num_threads(nn)
    np.testing.assert_array_equal(y_all, y_one)
    np.testing.assert_array_equal(tile_mvm(x, ds, rng=7), y_all)
    assert not np.array_equal(y_all, tile_mvm(x, ds, rng=8))  # the noise is there


@pytest.mark.parametrize("ov", [{}, {"mapping.kind": "single_reference", "tile.cols": 64},
                                {"conductance.n_levels": 4, "mapping.weight_slices": 2, "dac.bit_serial": True,
                                 "tile.bit_line_r_ohm": 20.0, "tile.cols": 64}])
def test_numba_and_reference_backends_agree(ov):
    """Same draws, same arithmetic up to GEMM summation order: codes agree except at rare boundaries."""
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02, "tile.rows": 128, **ov})
    rng = np.random.default_rng(5)
    W = (rng.standard_normal((200, 300)) / 17).astype(np.float32)
    x = rng.standard_normal((32, 300)).astype(np.float32)
    st = program_matrix(W, prof, rng=1)
    y1 = tile_mvm(x, st.drift(10.0, 2), rng=3)
    y2 = tile_mvm(x, st.drift(10.0, 2, backend_name="reference"), rng=3, backend_name="reference")
    close = np.isclose(y1, y2, rtol=1e-5, atol=1e-6)
    assert close.mean() > 0.99, close.mean()
    assert np.abs(y1 - y2).max() < 0.05 * np.abs(y1).max()


@pytest.mark.parametrize("dtype,ut,mask", [(np.float32, np.uint32, 0x7FFFFFFF), (np.float64, np.uint64, 0x7FFFFFFFFFFFFFFF)])
def test_row_absmax_bits_and_nonfinite_inputs(dtype, ut, mask):
    from cimsim.errors import NonFiniteError

    x = np.random.default_rng(8).standard_normal((37, 300)).astype(dtype)
    x[3] = 0.0
    x[4, 7] = -0.0
    outs = []
    for K in (NB, RF):
        o = np.empty(37, ut)
        K.row_absmax_bits(x.view(ut), ut(mask), 300, o[:, None])
        outs.append(o.view(dtype))
    np.testing.assert_array_equal(outs[0], np.abs(x).max(axis=1))
    np.testing.assert_array_equal(outs[1], np.abs(x).max(axis=1))
    # segments (the weight scale of each tile column): 300 = 2 x 128 + a ragged 44
    segs = []
    for K in (NB, RF):
        o = np.empty((37, 3), ut)
        K.row_absmax_bits(x.view(ut), ut(mask), 128, o)
        segs.append(o.view(dtype))
    ref = np.stack([np.abs(x[:, k0:k0 + 128]).max(axis=1) for k0 in (0, 128, 256)], axis=1)
    assert segs[0].tobytes() == ref.tobytes() and segs[1].tobytes() == ref.tobytes()
    prof = load_profile("pcm")
    st = program_matrix(np.ones((5, 300), dtype), prof, rng=0)
    for bad in (np.nan, np.inf, -np.inf):
        xb = x.copy()
        xb[5, 11] = bad
        with pytest.raises(NonFiniteError):
            tile_mvm(xb, st, t_s=0.0, rng=0)
        with pytest.raises(NonFiniteError):
            tile_mvm(xb[5], st, t_s=0.0, rng=0)
    # the fast path (same dtype, contiguous) and the general path (a copy in another layout) agree
    y1 = tile_mvm(x, st, t_s=1.0, rng=3)
    y2 = tile_mvm(np.asfortranarray(x), st, t_s=1.0, rng=3)
    np.testing.assert_array_equal(y1, y2)


def test_serial_kernel_copies_give_the_parallel_bits():
    """The single-threaded copies ``sized`` picks for small work (and on pool threads) equal the
    parallel kernels bit for bit: DAC (with noise, masks), fused ADC (bf16 variance, conversion
    noise, INL, saturation), row max."""
    import threading

    from cimsim._threads import _mark_pool
    from cimsim.kernels import SERIAL_MAX

    rng = np.random.default_rng(11)
    x = (rng.standard_normal((40, 300)) * 2).astype(np.float32)
    bound = np.full(40, 1.5)
    z = rng.standard_normal(x.shape).astype(np.float32)
    dac = []
    for f in (NB.dac_convert, NB.dac_convert.serial):
        a, b, c = np.empty_like(x), np.empty_like(x), np.empty(x.shape, bool)
        f(x, bound, DacPlan(ideal=False, levels=7, nl_code=1, nl_spec=np.array([0.0, 1.0, 0.0, -0.1]), noise_lsb=0.5,
                            bit_serial=False, range_kind=0), z, a, b, c, True)
        dac.append((a, b, c))
    for u, v in zip(*dac):
        np.testing.assert_array_equal(u, v)
    nt, nb, no = 3, 33, 70
    part = (rng.standard_normal((nt, nb, no)) * 3).astype(np.float32)
    v16 = _bf16_bits(rng.uniform(0, 0.1, part.shape).astype(np.float32))
    z1, z2 = (rng.standard_normal(part.shape).astype(np.float32) for _ in range(2))
    coef = _coef(rng.uniform(1, 3, (nt, no)), rng.normal(0, 0.05, (nt, no)), rng.normal(0, 0.5, (nt, no)),
                 rng.uniform(0.5, 2, (nt, no)), 15)
    inl = rng.normal(0, 0.3, 31)
    adc = []
    for f in (NB.adc_tiles, NB.adc_tiles.serial):
        y = np.zeros((nb, no), np.float32)
        sat = np.zeros((nb, nt, no), bool)
        f(part, np.zeros((0, 0, 0), np.float32), v16, z1, z2, coef, 0, np.ones(nb), 1.0, _adc(15, (0, [0.0]), inl, 0.7),
          np.zeros((nb, no)), y, sat, True, True)
        adc.append((y, sat))
    assert adc[0][1].any()
    for u, v in zip(*adc):
        np.testing.assert_array_equal(u, v)
    mb = [np.empty((40, 3), np.uint32) for _ in range(2)]
    NB.row_absmax_bits(x.view(np.uint32), np.uint32(0x7FFFFFFF), 128, mb[0])
    NB.row_absmax_bits.serial(x.view(np.uint32), np.uint32(0x7FFFFFFF), 128, mb[1])
    np.testing.assert_array_equal(mb[0], mb[1])
    # the pick: small work or a pool thread -> serial copy; large work on the caller -> parallel
    import cimsim

    before = cimsim._threads._EXPLICIT[0] if cimsim._threads._EXPLICIT else None
    cimsim.set_num_threads(2)  # the parallel copy is only picked with more than one thread
    try:
        assert NB.adc_tiles.sized(SERIAL_MAX) is NB.adc_tiles.serial
        assert NB.adc_tiles.sized(SERIAL_MAX + 1) is NB.adc_tiles.parallel
        cimsim.set_num_threads(1)  # one thread (the user's setting or torch's): the serial copy
        assert NB.adc_tiles.sized(SERIAL_MAX + 1) is NB.adc_tiles.serial
    finally:
        cimsim.set_num_threads(before)
    picked = []

    def on_pool_thread():
        _mark_pool()
        picked.append(NB.dac_convert.sized(10 * SERIAL_MAX))

    th = threading.Thread(target=on_pool_thread)
    th.start()
    th.join()
    assert picked == [NB.dac_convert.serial]


def test_ideal_converter_is_bits_none_in_the_plans():
    """The plans say ideal exactly when bits is null, and everything else follows from that field."""
    from cimsim.peripherals import adc_plan, dac_plan, is_ideal

    prof = load_profile("pcm")
    for bits, ideal, L in ((None, True, 0), (8, False, 127), (2, False, 1)):
        d = dac_plan(prof.dac.model_copy(update={"bits": bits, "noise_lsb": 0.0, "bit_serial": False}))
        a = adc_plan(prof.adc.model_copy(update={"bits": bits, "noise_lsb": 0.0 if bits is None else 0.3,
                                                 "offset_error_lsb": 0.0}))
        assert is_ideal(bits) is ideal and d.ideal is ideal and a.ideal is ideal
        assert d.levels == L and a.levels == L
        assert a.noisy is (not ideal) and a.linear is False
        assert d.identity is ideal


def test_ideal_adc_through_tile_mvm_equals_the_unquantised_sum():
    """An ideal ADC (adc.bits null) converts without codes: tile_mvm equals the float sum of the
    tiles' partial sums (no rounding to an LSB), and an 8-bit ADC does not."""
    rng = np.random.default_rng(12)
    W = (rng.standard_normal((40, 300)) / 17).astype(np.float64)
    x = rng.standard_normal((6, 300))
    out = {}
    for bits in (None, 8):
        prof = load_profile("ideal", overrides={"adc": {"bits": bits, "range": {"kind": "fixed", "bound": 64.0}},
                                                "tile.rows": 128})
        ds = program_matrix(W, prof, rng=0).drift(0.0, 0)
        out[bits] = tile_mvm(x, ds, rng=1)
    np.testing.assert_allclose(out[None], x @ W.T, rtol=1e-10, atol=1e-10)
    assert np.abs(out[8] - x @ W.T).max() > 1e-6
