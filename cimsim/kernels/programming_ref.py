"""Plain-numpy twins of :mod:`cimsim.kernels.programming`: same names, same signatures, same outputs."""

from __future__ import annotations

import math

import numpy as np

__all__ = ['map_targets', 'program_targets', 'program_devices']


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
