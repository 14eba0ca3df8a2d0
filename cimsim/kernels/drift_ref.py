"""Plain-numpy twins of :mod:`cimsim.kernels.drift`: same names, same signatures, same outputs."""

from __future__ import annotations

import numpy as np

__all__ = ['bit_line_transfer', 'drift_to_blocks']


def drift_to_blocks(g_pos, d_pos, z_pos, q_pos, s_pos, g_neg, d_neg, z_neg, q_neg, s_neg, neg_row, n_out, o0, o1,
                    p0, n0, zn0, rows, plan, out_w, out_wn, out_v, out_vn):
    c_read, w_unit, var_rel2, r_us = plan.c_read, plan.w_unit, plan.var_rel2, plan.r_us
    has_nu, has_read, digital, has_var, has_ir, has_sig = (plan.has_nu, plan.has_read, plan.digital, plan.has_var,
                                                           plan.has_ir, plan.has_sig)
    vneg = 0.0 if plan.shared_neg else 1.0
    rsel = neg_row[o0:o1]

    def at(g, d, z, q):
        g = g.astype(np.float64)
        if has_nu:
            g = g * d
        if has_read:
            g = np.maximum(g + np.abs(g) * np.asarray(q, dtype=np.float64) * c_read * np.asarray(z, dtype=np.float64), 0.0)
        if plan.clamp:
            g = np.minimum(np.maximum(g, plan.g_min_us), plan.g_max_us)
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
