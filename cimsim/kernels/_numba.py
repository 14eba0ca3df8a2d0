"""Numba kernels of the crossbar path (jitted twins of :mod:`cimsim.kernels._reference`).

Rules (DESIGN.md section 4): kernels never validate, raise user errors or touch an RNG; every
random input arrives as an array drawn by the public wrapper from the caller's Generator.
``prange`` runs only over independent outputs (devices, batch rows); any reduction is a plain
sequential loop.  So results depend on the seed alone, not on the thread count.

fastmath flags come from :data:`FASTMATH` (no ``nnan``/``ninf``: NaN/Inf semantics are kept);
the quantisers (:func:`dac_convert`, :func:`adc_tiles`) compile without fastmath so that
rounding at a level boundary matches the reference exactly.

Encoded parameters
------------------
* Device laws (sigma_prog, mu_nu, sigma_nu, Q_s of x = G/g_max) are not evaluated here: the
  callers evaluate the profile's XFunctions vectorised (numpy's SIMD transcendentals) and pass
  the values as arrays.
* Nonlinearity (DAC/ADC transfer of the normalised signal u): code 0 none, 1 polynomial
  (spec = coefficients c0, c1, ...), 2 table (spec = ``[n, u.., v..]``), 3 s-curve (spec = ``[k]``).
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import njit, prange

__all__ = [
    "FASTMATH",
    "zig_fast",
    "zig_fast_serial",
    "dac_convert_serial",
    "adc_tiles_serial",
    "row_absmax_bits_serial",
    "zig_slow",
    "map_targets",
    "program_targets",
    "program_devices",
    "drift_to_blocks",
    "bit_line_transfer",
    "dac_convert",
    "adc_tiles",
    "row_absmax_bits",
]

#: The one fastmath flag set used by the non-quantising kernels (never ``fastmath=True``).
FASTMATH = frozenset({"nsz", "arcp", "contract"})
_FM = set(FASTMATH)

#: The per-call MVM kernels (DAC, ADC, square) run between BLAS calls.  On a quiet 2-core
#: machine threading them is faster (tile_mvm at N=1024, batch 256: 1.4-1.6x torch threaded,
#: 2.4x serial); on a machine already loaded by other processes the two thread pools can fight
#: (measured 3-10x slower), where ``numba.set_num_threads(1)`` helps.  Their loops run over
#: independent outputs (prange), so either setting gives bitwise identical results.
_MVM_PARALLEL = True


# --------------------------------------------------------------------------- random transforms
_MASK23 = np.uint64(0x7FFFFF)
_MASK52 = np.uint64(0xFFFFFFFFFFFFF)
_TWO_M53 = 1.1102230246251565e-16  # 2**-53


@njit(cache=True, inline="always")
def _zig_split(r, half):
    """(layer, sign, |mantissa|) of a unit: 8 bits layer, 1 bit sign, 23 (half) or 52 bits."""
    idx = np.int64(r & np.uint64(0xFF))
    if half:
        return idx, np.int64((r >> np.uint64(8)) & np.uint64(1)), (r >> np.uint64(9)) & _MASK23
    return idx, np.int64((r >> np.uint64(8)) & np.uint64(1)), (r >> np.uint64(9)) & _MASK52


@njit(cache=True, nogil=True)
def _zig_units(units, jmask, shift, mmask, ks, ws, out, fail_idx, fail_unit, b, k0):
    """Fast path over one block: ``units`` (uint32 halves or uint64 words; the masks, shift and
    ks in the units' dtype) and ``out`` are the block's slices, ``k0`` its first output index;
    returns the block's failure count."""
    # pass 1, branch-free (it vectorises): the sign is folded into the 512-entry tables (index =
    # the unit's low 9 bits) and a failure (~1.5 %) is marked NaN.  Whole slices, not a k0..k1
    # range of the full arrays, and ks in the units' dtype: each made this loop 1.5-2x faster
    for k in range(units.shape[0]):
        r = units[k]
        j = r & jmask
        m = (r >> shift) & mmask
        x = np.float64(m) * ws[j]
        out[k] = x if m < ks[j] else np.nan
    # pass 2: list the failures in order (with pass 1, ~3x faster than one loop that branches
    # and appends; same bits)
    cap = fail_idx.shape[1]
    c = 0
    for k in range(units.shape[0]):
        if out[k] != out[k]:
            if c < cap:
                fail_idx[b, c] = k0 + k
                fail_unit[b, c] = units[k]
            c += 1
    return c


@njit(cache=True, nogil=True)
def _zig_block(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt, b, bs):
    """Fast path of one block of outputs (see :func:`zig_fast`)."""
    k0 = b * bs
    k1 = min(out.shape[0], (b + 1) * bs)
    if half:  # unit k = the k-th 32-bit half, low half first (a little-endian view)
        fail_cnt[b] = _zig_units(words.view(np.uint32)[k0:k1], np.uint32(0x1FF), np.uint32(9), np.uint32(0x7FFFFF),
                                 ks, ws, out[k0:k1], fail_idx, fail_unit, b, k0)
    else:
        fail_cnt[b] = _zig_units(words[k0:k1], np.uint64(0x1FF), np.uint64(9), _MASK52, ks, ws, out[k0:k1],
                                 fail_idx, fail_unit, b, k0)


@njit(cache=True, parallel=True)
def zig_fast(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt):
    """Ziggurat fast path (Marsaglia & Tsang 2000, 256 layers, as numpy's ``standard_normal``).

    Unit k of the caller's random bits (the k-th 32-bit half, low half first, when ``half``, else
    the k-th word) -> layer i (bits 0-7), sign s (bit 8), mantissa m (the bits above, 23 or 52);
    ks / ws are the signed tables of 512 entries, j = i + 256 s: ks[j] = ki[i], ws[j] =
    (-1)^s wi[i].  x = m ws[j]; if m < ks[j] (x inside the part of layer i that lies under the
    density, ~98.5 %) out[k] = x.  Otherwise out[k] = NaN and k is listed for :func:`zig_slow`
    (the wedge / tail test that needs more bits): block b = outputs [b B, (b+1) B), B =
    out.size / n_blocks rounded up, writes its failures in order to fail_idx[b, :] and
    their count to fail_cnt[b] (a count above the row length means the list overflowed; the
    caller then scans the block).
    """
    nb = fail_cnt.shape[0]
    bs = (out.shape[0] + nb - 1) // nb
    for b in prange(nb):
        _zig_block(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt, b, bs)


@njit(cache=True, nogil=True)
def zig_slow(units, half, ki, wi, fi, r_tail, out, fails, extra, state):
    """Finish the units :func:`zig_fast` could not, exactly as the ziggurat does, in list order.

    For unit k = fails[j] (its bits units[j]: layer i, mantissa m): layer 0 -> tail: repeat
    xx = -ln(1 - u1)/r, yy = -ln(1 - u2) until 2 yy > xx^2, z = r + xx; layer i > 0 -> wedge:
    accept x = m wi[i] if fi[i] + u (fi[i-1] - fi[i]) < exp(-x^2/2), else restart with a new
    unit (fast test, then wedge/tail again).  Uniforms u = (word >> 11) 2^-53 and new units come
    from ``extra`` in order.  Resumable: ``state`` = [j, phase, layer, sign, mantissa] (phase 0
    start unit j, 1 wedge, 2 tail, 3 restart); returns the number of ``extra`` words used and
    stops early, state saved, when ``extra`` runs out (the caller draws more and calls again).
    """
    j = state[0]
    phase = state[1]
    idx = state[2]
    s = state[3]
    m = np.uint64(state[4])
    pos = 0
    ne = extra.shape[0]
    nf = fails.shape[0]
    while j < nf:
        if phase == 0:
            idx, s, m = _zig_split(units[j], half)
            phase = 2 if idx == 0 else 1
            continue
        need = 2 if phase == 2 else 1
        if pos + need > ne:
            break
        if phase == 3:
            w = extra[pos]
            pos += 1
            idx, s, m = _zig_split(w & np.uint64(0xFFFFFFFF) if half else w, half)
            if m < ki[idx]:
                x = np.float64(m) * wi[idx]
                out[fails[j]] = -x if s else x
                j += 1
                phase = 0
            else:
                phase = 2 if idx == 0 else 1
        elif phase == 1:
            u = np.float64(extra[pos] >> np.uint64(11)) * _TWO_M53
            pos += 1
            x = np.float64(m) * wi[idx]
            if fi[idx] + u * (fi[idx - 1] - fi[idx]) < math.exp(-0.5 * x * x):
                out[fails[j]] = -x if s else x
                j += 1
                phase = 0
            else:
                phase = 3
        else:
            u1 = np.float64(extra[pos] >> np.uint64(11)) * _TWO_M53
            u2 = np.float64(extra[pos + 1] >> np.uint64(11)) * _TWO_M53
            pos += 2
            xx = -math.log1p(-u1) / r_tail
            yy = -math.log1p(-u2)
            if yy + yy > xx * xx:
                z = r_tail + xx
                out[fails[j]] = -z if s else z
                j += 1
                phase = 0
    state[0] = j
    state[1] = phase
    state[2] = idx
    state[3] = s
    state[4] = np.int64(m)
    return pos


# --------------------------------------------------------------------------- interpolation
@njit(cache=True, inline="always", fastmath=_FM)
def _interp(x, xs, ys, n):
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    t = (x - xs[lo]) / (xs[hi] - xs[lo])
    return ys[lo] + t * (ys[hi] - ys[lo])


# --------------------------------------------------------------------------- programming
@njit(cache=True, nogil=True, fastmath=_FM)
def map_targets(W, scales, rows, kind, g_min, dg, out_pos, out_neg):
    """Weights -> target conductances (µS) of each device.

    w_n = clip(W[o, j] / s[j // rows, o], -1, 1), s the weight scale of tile column (k, o).
    kind 0, differential pair:  G+ = g_min + max(w_n, 0) dg,  G- = g_min + max(-w_n, 0) dg.
    kind 1, single device with reference column:  G = g_min + (w_n + 1)/2 dg (out_neg unused).
    dg = g_max - g_min.  Exact inverse: w = s (G+ - G-)/dg, resp. w = s 2 (G - G_ref)/dg with
    G_ref = g_min + dg/2 (cf. aihwkit's SinglePairConductanceConverter).
    """
    n_out, n_in = W.shape
    for o in range(n_out):
        for k0 in range(0, n_in, rows):
            s = scales[k0 // rows, o]
            k1 = min(k0 + rows, n_in)
            # branch-free inner loops over row slices (they vectorise; 2-D indexing over a k0..k1
            # range made them 2-3x slower): max(w, 0) dg is w dg or 0 exactly
            wr = W[o, k0:k1]
            pr = out_pos[o, k0:k1]
            if kind == 0:
                nr = out_neg[o, k0:k1]
                for j in range(k1 - k0):
                    w = min(max(wr[j] / s, -1.0), 1.0)
                    pr[j] = g_min + max(w, 0.0) * dg
                    nr[j] = g_min + max(-w, 0.0) * dg
            else:
                for j in range(k1 - k0):
                    w = min(max(wr[j] / s, -1.0), 1.0)
                    pr[j] = g_min + (w + 1.0) * 0.5 * dg


@njit(cache=True, nogil=True, fastmath=_FM)
def program_targets(target, u_round, z_var, u_fault, ip, fp, t_out, fault_out):
    """Steps 1-3 of programming, per device (flat arrays): the target each device ends up with.

    ip = [n_levels (0 = continuous), stochastic, prog_kind, clip_upper, has_drift, absolute,
          has_var, has_fault];  fp = [g_min, g_max, prog_param, var_sigma, p_min, p_max].

    1. levels: G_T = g_min + q(G_T - g_min)/step * step, step = dg/(n_levels-1), q = rint, or
       floor(v + u) (stochastic rounding: P(up) = distance to the lower level / step).
    2. variability: G_T = g_min + (G_T - g_min) max(1 + s z, 0) (each device's range scales).
    3. stuck-at faults: u < p_min -> stuck at g_min (code 1); u < p_min + p_max -> g_max (code 2).
    t_out (float64) gets G_T, fault_out the codes (when has_fault).  The device laws of
    x_T = G_T/g_max are then evaluated by the caller (vectorised) for :func:`program_devices`.
    """
    n_levels = ip[0]
    stochastic = ip[1]
    has_var = ip[6]
    has_fault = ip[7]
    g_min = fp[0]
    g_max = fp[1]
    var_sigma = fp[3]
    p_min = fp[4]
    p_max = fp[5]
    step = (g_max - g_min) / (n_levels - 1) if n_levels > 1 else 0.0
    n = target.shape[0]
    # one flat loop per step, the flags outside the loops (they vectorise); t_out is float64, so
    # holding the intermediate there rounds nothing
    if n_levels > 1 and stochastic:
        for i in range(n):
            t_out[i] = g_min + math.floor((np.float64(target[i]) - g_min) / step + u_round[i]) * step
    elif n_levels > 1:
        for i in range(n):
            t_out[i] = g_min + np.rint((np.float64(target[i]) - g_min) / step) * step
    else:
        for i in range(n):
            t_out[i] = np.float64(target[i])
    if has_var:
        for i in range(n):
            t_out[i] = g_min + (t_out[i] - g_min) * max(1.0 + var_sigma * z_var[i], 0.0)
    if has_fault:
        p_both = p_min + p_max
        for i in range(n):
            u = u_fault[i]
            fault_out[i] = 1 if u < p_min else (2 if u < p_both else 0)


@njit(cache=True, nogil=True, fastmath=_FM)
def program_devices(t, fault, z_prog, z_nu, sig, mu, sd, ip, fp, g_out, nu_out):
    """Steps 4-6 of programming, per device, from the targets G_T = t of :func:`program_targets`.

    sig / mu / sd: the device laws at x_T = G_T/g_max (sigma_prog(x_T) >= 0 in µS already
    scaled by g_max/g_ref for kind 3, mu_nu(x_T), sigma_nu(x_T)); empty when unused.
    4. programming noise: kind 1 G = G_T + sigma_us z; kind 2 G = G_T (1 + sigma_rel z); kind 3
       G = G_T + sigma_prog(x_T) z (Nandakumar et al. 2019, Joshi et al. 2020 Fig. 3:
       sigma_prog(x) = max(0.26348 + 1.9650 x - 1.1731 x^2, 0) µS at g_ref = 25 µS).
    5. clip: G = max(G, g_min) (and min(G, g_max) if clip_upper).
    6. drift exponent: nu = |N(mu_nu(x_T), sigma_nu(x_T))| (or max(., 0) if not absolute).
    Stuck devices (fault code 1 / 2) sit at g_min / g_max with no noise and nu = 0 (they never
    drift).  Runs on the calling thread without the GIL: callers run row chunks side by side.
    """
    prog_kind = ip[2]
    clip_upper = ip[3]
    has_drift = ip[4]
    absolute = ip[5]
    has_fault = ip[7]
    g_min = fp[0]
    g_max = fp[1]
    prog_param = fp[2]
    # one flat loop per stage, the flags outside the loops (they vectorise; 1 loop with the flags
    # and the fault test inside did not); stuck devices are overwritten last
    n = t.shape[0]
    hi = g_max if clip_upper else np.inf
    # float32 targets (no levels/variability/faults) are exact in float64; max/min, not
    # branches: about half the G- devices of a pair clip at g_min
    if prog_kind == 1:
        for i in range(n):
            g_out[i] = min(max(np.float64(t[i]) + prog_param * z_prog[i], g_min), hi)
    elif prog_kind == 2:
        for i in range(n):
            g_out[i] = min(max(np.float64(t[i]) * (1.0 + prog_param * z_prog[i]), g_min), hi)
    elif prog_kind == 3:
        for i in range(n):
            g_out[i] = min(max(np.float64(t[i]) + sig[i] * z_prog[i], g_min), hi)
    else:
        for i in range(n):
            g_out[i] = min(max(np.float64(t[i]), g_min), hi)
    if has_drift:
        if absolute:
            for i in range(n):
                nu_out[i] = abs(mu[i] + sd[i] * z_nu[i])
        else:
            for i in range(n):
                nu_out[i] = max(mu[i] + sd[i] * z_nu[i], 0.0)
    if has_fault:
        for i in range(n):
            code = fault[i]
            if code != 0:
                g_out[i] = g_min if code == 1 else g_max
                if has_drift:
                    nu_out[i] = 0.0


# --------------------------------------------------------------------------- drift
@njit(cache=True, inline="always")
def _transfer(gs, r_us, n, u):
    """Bit-line IR drop of one column of n cells (conductances gs[0:n], µS): u[j] = the share
    of cell j's current G_j V_j that reaches the sense amplifier.

    Cell 0 is farthest from the sense amplifier (a virtual ground); a wire of r_us = R / 1e6
    (R in Ω per cell pitch) joins neighbouring cells and the last cell to the amplifier; word
    lines are ideal.  Kirchhoff at the bit-line nodes gives A v = g V with g_j = r_us G_j and A
    tridiagonal (diagonal g_j + 1 + [j > 0], off-diagonals -1); the output current is v_{n-1}/R,
    so y = sum_j G_j u_j V_j with A u = e_{n-1}.  Thomas elimination of that right-hand side:
    m_0 = g_0 + 1, m_j = g_j + 2 - 1/m_{j-1}; u_{n-1} = 1/m_{n-1}, u_j = u_{j+1}/m_j (exact for
    this linear network; u = 1 for R = 0).
    """
    m = r_us * gs[0] + 1.0
    u[0] = m
    for j in range(1, n):
        m = r_us * gs[j] + 2.0 - 1.0 / m
        u[j] = m
    t = 1.0
    for j in range(n - 1, -1, -1):
        t = t / u[j]
        u[j] = t


@njit(cache=True, nogil=True)
def bit_line_transfer(g, r_us, rows, out):
    """out[l, j]: :func:`_transfer` of cell j of line l (conductances g [L, n], µS), each run of
    ``rows`` cells along axis 1 (one input tile) being its own bit line."""
    n_l, n_in = g.shape
    buf = np.empty(rows)
    u = np.empty(rows)
    for ln in range(n_l):
        for k0 in range(0, n_in, rows):
            rk = min(rows, n_in - k0)
            for j in range(rk):
                buf[j] = g[ln, k0 + j]
            _transfer(buf, r_us, rk, u)
            for j in range(rk):
                out[ln, k0 + j] = u[j]


@njit(cache=True, nogil=True, fastmath=_FM)
def drift_to_blocks(g_pos, d_pos, z_pos, q_pos, s_pos, g_neg, d_neg, z_neg, q_neg, s_neg, neg_row, n_out, o0, o1,
                    p0, n0, zn0, rows, fp, ip, out_w, out_wn, out_v, out_vn):
    """Conductances at time t of outputs o0 .. o1-1, in normalised weight units, per input tile.

    fp = [c_read, w_unit, var_rel2, r_us];
    ip = [has_nu, has_read, digital, has_var, shared_neg, has_ir, has_sig].
    Drift (Joshi et al. 2020; aihwkit PCM model): G(t) = G_prog ((t + t0)/t0)^(-nu) = G_prog d,
    with the drift factor d = exp(-nu ln((t + t0)/t0)) of each device evaluated by the caller
    (vectorised, numpy's SIMD exp) and passed as d_pos / d_neg.  1/f read noise accumulated up
    to t (static for one evaluation time): G += |G| Q_s(x_P) c_read z, x_P = G_prog/g_max of the
    programmed conductance (q = Q_s(x_P), evaluated by the caller), c_read =
    sqrt(ln((t + t0 + t_read)/(2 t_read))); then G = max(G, 0).  A device at exactly 0 µS stays
    there (0 times the drift factor, 0 times the noise).  With has_ir, bit-line IR drop: each
    device's G(t) times its transfer u (:func:`_transfer`, wire r_us = R/1e6 per cell pitch),
    the G+ devices of an output, its G- devices and a reference column each on their own bit
    line of one input tile.
    Output for input tile k (inputs k*rows .. k1-1, width rk): a C-ordered [out, rk] block at
    offset out*k*rows of the flat arrays: analog subtraction w = w_unit (G+ - G-), digital
    subtraction w = w_unit G+ and wn = w_unit G-; per-read variance (if has_var)
    v = var_rel2 w_unit^2 (G+^2 + G-^2) (analog) or separately per device (digital), plus
    w_unit^2 sigma^2 per device with has_sig (s_pos / s_neg: the squared per-read sigma, µS^2, of
    a read-noise law in x_P, rows as q); with IR drop each device's term times its transfer^2; with
    shared_neg (single_reference: one reference column serves every output of its tile, so its
    per-read noise is common to them and drawn separately by the MVM) G- adds no variance here.
    The G- device of output o is row neg_row[o] of g_neg (the reference column in
    single_reference mapping, the partner device in differential mapping).  Row offsets: g_pos
    row 0 is output p0, d_pos / z_pos / q_pos row 0 output o0, g_neg row 0 is G- row n0,
    d_neg / z_neg / q_neg row 0 G- row zn0 (so a chunk can pass whole arrays or its own rows).
    No GIL.
    """
    c_read = fp[0]
    w_unit = fp[1]
    var_rel2 = fp[2]
    r_us = fp[3]
    has_nu = ip[0] != 0
    has_read = ip[1] != 0
    digital = ip[2] != 0
    has_var = ip[3] != 0
    vneg = 0.0 if ip[4] != 0 else 1.0  # weight of the G- device's own per-read variance
    has_ir = ip[5] != 0
    has_sig = ip[6] != 0
    n_in = g_pos.shape[1]
    vscale = var_rel2 * w_unit * w_unit
    w2 = w_unit * w_unit
    bp = np.empty(rows)  # G(t) of the tile's G+ / G- cells of one output, then their transfers
    bn = np.empty(rows)
    up = np.ones(rows)
    un = np.ones(rows)
    for o in range(o0, o1):
        r = neg_row[o]
        for k0 in range(0, n_in, rows):
            rk = min(rows, n_in - k0)
            gpr = g_pos[o - p0, k0:k0 + rk]
            gnr = g_neg[r - n0, k0:k0 + rk]
            for j in range(rk):
                bp[j] = np.float64(gpr[j])
                bn[j] = np.float64(gnr[j])
            if has_nu:
                dpr = d_pos[o - o0, k0:k0 + rk]
                dnr = d_neg[r - zn0, k0:k0 + rk]
                for j in range(rk):
                    bp[j] = bp[j] * dpr[j]
                    bn[j] = bn[j] * dnr[j]
            if has_read:
                qpr = q_pos[o - o0, k0:k0 + rk]
                zpr = z_pos[o - o0, k0:k0 + rk]
                qnr = q_neg[r - zn0, k0:k0 + rk]
                znr = z_neg[r - zn0, k0:k0 + rk]
                for j in range(rk):
                    gp = bp[j]
                    gn = bn[j]
                    bp[j] = max(gp + abs(gp) * qpr[j] * c_read * zpr[j], 0.0)
                    bn[j] = max(gn + abs(gn) * qnr[j] * c_read * znr[j], 0.0)
            if has_ir:  # the transfers of this output's two bit lines in tile k, from their G(t)
                _transfer(bp, r_us, rk, up)
                _transfer(bn, r_us, rk, un)
                for i in range(rk):
                    bp[i] = bp[i] * up[i]
                    bn[i] = bn[i] * un[i]
            b0 = n_out * k0 + o * rk  # output o's row of tile k's [out, rk] block
            ow = out_w[b0:b0 + rk]
            if digital:
                own = out_wn[b0:b0 + rk]
                for i in range(rk):
                    ow[i] = w_unit * bp[i]
                    own[i] = w_unit * bn[i]
            else:
                for i in range(rk):
                    ow[i] = w_unit * (bp[i] - bn[i])
            if has_var:
                ov = out_v[b0:b0 + rk]
                ovn = out_vn[b0:b0 + rk] if digital else ov
                for i in range(rk):
                    gp = bp[i]
                    gn = bn[i]
                    vp = vscale * gp * gp
                    vn = vscale * vneg * gn * gn
                    if has_sig:
                        vp += w2 * s_pos[o - o0, k0 + i] * up[i] * up[i]
                        vn += w2 * vneg * s_neg[r - zn0, k0 + i] * un[i] * un[i]
                    if digital:
                        ov[i] = vp
                        ovn[i] = vn
                    else:
                        ov[i] = vp + vn


# --------------------------------------------------------------------------- converters
@njit(cache=True, inline="always")
def _nl(code, spec, u):
    if code == 0:
        return u
    if code == 1:
        y = 0.0
        for i in range(spec.shape[0] - 1, -1, -1):
            y = y * u + spec[i]
        return y
    if code == 2:
        n = int(spec[0])
        return _interp(u, spec[1 : 1 + n], spec[1 + n : 1 + 2 * n], n)
    return math.tanh(spec[0] * u) / math.tanh(spec[0])


@njit(cache=True, parallel=_MVM_PARALLEL)
def dac_convert(x, bound, levels, nl_code, nl_spec, noise_lsb, z, x_norm, x_q, clip, want_masks):
    """Input DAC, per element (signed, symmetric, L = 2^(bits-1) - 1 levels per polarity).

    u = x / bound[b]; if L > 0: clip[b, j] = |u| > 1, u = rint(clip(u, -1, 1) L) / L;
    v = f(u) (nonlinearity); if noise_lsb > 0: v += noise_lsb z / L.  x_norm = v is what drives
    the array (normalised units); x_q = v bound[b] the same in input units (what the array saw).
    levels = 0 means an ideal converter: no clipping, no quantisation, no noise.
    """
    n_b, n_in = x.shape
    fast = levels > 0 and nl_code == 0 and noise_lsb == 0.0
    Lf = np.float64(levels)
    for b in prange(n_b):
        bd = bound[b]
        inv = 1.0 / bd
        if fast:
            # linear and noiseless: the same arithmetic as below in flat, branch-free loops that vectorise
            if want_masks:
                for j in range(n_in):
                    u = x[b, j] * inv
                    clip[b, j] = abs(u) > 1.0
                    v = np.rint(min(max(u, -1.0), 1.0) * Lf) / Lf
                    x_norm[b, j] = v
                    x_q[b, j] = v * bd
            else:
                for j in range(n_in):
                    u = min(max(x[b, j] * inv, -1.0), 1.0)
                    x_norm[b, j] = np.rint(u * Lf) / Lf
            continue
        for j in range(n_in):
            u = x[b, j] * inv
            c = False
            if levels > 0:
                if u > 1.0:
                    u = 1.0
                    c = True
                elif u < -1.0:
                    u = -1.0
                    c = True
                u = np.rint(u * levels) / levels
            v = _nl(nl_code, nl_spec, u) if nl_code != 0 else u
            if noise_lsb > 0.0:
                v = v + noise_lsb * z[b, j] / levels
            x_norm[b, j] = v
            if want_masks:
                x_q[b, j] = v * bd
                clip[b, j] = c


@njit(cache=True, parallel=_MVM_PARALLEL)
def adc_tiles(part, var, var16, z_read, z_conv, coef, k0, rowscale, sign, levels, nl_code, nl_spec, inl,
              noise_lsb, acc, y, sat, want_sat, finish):
    """ADC conversion of a group of G input tiles k0 .. k0 + G - 1 of one conversion stream,
    summed over the tiles into the float64 accumulator acc; with ``finish``, acc then goes into y.

    part ``[G, B, O]`` partial sums (normalised units) of the group's tiles; per-read variance
    ``var [G, B, O]`` (float) or ``var16 [G, B, O]`` (bfloat16 bit patterns, uint16; the value is
    the float32 with these as its upper 16 bits), or both empty without per-read noise;
    ``z_read`` / ``z_conv [G, B, O]`` standard normals (empty when unused); index k of these is
    the global tile k0 + k.  ``coef [6, T, O]`` float64 per tile column (all T tiles), from the
    ADC full scale ``bound``, gain error ``gain``, offset ``offset`` (LSB), column weight scale
    ``colscale`` and L levels: ``[(1 + gain) L / bound, offset, bound colscale / L, 1 / bound,
    1 + gain, bound colscale]``.  With L = levels, per (k, b, o) (k the global tile index):

    val = part + sqrt(var) z_read (per-read noise of the column, a sum of independent Gaussians,
    exact in distribution; sqrt in float32 for var16, in float64 for var);
    linear converter (no nonlinearity, no INL, no conversion noise, L > 0):
    w = val coef0 + coef1 (= u L, u = (1 + gain) val / bound + offset / L);
    otherwise: u = (1 + gain) f(val / bound) (f the front-end nonlinearity); if L > 0:
    w = u L + offset + noise_lsb z_conv;
    if L > 0: sat[b, k, o] |= |w| > L, code = clip(rint(w), -L, L) + inl[code + L] (LSB),
    acc[b, o] += code coef2 (= code / L bound colscale); if L = 0 (ideal ADC): acc[b, o] += u coef5.
    acc ``[B, O]`` float64 carries the sum over the tiles k in order across the groups (the caller
    zeroes it before a stream's first group); with ``finish`` (a stream's last group):
    y[b, o] += sign rowscale[b] acc[b, o].  ``sat [B, T, O]`` is indexed by the global tile.
    """
    n_t, n_b, n_out = part.shape
    has_var = var.shape[0] > 0
    has_v16 = var16.shape[0] > 0
    has_inl = inl.shape[0] > 0
    L = np.float64(levels)
    linear = nl_code == 0 and not has_inl and noise_lsb == 0.0 and levels > 0
    sat_row0 = np.zeros(n_out, np.bool_)  # stands in for sat[b, k] when no mask is wanted (unused)
    for b in prange(n_b):
        a = acc[b]
        w = np.empty(n_out, np.float64)  # val, then u L (+ offset) of the row: flat loops that vectorise
        vbits = np.empty(n_out if has_v16 else 0, np.uint32)
        vf = vbits.view(np.float32)
        for k in range(n_t):
            kk = k0 + k
            if has_v16:
                h = var16[k, b]
                for o in range(n_out):
                    vbits[o] = np.uint32(h[o]) << np.uint32(16)
            if linear:
                # the common case in one loop per row: same arithmetic as the general path below.
                # Saturation is OR-ed in unconditionally (s |= |w| > L): a conditional store
                # here stopped the loop from vectorising (measured 25x slower with masks)
                p = part[k, b]
                c0 = coef[0, kk]
                c1 = coef[1, kk]
                c2 = coef[2, kk]
                s = sat[b, kk] if want_sat else sat_row0
                if has_v16:
                    zr = z_read[k, b]
                    for o in range(n_out):
                        w[o] = np.float64(p[o]) + np.float64(np.sqrt(max(vf[o], np.float32(0.0)))) * np.float64(zr[o])
                elif has_var:
                    zr = z_read[k, b]
                    vr = var[k, b]
                    for o in range(n_out):
                        w[o] = np.float64(p[o]) + math.sqrt(max(np.float64(vr[o]), 0.0)) * np.float64(zr[o])
                else:
                    for o in range(n_out):
                        w[o] = np.float64(p[o])
                if want_sat:
                    for o in range(n_out):
                        wo = w[o] * c0[o] + c1[o]
                        s[o] = s[o] | (abs(wo) > L)
                        a[o] += min(max(np.rint(wo), -L), L) * c2[o]
                else:
                    for o in range(n_out):
                        a[o] += min(max(np.rint(w[o] * c0[o] + c1[o]), -L), L) * c2[o]
                continue
            if has_v16:
                for o in range(n_out):
                    sd = np.sqrt(max(vf[o], np.float32(0.0)))
                    w[o] = np.float64(part[k, b, o]) + np.float64(sd) * np.float64(z_read[k, b, o])
            elif has_var:
                for o in range(n_out):
                    sd = math.sqrt(max(np.float64(var[k, b, o]), 0.0))
                    w[o] = np.float64(part[k, b, o]) + sd * np.float64(z_read[k, b, o])
            else:
                for o in range(n_out):
                    w[o] = np.float64(part[k, b, o])
            for o in range(n_out):
                u = w[o] * coef[3, kk, o]
                if nl_code != 0:
                    u = _nl(nl_code, nl_spec, u)
                u = coef[4, kk, o] * u
                if levels > 0:
                    u = u * L + coef[1, kk, o]
                    if noise_lsb > 0.0:
                        u = u + noise_lsb * np.float64(z_conv[k, b, o])
                w[o] = u
            if levels == 0:
                for o in range(n_out):
                    a[o] += w[o] * coef[5, kk, o]
                continue
            if want_sat:
                s = sat[b, kk]
                for o in range(n_out):
                    s[o] = s[o] | (abs(w[o]) > L)
            if has_inl:
                for o in range(n_out):
                    c = min(max(np.rint(w[o]), -L), L)
                    a[o] += (c + inl[int(c) + levels]) * coef[2, kk, o]
            else:
                for o in range(n_out):
                    a[o] += min(max(np.rint(w[o]), -L), L) * coef[2, kk, o]
        if finish:
            rs = rowscale[b] * sign
            for o in range(n_out):
                y[b, o] += a[o] * rs


@njit(cache=True, parallel=_MVM_PARALLEL)
def row_absmax_bits(xbits, mask, out):
    """out[b] = max_j (xbits[b, j] & mask): the bit pattern of max_j |x[b, j]| (exact).

    xbits is a float array viewed as unsigned integers of its width (uint32 for float32, uint64
    for float64) and mask clears the sign bit: |x| ordered as floats equals its bits ordered as
    integers, and NaN/Inf have the largest patterns (>= the bits of +Inf), so one integer max per
    row gives both the DAC's dynamic bound and the finiteness check.
    """
    n_b, n = xbits.shape
    for b in prange(n_b):
        row = xbits[b]
        m = mask ^ mask
        for j in range(n):
            m = max(m, row[j] & mask)
        out[b] = m


def _serial_copy(kernel):
    """A single-threaded copy of the parallel ``kernel``: same code, same flags, no prange threads.

    The copy is a new function object named ``<name>_serial``.  Jitting ``kernel.py_func`` itself
    again would not do: Numba's on-disk cache names its files after the function's qualified
    name and keys them by signature and bytecode, not by the ``parallel`` flag, so the two
    dispatchers would share one cache entry and whichever compiled first would serve both (a
    "parallel" ADC that ran on one thread, or a "serial" copy that started threads on a pool
    thread).
    """
    f = kernel.py_func
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + "_serial"
    g.__doc__ = f.__doc__
    g.__module__ = f.__module__
    opts = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
    return njit(cache=True, nogil=True, **opts)(g)


# Single-threaded copies of the parallel kernels: for small work, where starting Numba's threads
# costs more than the loop (a 64 x 256 DAC: 10-18 us threaded, 3-9 us serial), and on pool
# threads.  Callers pick with :func:`cimsim.kernels.sized`.  The loops run over independent
# outputs, so the bits are equal.
zig_fast_serial = _serial_copy(zig_fast)
dac_convert_serial = _serial_copy(dac_convert)
adc_tiles_serial = _serial_copy(adc_tiles)
row_absmax_bits_serial = _serial_copy(row_absmax_bits)
