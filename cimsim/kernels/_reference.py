"""Plain-numpy twins of :mod:`cimsim.kernels._numba`: same names, same signatures, same outputs.

These are the readable statement of what each kernel computes (the equations are in the jitted
kernels' docstrings); tests compare the two over shapes and dtypes, benchmarks time both.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FASTMATH",
    "std_normal_from_bits",
    "std_normal_from_bits_serial",
    "xfunction_eval",
    "map_targets",
    "program_devices",
    "drift_to_blocks",
    "dac_convert",
    "adc_accumulate",
    "square_into",
]

FASTMATH = frozenset()


def _ppnd7(p):
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    c = np.abs(q) <= 0.425
    r = 0.180625 - q[c] * q[c]
    out[c] = (
        q[c]
        * (((59.10937472 * r + 159.29113202) * r + 50.434271938) * r + 3.3871327179)
        / (((67.1875636 * r + 78.757757664) * r + 17.895169469) * r + 1.0)
    )
    t = ~c
    qt = q[t]
    r = np.where(qt < 0, p[t], 1.0 - p[t])
    r = np.sqrt(-np.log(r))
    mid = r <= 5.0
    v = np.empty_like(r)
    a = r[mid] - 1.6
    v[mid] = (((0.17023821103 * a + 1.3067284816) * a + 2.75681539) * a + 1.4234372777) / (
        (0.1202113297 * a + 0.7370016425) * a + 1.0
    )
    a = r[~mid] - 5.0
    v[~mid] = (((0.017337203997 * a + 0.42848942) * a + 3.081226386) * a + 6.657905115) / (
        (0.012258202635 * a + 0.24197894225) * a + 1.0
    )
    out[t] = np.where(qt < 0, -v, v)
    return out


def std_normal_from_bits(bits, out):
    n = out.shape[0]
    hi = (bits >> np.uint64(32)).astype(np.float64)
    lo = (bits & np.uint64(0xFFFFFFFF)).astype(np.float64)
    u = np.empty(2 * bits.shape[0])
    u[0::2] = (hi + 0.5) * 2.0**-32
    u[1::2] = (lo + 0.5) * 2.0**-32
    out[:] = _ppnd7(u[:n])


std_normal_from_bits_serial = std_normal_from_bits


def _xf_np(spec, x):
    spec = np.asarray(spec, dtype=np.float64)
    if spec[0] == 5.0:
        nb = int(spec[2])
        return np.where(x < spec[1], _leaf_np(spec[3 : 3 + nb], x), _leaf_np(spec[3 + nb :], x))
    return _leaf_np(spec, x)


def _leaf_np(s, x):
    kind = int(s[0])
    x = np.asarray(x, dtype=np.float64)
    if kind == 0:
        return np.full_like(x, s[1])
    if kind == 1:
        n = int(s[1])
        y = np.zeros_like(x)
        for c in s[2 : 2 + n][::-1]:
            y = y * x + c
        return np.clip(y, s[2 + n], s[3 + n])
    if kind == 2:
        return np.clip(s[1] * np.log(np.maximum(x, s[3])) + s[2], s[4], s[5])
    if kind == 3:
        return np.clip(s[1] * np.maximum(x, s[3]) ** s[2], s[4], s[5])
    n = int(s[1])
    return np.interp(x, s[2 : 2 + n], s[2 + n : 2 + 2 * n])


def xfunction_eval(spec, x, out):
    out[:] = _xf_np(spec, np.asarray(x, dtype=np.float64))


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


def program_devices(target, u_round, z_var, u_fault, z_prog, z_nu, ip, fp,
                    sigma_spec, mu_spec, std_spec, qs_spec, g_out, nu_out, qs_out, fault_out):
    n_levels, stochastic, prog_kind, clip_upper, has_drift, absolute, has_qs, has_var, has_fault = (
        int(v) for v in ip
    )
    g_min, g_max, prog_param, var_sigma, p_min, p_max = (float(v) for v in fp)
    dg = g_max - g_min
    u_round, z_var, u_fault, z_prog, z_nu = (np.asarray(a, dtype=np.float64) for a in (u_round, z_var, u_fault, z_prog, z_nu))
    t = target.astype(np.float64)
    if n_levels > 1:
        step = dg / (n_levels - 1)
        v = (t - g_min) / step
        q = np.floor(v + u_round) if stochastic else np.rint(v)
        t = g_min + q * step
    if has_var:
        t = g_min + (t - g_min) * np.maximum(1.0 + var_sigma * z_var, 0.0)
    code = np.zeros(t.shape, np.int8)
    if has_fault:
        code[u_fault < p_min] = 1
        code[(u_fault >= p_min) & (u_fault < p_min + p_max)] = 2
    g = t.copy()
    if prog_kind == 1:
        g = t + prog_param * z_prog
    elif prog_kind == 2:
        g = t * (1.0 + prog_param * z_prog)
    elif prog_kind == 3:
        g = t + np.maximum(_xf_np(sigma_spec, t / g_max), 0.0) * prog_param * z_prog
    g = np.maximum(g, g_min)
    if clip_upper:
        g = np.minimum(g, g_max)
    stuck = code != 0
    g[code == 1] = g_min
    g[code == 2] = g_max
    g_out[:] = g
    fault_out[:] = code
    if has_drift:
        nu = _xf_np(mu_spec, t / g_max) + _xf_np(std_spec, t / g_max) * z_nu
        nu = np.abs(nu) if absolute else np.maximum(nu, 0.0)
        nu[stuck] = 0.0
        nu_out[:] = nu
    if has_qs:
        qs_out[:] = _xf_np(qs_spec, g / g_max)


def drift_to_blocks(g_pos, nu_pos, qs_pos, z_pos, g_neg, nu_neg, qs_neg, z_neg, neg_row,
                    rows, fp, ip, out_w, out_wn, out_v, out_vn):
    log_ratio, c_read, w_unit, var_rel2 = (float(v) for v in fp)
    has_nu, has_read, digital, has_var = (bool(v) for v in ip)

    def at(g, nu, qs, z):
        g = g.astype(np.float64)
        nu, qs, z = (np.asarray(a, dtype=np.float64) for a in (nu, qs, z))
        if has_nu:
            g = g * np.exp(-nu * log_ratio)
        if has_read:
            g = np.maximum(g + np.abs(g) * qs * c_read * z, 0.0)
        return g

    gp = at(g_pos, nu_pos, qs_pos, z_pos)
    gn_dev = at(g_neg, nu_neg, qs_neg, z_neg)
    gn = gn_dev[neg_row]
    n_out, n_in = g_pos.shape
    vscale = var_rel2 * w_unit * w_unit
    for k0 in range(0, n_in, rows):
        k1 = min(k0 + rows, n_in)
        sl = slice(n_out * k0, n_out * k1)
        if digital:
            out_w[sl] = (w_unit * gp[:, k0:k1]).ravel()
            out_wn[sl] = (w_unit * gn[:, k0:k1]).ravel()
            if has_var:
                out_v[sl] = (vscale * gp[:, k0:k1] ** 2).ravel()
                out_vn[sl] = (vscale * gn[:, k0:k1] ** 2).ravel()
        else:
            out_w[sl] = (w_unit * (gp[:, k0:k1] - gn[:, k0:k1])).ravel()
            if has_var:
                out_v[sl] = (vscale * (gp[:, k0:k1] ** 2 + gn[:, k0:k1] ** 2)).ravel()


def square_into(x, out):
    np.multiply(x, x, out=out)


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


def adc_accumulate(part, var, z_read, z_conv, bound, gain, offset, colscale, rowscale, sign,
                   levels, nl_code, nl_spec, inl, noise_lsb, y, sat, want_sat):
    val = part.astype(np.float64)
    if var.shape[0] > 0:
        val = val + np.sqrt(np.maximum(var.astype(np.float64), 0.0)) * z_read.astype(np.float64)
    u = val / bound
    u = _nl_np(nl_code, nl_spec, u)
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
