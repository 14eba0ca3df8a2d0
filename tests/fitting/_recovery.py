"""Shared set-up of the recovery tests: generating profiles and their simulated measurement plans."""

from __future__ import annotations

import numpy as np

from cimsim import load_profile, profile_from_dict

TIMES_S = [1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e5, 1e6]

HAND_PICKED = {
    "name": "hand_picked",
    "conductance": {"g_min_us": 2.0, "g_max_us": 60.0},
    "programming": {"noise": {"kind": "relative", "sigma_rel": 0.03}},
    "drift": {"kind": "power_law", "t0_s": 50.0,
              "nu": {"mean": {"kind": "polynomial", "coeffs": [0.09, -0.05]}, "std": 0.012}},
    "read_noise": {"kind": "one_over_f", "q_s": {"kind": "power", "coeff": 0.006, "exponent": -0.4},
                   "t_read_s": 1e-6},
}


def generating(name: str):
    """(profile, targets_us): the profile the data come from and the levels a lab would program."""
    if name == "hand_picked":
        p = profile_from_dict(HAND_PICKED)
    elif name == "reram_cmo":
        # the fit has no law for reram_cmo's log10 read noise nor its clamp (docs/fitting.md says
        # so): recover the relaxation and programming laws with those two switched off
        p = load_profile(name, {"read_noise": {"kind": "none"}, "drift.clamp": False})
    else:
        p = load_profile(name)
    g_min, g_max = p.conductance.g_min_us, p.conductance.g_max_us
    lo = max(g_min, 0.05 * g_max)
    return p, np.linspace(lo, g_max, 10)


def prog_sigma_us(p, x: np.ndarray) -> np.ndarray:
    """The generating programming spread at x, µS."""
    n = p.programming.noise
    if n.kind == "constant":
        return np.full(x.shape, n.sigma_us)
    if n.kind == "relative":
        return n.sigma_rel * p.conductance.g_max_us * x
    return np.maximum(n.sigma.evaluate(x), 0) * p.conductance.g_max_us / n.g_ref_us
