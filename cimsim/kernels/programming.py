"""Programming: weights -> target conductances -> programmed devices.

Jitted kernels; their plain-numpy twins, same names and signatures, are in
:mod:`cimsim.kernels.programming_ref`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._jit import FM, MVM_PARALLEL, serial_copy

__all__ = ['map_targets', 'program_targets', 'program_devices']


@njit(cache=True, nogil=True, fastmath=FM)
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


@njit(cache=True, nogil=True, fastmath=FM)
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


@njit(cache=True, nogil=True, fastmath=FM)
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
