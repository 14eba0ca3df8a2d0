"""Word-line and bit-line IR drop of one tile, solved exactly: the tile's effective conductances.

With ohmic devices the tile is a linear resistive network, so its column currents are a linear
map of the row voltages, ``I = M V``, whatever the inputs: :func:`tile_transfer` computes ``M``
once per drifted state and the MVM reads ``M`` in place of the conductances (no cost per read).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError

__all__ = ["tile_transfer"]

#: Newton-Schulz iterations allowed per row before the solve gives up (it needs 2-3)
_MAX_ITER = 40


def tile_transfer(g_us: np.ndarray, r_word_ohm: float, r_bit_ohm: float) -> np.ndarray:
    """Effective conductances ``M [C, R]`` (µS) of one tile array with wire resistance.

    ``g_us [R, C]``: the devices' conductances (row i = input i, column j = output j).  Word
    line i is driven at V_i from the column-0 end through ``r_word_ohm`` per cell pitch (also
    between neighbouring cells; the far end is open); bit line j runs from row 0 (open end,
    farthest) to row R - 1 and through ``r_bit_ohm`` more into the sense amplifier, a virtual
    ground.  Kirchhoff's current law at the word-line nodes a_ij and the bit-line nodes b_ij,
    with g_w = 1 / r_word, g_b = 1 / r_bit::

        g_w (a_i,j-1 - a_ij) + g_w (a_i,j+1 - a_ij) + G_ij (b_ij - a_ij) = 0,   a_i,-1 = V_i
        g_b (b_i-1,j - b_ij) + g_b (b_i+1,j - b_ij) + G_ij (a_ij - b_ij) = 0,   b_R,j = 0

    (terms beyond an open end absent); ``I_j = g_b b_R-1,j = sum_i M[j, i] V_i``.  Word line i
    eliminates exactly: T_i = g_w L + diag(G_i), L = tridiag(-1, [2, ..., 2, 1], -1), whose
    inverse is semiseparable, (L + diag(G_i / g_w))^-1_jk = u_j v_k / w (j <= k) with u, v the
    solutions of the homogeneous recurrence from the left and the right end; this leaves, per
    row, ``D_i b_i - g_b b_i-1 - g_b b_i+1 = f_i V_i`` with ``D_i = g_b (1 + [i > 0]) I +
    diag(G_i) - diag(G_i) T_i^-1 diag(G_i)`` and ``f_i = g_w G_i * (T_i^-1 e_0)``.  Block
    elimination down the rows, ``S_0 = D_0``, ``S_i = D_i - g_b^2 S_i-1^-1``, ``Y_i = f_i e_i^T +
    g_b S_i-1^-1 Y_i-1``, ends at ``M = g_b S_R-1^-1 Y_R-1``.  Each ``S_i^-1`` comes from
    Newton-Schulz steps started at ``S_i-1^-1`` (:func:`_inverse`, to float64 round-off), so
    only GEMMs run (bitwise the same on any number of threads); O(R C^3) flops, so it runs once per
    drifted state, never per read.  ``r_bit_ohm = 0``: ideal bit lines, ``M[j, i] = f_i[j]``;
    ``r_word_ohm = 0``: ideal word lines (each bit line alone: the exact transfer of
    :func:`cimsim.kernels.drift.bit_line_transfer`).
    """
    g = torch.from_numpy(np.ascontiguousarray(g_us, dtype=np.float64))
    n_r, n_c = g.shape
    if r_word_ohm > 0:
        gw = 1e6 / float(r_word_ohm)
        u, v, w = _chain_solutions(g / gw)  # (L + diag(G / g_w))^-1 = u_min v_max / w
        f = g * v / w[:, None]  # g_w G_i * T_i^-1 e_0 = G_i v / w
    else:
        f = g.clone()
    if not r_bit_ohm > 0:
        return f.T.contiguous().numpy()
    gb = 1e6 / float(r_bit_ohm)
    eye = torch.eye(n_c, dtype=torch.float64)
    upper = torch.ones(n_c, n_c, dtype=torch.bool).triu()  # j <= k
    y = torch.zeros(n_c, n_r, dtype=torch.float64)
    p = None
    for i in range(n_r):
        d = torch.diag(gb * (2.0 if i > 0 else 1.0) + g[i])
        if r_word_ohm > 0:  # diag(G) T^-1 diag(G) = G_j u_j G_k v_k / (w g_w) for j <= k, mirrored
            k = torch.outer(g[i] * u[i], g[i] * v[i] / (w[i] * gw))
            d -= torch.where(upper, k, k.T)
        if p is None:
            s = d
        else:
            s = d - (gb * gb) * p
            y[:, :i] = gb * (p @ y[:, :i])
        y[:, i] = f[i]
        p = _inverse(s, p, eye, i)
    assert p is not None  # the loop ran: a tile has at least one row
    return (gb * (p @ y)).numpy()


def _chain_solutions(gam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every row of ``gam [R, C]`` (= G / g_w), the matrix A = L + diag(gam) with L =
    tridiag(-1, [2, ..., 2, 1], -1): u (A u = 0 but for its last row, u_0 = 1), v (A v = 0 but
    for its first row, v_C-1 = 1) and w = (A v)_0, so that A^-1_jk = u_j v_k / w for j <= k.
    Both grow at most linearly along the chain (no overflow)."""
    n_r, n_c = gam.shape
    d = 2.0 + gam
    d[:, -1] = 1.0 + gam[:, -1]
    u = torch.empty_like(gam)
    v = torch.empty_like(gam)
    u[:, 0] = 1.0
    v[:, -1] = 1.0
    if n_c == 1:
        return u, v, d[:, 0].clone()
    u[:, 1] = d[:, 0]
    for j in range(1, n_c - 1):
        u[:, j + 1] = d[:, j] * u[:, j] - u[:, j - 1]
    v[:, -2] = d[:, -1]
    for j in range(n_c - 2, 0, -1):
        v[:, j - 1] = d[:, j] * v[:, j] - v[:, j + 1]
    return u, v, d[:, 0] * v[:, 0] - v[:, 1]


