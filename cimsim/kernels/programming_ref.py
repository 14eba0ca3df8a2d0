"""Plain-numpy twins of :mod:`cimsim.kernels.programming`: same names, same signatures, same outputs."""

from __future__ import annotations

import numpy as np

from ..devices.programming import NOISE_CONSTANT, NOISE_FUNCTION, NOISE_RELATIVE

__all__ = ['map_targets', 'program_devices', 'program_targets']


def map_targets(W, scales, rows, differential, plan, out_pos, out_neg):
    g_min = plan.g_min_us
    dg = plan.g_max_us - g_min
    n_in = W.shape[1]
    k = np.arange(n_in) // rows
    s = scales[k, :].T  # [out, in]
    w = np.clip(W.astype(np.float64) / s, -1.0, 1.0)
    if differential:
        out_pos[...] = g_min + np.maximum(w, 0.0) * dg
        out_neg[...] = g_min + np.maximum(-w, 0.0) * dg
    else:
        out_pos[...] = g_min + (w + 1.0) * 0.5 * dg


def program_targets(target, u_round, z_var, u_fault, plan, t_out, fault_out):
    g_min, g_max = plan.g_min_us, plan.g_max_us
    t = target.astype(np.float64)
    if plan.n_levels > 1:
        step = (g_max - g_min) / (plan.n_levels - 1)
        v = (t - g_min) / step
        q = np.floor(v + np.asarray(u_round, dtype=np.float64)) if plan.stochastic else np.rint(v)
        t = g_min + q * step
    if plan.has_var:
        t = g_min + (t - g_min) * np.maximum(1.0 + plan.var_sigma_rel * np.asarray(z_var, dtype=np.float64), 0.0)
    t_out[:] = t
    if plan.has_fault:
        p_min, p_max = plan.p_stuck_min, plan.p_stuck_max
        u = np.asarray(u_fault, dtype=np.float64)
        code = np.zeros(t.shape, np.int8)
        code[u < p_min] = 1
        code[(u >= p_min) & (u < p_min + p_max)] = 2
        fault_out[:] = code


def program_devices(t, fault, z_prog, z_nu, sig, mu, sd, plan, g_out, nu_out):
    g_min, g_max, prog_param = plan.g_min_us, plan.g_max_us, plan.prog_param
    t = np.asarray(t, dtype=np.float64)
    z_prog = np.asarray(z_prog, dtype=np.float64)
    g = t.copy()
    if plan.noise == NOISE_CONSTANT:
        g = t + prog_param * z_prog
    elif plan.noise == NOISE_RELATIVE:
        g = t * (1.0 + prog_param * z_prog)
    elif plan.noise == NOISE_FUNCTION:
        g = t + sig * z_prog
    g = np.maximum(g, g_min)
    if plan.clip_upper:
        g = np.minimum(g, g_max)
    code = fault if plan.has_fault else np.zeros(t.shape, np.int8)
    g[code == 1] = g_min
    g[code == 2] = g_max
    g_out[:] = g
    if plan.has_drift:
        nu = mu + sd * np.asarray(z_nu, dtype=np.float64)
        nu = np.abs(nu) if plan.nu_absolute else np.maximum(nu, 0.0)
        nu[code != 0] = 0.0
        nu_out[:] = nu
