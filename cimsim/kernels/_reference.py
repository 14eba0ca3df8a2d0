"""Plain-numpy twins of :mod:`cimsim.kernels._numba`: same names, same signatures, same outputs.

These are the readable statement of what each kernel computes (the equations are in the jitted
kernels' docstrings); tests compare the two over shapes and dtypes, benchmarks time both.
"""

from __future__ import annotations

import math

import numpy as np

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

FASTMATH = frozenset()


def _units(words, n, half):
    if half:
        u = np.empty(2 * words.shape[0], np.uint64)
        u[0::2] = words & np.uint64(0xFFFFFFFF)
        u[1::2] = words >> np.uint64(32)
        return u[:n]
    return words[:n]


def _split(r, half):
    r = np.asarray(r, dtype=np.uint64)
    idx = (r & np.uint64(0xFF)).astype(np.int64)
    s = ((r >> np.uint64(8)) & np.uint64(1)).astype(bool)
    m = (r >> np.uint64(9)) & (np.uint64(0x7FFFFF) if half else np.uint64(0xFFFFFFFFFFFFF))
    return idx, s, m


def zig_fast(words, half, ks, ws, out, fail_idx, fail_unit, fail_cnt):
    n = out.shape[0]
    nb = fail_cnt.shape[0]
    cap = fail_idx.shape[1]
    bs = -(-n // nb) if nb else 0
    units = _units(words, n, half)
    j = (units & np.uint64(0x1FF)).astype(np.int64)
    m = (units >> np.uint64(9)) & (np.uint64(0x7FFFFF) if half else np.uint64(0xFFFFFFFFFFFFF))
    ok = m < ks[j]
    out[:] = np.where(ok, m.astype(np.float64) * ws[j], np.nan)
    for b in range(nb):
        f = np.flatnonzero(~ok[b * bs : (b + 1) * bs]) + b * bs
        fail_cnt[b] = f.size
        fail_idx[b, : min(cap, f.size)] = f[:cap]
        fail_unit[b, : min(cap, f.size)] = units[f[:cap]]


zig_fast_serial = zig_fast


def zig_slow(units, half, ki, wi, fi, r_tail, out, fails, extra, state):
    j, phase, idx, s, m = (int(v) for v in state)
    pos = 0
    ne, nf = extra.shape[0], fails.shape[0]

    def split(r):
        return r & 0xFF, (r >> 8) & 1, (r >> 9) & (0x7FFFFF if half else 0xFFFFFFFFFFFFF)

    def uni(w):
        return float(int(w) >> 11) * 2.0**-53

    while j < nf:
        if phase == 0:
            idx, s, m = split(int(units[j]))
            phase = 2 if idx == 0 else 1
            continue
        need = 2 if phase == 2 else 1
        if pos + need > ne:
            break
        if phase == 3:
            w = int(extra[pos])
            pos += 1
            idx, s, m = split(w & 0xFFFFFFFF if half else w)
            if m < int(ki[idx]):
                x = float(m) * wi[idx]
                out[fails[j]] = -x if s else x
                j, phase = j + 1, 0
            else:
                phase = 2 if idx == 0 else 1
        elif phase == 1:
            u = uni(extra[pos])
            pos += 1
            x = float(m) * wi[idx]
            if fi[idx] + u * (fi[idx - 1] - fi[idx]) < math.exp(-0.5 * x * x):
                out[fails[j]] = -x if s else x
                j, phase = j + 1, 0
            else:
                phase = 3
        else:
            u1, u2 = uni(extra[pos]), uni(extra[pos + 1])
            pos += 2
            xx = -math.log1p(-u1) / r_tail
            yy = -math.log1p(-u2)
            if yy + yy > xx * xx:
                z = r_tail + xx
                out[fails[j]] = -z if s else z
                j, phase = j + 1, 0
    state[:] = [j, phase, idx, s, m]
    return pos


def map_targets(W, scales, rows, kind, g_min, dg, out_pos, out_neg):
    n_out, n_in = W.shape
    k = np.arange(n_in) // rows
    s = scales[k, :].T  # [out, in]
    w = np.clip(W.astype(np.float64) / s, -1.0, 1.0)
    if kind == 0:
        out_pos[...] = g_min + np.maximum(w, 0.0) * dg
        out_neg[...] = g_min + np.maximum(-w, 0.0) * dg
    else:
        out_pos[...] = g_min + (w + 1.0) * 0.5 * dg


def program_targets(target, u_round, z_var, u_fault, ip, fp, t_out, fault_out):
    n_levels, stochastic, _, _, _, _, has_var, has_fault = (int(v) for v in ip)
    g_min, g_max, _, var_sigma, p_min, p_max = (float(v) for v in fp)
    t = target.astype(np.float64)
    if n_levels > 1:
        step = (g_max - g_min) / (n_levels - 1)
        v = (t - g_min) / step
        q = np.floor(v + np.asarray(u_round, dtype=np.float64)) if stochastic else np.rint(v)
        t = g_min + q * step
    if has_var:
        t = g_min + (t - g_min) * np.maximum(1.0 + var_sigma * np.asarray(z_var, dtype=np.float64), 0.0)
    t_out[:] = t
    if has_fault:
        u = np.asarray(u_fault, dtype=np.float64)
        code = np.zeros(t.shape, np.int8)
        code[u < p_min] = 1
        code[(u >= p_min) & (u < p_min + p_max)] = 2
        fault_out[:] = code


def program_devices(t, fault, z_prog, z_nu, sig, mu, sd, ip, fp, g_out, nu_out):
    _, _, prog_kind, clip_upper, has_drift, absolute, _, has_fault = (int(v) for v in ip)
    g_min, g_max, prog_param = (float(v) for v in fp[:3])
    t = np.asarray(t, dtype=np.float64)
    z_prog = np.asarray(z_prog, dtype=np.float64)
    g = t.copy()
    if prog_kind == 1:
        g = t + prog_param * z_prog
    elif prog_kind == 2:
        g = t * (1.0 + prog_param * z_prog)
    elif prog_kind == 3:
        g = t + sig * z_prog
    g = np.maximum(g, g_min)
    if clip_upper:
        g = np.minimum(g, g_max)
    code = fault if has_fault else np.zeros(t.shape, np.int8)
    g[code == 1] = g_min
    g[code == 2] = g_max
    g_out[:] = g
    if has_drift:
        nu = mu + sd * np.asarray(z_nu, dtype=np.float64)
        nu = np.abs(nu) if absolute else np.maximum(nu, 0.0)
        nu[code != 0] = 0.0
        nu_out[:] = nu


def drift_to_blocks(g_pos, d_pos, z_pos, q_pos, s_pos, g_neg, d_neg, z_neg, q_neg, s_neg, neg_row, n_out, o0, o1,
                    p0, n0, zn0, rows, fp, ip, out_w, out_wn, out_v, out_vn):
    c_read, w_unit, var_rel2, r_us = (float(v) for v in fp)
    has_nu, has_read, digital, has_var, shared_neg, has_ir, has_sig = (bool(v) for v in ip)
    vneg = 0.0 if shared_neg else 1.0
    rsel = neg_row[o0:o1]

    def at(g, d, z, q):
        g = g.astype(np.float64)
        if has_nu:
            g = g * d
        if has_read:
            g = np.maximum(g + np.abs(g) * np.asarray(q, dtype=np.float64) * c_read * np.asarray(z, dtype=np.float64), 0.0)
        return g

    gp = at(g_pos[o0 - p0 : o1 - p0], d_pos, z_pos, q_pos)
    gn = at(g_neg[rsel - n0], d_neg[rsel - zn0] if has_nu else None,
            z_neg[rsel - zn0] if has_read else None, q_neg[rsel - zn0] if has_read else None)
    n_in = g_pos.shape[1]
    up, un = np.ones_like(gp), np.ones_like(gn)
    if has_ir:
        bit_line_transfer(gp, r_us, rows, up)
        bit_line_transfer(gn, r_us, rows, un)
        gp, gn = gp * up, gn * un
    vscale = var_rel2 * w_unit * w_unit
    vp, vn = vscale * gp**2, vscale * vneg * gn**2
    if has_sig:
        vp = vp + w_unit**2 * np.asarray(s_pos, np.float64) * up**2
        vn = vn + w_unit**2 * vneg * np.asarray(s_neg, np.float64)[rsel - zn0] * un**2
    for k0 in range(0, n_in, rows):
        k1 = min(k0 + rows, n_in)
        rk = k1 - k0
        sl = slice(n_out * k0 + o0 * rk, n_out * k0 + o1 * rk)
        if digital:
            out_w[sl] = (w_unit * gp[:, k0:k1]).ravel()
            out_wn[sl] = (w_unit * gn[:, k0:k1]).ravel()
            if has_var:
                out_v[sl] = vp[:, k0:k1].ravel()
                out_vn[sl] = vn[:, k0:k1].ravel()
        else:
            out_w[sl] = (w_unit * (gp[:, k0:k1] - gn[:, k0:k1])).ravel()
            if has_var:
                out_v[sl] = (vp[:, k0:k1] + vn[:, k0:k1]).ravel()


def bit_line_transfer(g, r_us, rows, out):
    """Twin of the kernel: the same recursion, vectorised over the lines (axis 0)."""
    n_l, n_in = g.shape
    for k0 in range(0, n_in, rows):
        rk = min(rows, n_in - k0)
        gk = np.asarray(g[:, k0 : k0 + rk], dtype=np.float64) * r_us
        m = np.empty((n_l, rk))
        m[:, 0] = gk[:, 0] + 1.0
        for j in range(1, rk):
            m[:, j] = gk[:, j] + 2.0 - 1.0 / m[:, j - 1]
        u = np.empty((n_l, rk))
        t = np.ones(n_l)
        for j in range(rk - 1, -1, -1):
            t = t / m[:, j]
            u[:, j] = t
        out[:, k0 : k0 + rk] = u


def _nl_np(code, spec, u):
    if code == 0:
        return u
    if code == 1:
        y = np.zeros_like(u)
        for c in spec[::-1]:
            y = y * u + c
        return y
    if code == 2:
        n = int(spec[0])
        return np.interp(u, spec[1 : 1 + n], spec[1 + n : 1 + 2 * n])
    return np.tanh(spec[0] * u) / np.tanh(spec[0])


def dac_convert(x, bound, levels, nl_code, nl_spec, noise_lsb, z, x_norm, x_q, clip, want_masks):
    bd = bound.astype(np.float64)[:, None]
    u = x.astype(np.float64) * (1.0 / bd)
    c = np.zeros(u.shape, bool)
    if levels > 0:
        c = np.abs(u) > 1.0
        u = np.rint(np.clip(u, -1.0, 1.0) * levels) / levels
    v = _nl_np(nl_code, nl_spec, u)
    if noise_lsb > 0.0:
        v = v + noise_lsb * z.astype(np.float64) / levels
    x_norm[...] = v
    if want_masks:
        x_q[...] = v * bd
        clip[...] = c


def adc_tiles(part, var, var16, z_read, z_conv, coef, k0, rowscale, sign, levels, nl_code, nl_spec, inl,
              noise_lsb, acc, y, sat, want_sat, finish):
    n_t = part.shape[0]
    L = float(levels)
    linear = nl_code == 0 and inl.shape[0] == 0 and noise_lsb == 0.0 and levels > 0
    coef = coef[:, k0 : k0 + n_t]
    for k in range(n_t):
        val = part[k].astype(np.float64)
        if var16.shape[0] > 0:
            vv = (var16[k].astype(np.uint32) << np.uint32(16)).view(np.float32)
            val = val + np.sqrt(np.maximum(vv, np.float32(0.0))).astype(np.float64) * z_read[k].astype(np.float64)
        elif var.shape[0] > 0:
            val = val + np.sqrt(np.maximum(var[k].astype(np.float64), 0.0)) * z_read[k].astype(np.float64)
        if linear:
            w = val * coef[0, k] + coef[1, k]
        else:
            u = coef[4, k] * _nl_np(nl_code, nl_spec, val * coef[3, k])
            if levels == 0:
                acc += u * coef[5, k]
                continue
            w = u * L + coef[1, k]
            if noise_lsb > 0.0:
                w = w + noise_lsb * z_conv[k].astype(np.float64)
        if want_sat:
            sat[:, k0 + k, :] |= (w > L) | (w < -L)
        c = np.minimum(np.maximum(np.rint(w), -L), L)
        if inl.shape[0] > 0:
            c = c + inl[c.astype(np.int64) + levels]
        acc += c * coef[2, k]
    if finish:
        y[...] = (y.astype(np.float64) + acc * (rowscale.astype(np.float64) * sign)[:, None]).astype(y.dtype)


def row_absmax_bits(xbits, mask, out):
    out[...] = (xbits & mask).max(axis=1, initial=0)


dac_convert_serial = dac_convert
adc_tiles_serial = adc_tiles
row_absmax_bits_serial = row_absmax_bits
