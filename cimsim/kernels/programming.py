"""Programming: weights -> target conductances -> programmed devices.

The steps and their equations are in :mod:`cimsim.devices.programming`; the kernels take its
:class:`~cimsim.devices.programming.ProgrammingPlan` (a NamedTuple) for the scalars and flags.
Jitted kernels; their plain-numpy twins, same names and signatures, are in
:mod:`cimsim.kernels.programming_ref`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..devices.programming import NOISE_CONSTANT, NOISE_FUNCTION, NOISE_RELATIVE
from ._jit import FM

__all__ = ['map_targets', 'program_devices', 'program_targets']


@njit(cache=True, nogil=True, fastmath=FM)
def map_targets(W, scales, rows, differential, plan, out_pos, out_neg):
    """Weights -> target conductances (µS) of each device.

    w_n = clip(W[o, j] / s[j // rows, o], -1, 1), s the weight scale of tile column (k, o).
    differential pair:  G+ = g_min + max(w_n, 0) dg,  G- = g_min + max(-w_n, 0) dg.
    single device with reference column:  G = g_min + (w_n + 1)/2 dg (out_neg unused).
    dg = g_max - g_min.  Exact inverse: w = s (G+ - G-)/dg, resp. w = s 2 (G - G_ref)/dg with
    G_ref = g_min + dg/2 (cf. aihwkit's SinglePairConductanceConverter).
    """
    g_min = plan.g_min_us
    dg = plan.g_max_us - g_min
    n_out, n_in = W.shape
    for o in range(n_out):
        for k0 in range(0, n_in, rows):
            s = scales[k0 // rows, o]
            k1 = min(k0 + rows, n_in)
            # branch-free inner loops over row slices, so they vectorise (2-D indexing over a
            # k0..k1 range does not): max(w, 0) dg is w dg or 0 exactly
            wr = W[o, k0:k1]
            pr = out_pos[o, k0:k1]
            if differential:
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
def program_targets(target, u_round, z_var, u_fault, plan, t_out, fault_out):
    """Steps 1-3 of programming (levels, variability, stuck-at faults), per device (flat
    arrays): the target G_T each device ends up with (equations in :mod:`cimsim.devices.programming`).

    u_round / z_var / u_fault: the rounding uniforms, variability normals and fault uniforms
    (empty when the plan does not use them).  t_out (float64) gets G_T, fault_out the codes
    (0 none, 1 stuck at g_min, 2 at g_max; when plan.has_fault).  The device laws of
    x_T = G_T/g_max are then evaluated by the caller (vectorised) for :func:`program_devices`.
    """
    n_levels = plan.n_levels
    stochastic = plan.stochastic
    has_var = plan.has_var
    has_fault = plan.has_fault
    g_min = plan.g_min_us
    g_max = plan.g_max_us
    var_sigma = plan.var_sigma_rel
    p_min = plan.p_stuck_min
    p_max = plan.p_stuck_max
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
def program_devices(t, fault, z_prog, z_nu, sig, mu, sd, plan, g_out, nu_out):
    """Steps 4-6 of programming (noise, clip, drift exponent), per device, from the targets
    G_T = t of :func:`program_targets` (equations in :mod:`cimsim.devices.programming`).

    sig / mu / sd: the device laws at x_T = G_T/g_max (sigma_prog(x_T) >= 0 in µS, already
    scaled by g_max/g_ref, mu_nu(x_T), sigma_nu(x_T): :class:`~cimsim.devices.programming.ProgrammingLaws`);
    empty when unused.  Stuck devices (fault code 1 / 2) sit at g_min / g_max with no noise and
    nu = 0.  Runs on the calling thread without the GIL: callers run row chunks side by side.
    """
    noise = plan.noise
    clip_upper = plan.clip_upper
    has_drift = plan.has_drift
    absolute = plan.nu_absolute
    has_fault = plan.has_fault
    g_min = plan.g_min_us
    g_max = plan.g_max_us
    prog_param = plan.prog_param
    # one flat loop per stage, the flags outside the loops (they vectorise; 1 loop with the flags
    # and the fault test inside did not); stuck devices are overwritten last
    n = t.shape[0]
    hi = g_max if clip_upper else np.inf
    # float32 targets (no levels/variability/faults) are exact in float64; max/min, not
    # branches: about half the G- devices of a pair clip at g_min
    if noise == NOISE_CONSTANT:
        for i in range(n):
            g_out[i] = min(max(np.float64(t[i]) + prog_param * z_prog[i], g_min), hi)
    elif noise == NOISE_RELATIVE:
        for i in range(n):
            g_out[i] = min(max(np.float64(t[i]) * (1.0 + prog_param * z_prog[i]), g_min), hi)
    elif noise == NOISE_FUNCTION:
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