def _inverse(s: torch.Tensor, guess: torch.Tensor | None, eye: torch.Tensor, row: int) -> torch.Tensor:
    """``s^-1`` by Newton-Schulz steps, GEMMs only.  With ``R = I - s X``: a second-order step
    ``X <- X (I + R)`` squares the residual, a third-order one ``X <- X (I + R + R^2)`` cubes it;
    the last step is the cheapest that takes max |R| below float64 round-off (<= 1e-8: second
    order; <= 3e-5: third order), earlier ones are third order.  Start: ``guess`` (the previous
    row's inverse; the inverse of the diagonal for row 0), or, when that start diverges (wires
    far more resistive than the devices: rows differ a lot), ``I / ||s||_1``, from which the
    steps converge for any symmetric positive definite ``s`` (every ``S_i`` is one)."""
    x = torch.diag(1.0 / torch.diagonal(s)) if guess is None else guess
    err = float("nan")
    for safe_start in (False, True):
        if safe_start:
            x = eye / float(s.abs().sum(dim=0).max())
        for _ in range(_MAX_ITER):
            r = eye - s @ x
            err = float(r.abs().max())
            if not err < float("inf"):
                break
            if err <= 1e-8:
                return x + x @ r
            x = x @ (eye + r + r @ r)
            if err <= 3e-5:
                return x
            if not safe_start and err >= 1.0:  # the cheap start diverges: take the safe one
                break
    raise ParameterError(
        f"IR-drop solve: row {row} of a tile did not converge (residual {err:.3g}); check tile.word_line_r_ohm and "
        "tile.bit_line_r_ohm against the devices' conductances"
    )
