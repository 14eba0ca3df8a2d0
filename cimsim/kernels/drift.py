"""Drift: programmed devices -> conductances at time t, as the GEMM blocks of each input tile.

The laws and their equations are in :mod:`cimsim.devices.drift`; the drift kernel takes its
:class:`~cimsim.devices.drift.DriftPlan` (a NamedTuple) for the scalars and flags.

Jitted kernels; their plain-numpy twins, same names and signatures, are in
:mod:`cimsim.kernels.drift_ref`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import FM

__all__ = ['bit_line_transfer', 'drift_to_blocks']


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


@njit(cache=True, nogil=True, fastmath=FM)
def drift_to_blocks(g_pos, d_pos, z_pos, q_pos, s_pos, g_neg, d_neg, z_neg, q_neg, s_neg, neg_row, n_out, o0, o1,
                    p0, n0, zn0, rows, plan, out_w, out_wn, out_v, out_vn):
    """Conductances at time t of outputs o0 .. o1-1, in normalised weight units, per input tile.

    ``plan``: the :class:`~cimsim.devices.drift.DriftPlan` (equations in
    :mod:`cimsim.devices.drift`).  Per device: G(t) = G_P d with the drift factor d (d_pos /
    d_neg, evaluated by the caller, vectorised) if plan.has_nu; 1/f read noise
    G += |G| Q_s(x_P) c_read z (q = Q_s(x_P), evaluated by the caller) if plan.has_read, then
    G = max(G, 0): a device at exactly 0 µS stays there; with plan.clamp, G = min(max(G, g_min), g_max).  With plan.has_ir, bit-line IR drop: each
    device's G(t) times its transfer u (:func:`_transfer`), the G+ devices of an output, its G-
    devices and a reference column each on their own bit line of one input tile.
    Output for input tile k (inputs k*rows .. k1-1, width rk): a C-ordered [out, rk] block at
    offset out*k*rows of the flat arrays: analog subtraction w = w_unit (G+ - G-), digital
    subtraction (plan.digital) w = w_unit G+ and wn = w_unit G-; per-read variance (if has_var)
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
    c_read = plan.c_read
    w_unit = plan.w_unit
    var_rel2 = plan.var_rel2
    r_us = plan.r_us
    has_nu = plan.has_nu
    has_read = plan.has_read
    digital = plan.digital
    has_var = plan.has_var
    vneg = 0.0 if plan.shared_neg else 1.0  # weight of the G- device's own per-read variance
    has_ir = plan.has_ir
    has_sig = plan.has_sig
    clamp = plan.clamp
    g_lo = plan.g_min_us
    g_hi = plan.g_max_us
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
            if clamp:
                for j in range(rk):
                    bp[j] = min(max(bp[j], g_lo), g_hi)
                    bn[j] = min(max(bn[j], g_lo), g_hi)
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
