"""Drift of a programmed chip to time t: power-law drift, ReRAM relaxation, 1/f read noise,
bit-line IR drop, and the per-read variance blocks, row chunk by row chunk into a DriftedState;
then, over whole tiles, word-line IR drop and the blocks of a nonlinear device I-V."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._threads import map_pieces
from ..devices.drift import drift_laws, drift_plan
from ..errors import ParameterError
from ..kernels import Engine
from ..kernels.sampling import normals
from ..profiles.functions import ConstantFn
from ..profiles.schema import DeviceProfile, DriftPowerLaw, IVPolynomial
from ..rng import child_generators
from .parasitics import tile_transfer
from .snapshot import DriftedState
from .tiling import row_chunks

if TYPE_CHECKING:  # annotations only: state.py imports this module
    from .state import ProgrammedState

__all__ = ["DriftRun", "drift_state"]


def drift_state(state: ProgrammedState, t: float, rng: np.random.Generator, K: Engine, *, noiseless: bool) -> DriftedState:
    """Drift ``state`` to ``t`` row chunk by row chunk (see :class:`DriftRun`)."""
    if not state.devices_kept:
        raise ParameterError(
            "this chip's device arrays were not kept (program_drifted gives a snapshot only): program it with "
            "program_matrix to drift, calibrate or save it"
        )
    has_nu = isinstance(state.profile.drift, DriftPowerLaw) and not noiseless
    if has_nu and state.nu_pos is None:
        if t > 0:
            raise ParameterError(
                f"this chip was programmed with with_drift=False (no drift exponents), so it can only be read at "
                f"t_s=0 (got t_s={t}); program it with with_drift=True to drift it"
            )
        has_nu = False  # t = 0: the drift factor is exactly 1
    run = DriftRun(state.profile, state.shape, state.dtype, t, rng, K, noiseless=noiseless, has_nu=has_nu)
    pos, neg = (state.g_pos, state.nu_pos, state.fault_pos), (state.g_neg, state.nu_neg, state.fault_neg)
    map_pieces(lambda ci: run.chunk(ci, pos, neg, 0, 0), range(len(run.chunks)))
    return run.finish(state)


class DriftRun:
    """One drift to time ``t``, row chunk by row chunk (the chunks of :func:`~.tiling.row_chunks`),
    with the :class:`~cimsim.devices.drift.DriftPlan` of the profile at ``t`` (equations there).

    Draws (only with 1/f noise or relaxation): two words from ``rng`` seed one child per row
    chunk, plus one for the reference columns (single_reference, whose normals it draws at
    once, first: 1/f, then relaxation); each chunk's child draws the 1/f normals of its G+
    devices, then of its G- devices, then the relaxation normals of its G+, then G- devices.
    ``finish(state)`` then solves whole tiles (word-line IR drop, :meth:`_wire_blocks`), forms a
    nonlinear I-V's blocks (:meth:`_iv_blocks`) and subtracts G- where the subtraction is analog.
    ``chunk(ci, pos, neg, p0, n0)`` drifts the rows of chunk ci: ``pos`` = (g, nu, fault) arrays
    whose row 0 is output p0 (nu / fault None when not modelled), ``neg`` = the same of the G-
    devices / reference columns, row 0 = n0.
    """

    def __init__(self, profile: DeviceProfile, shape, dtype, t: float, rng, K: Engine, *, noiseless: bool, has_nu: bool):
        p = self.profile = profile
        self.K = K
        self.t = t
        n_out, n_in = self.shape = tuple(shape)
        dt = self.dtype = np.dtype(dtype)
        plan = self.plan = drift_plan(p, t, noiseless=noiseless, has_nu=has_nu)
        self.laws = drift_laws(p, plan, dt)
        self.iv = p.iv if plan.has_iv else None
        self.diff = plan.differential
        n = n_out * n_in
        self.w = np.empty(n, dt)
        self.wn = np.empty(n, dt) if plan.digital else None
        self.v = np.empty(n, dt) if plan.has_var else None
        self.vn = np.empty(n, dt) if (plan.has_var and plan.digital) else None
        self.chunks = row_chunks(n_out, n_in)
        self.gens = child_generators(rng, len(self.chunks) + (0 if self.diff else 1)) if plan.draws else None
        self.e1, self.e2 = np.zeros(0, dt), np.zeros((0, 0), dt)
        n_ref = -(-n_out // p.tile.cols)
        self.z_ref = normals(self._gen(-1), (n_ref, n_in), dt, K) if (plan.has_read and not self.diff) else self.e2
        self.zx_ref = normals(self._gen(-1), (n_ref, n_in), dt, K) if (plan.has_relax and not self.diff) else self.e2
        self.g_ref: np.ndarray | None = None  # the relaxed reference columns (single_reference), on first use
        self.ref_laws: dict[str, np.ndarray] = {}  # Q_s, sigma^2, drift factors of the reference columns, on first use
        self.neg_row = np.arange(n_out, dtype=np.int64) if self.diff else np.arange(n_out, dtype=np.int64) // p.tile.cols
        # single_reference with per-read noise: the reference columns' own variance (one column
        # per output tile, read once per input vector: its noise is common to the tile's outputs)
        self.vref: np.ndarray | None = None

    def _gen(self, i: int) -> np.random.Generator:
        """Child generator ``i``: only 1/f noise or relaxation draw, and then plan.draws made them."""
        assert self.gens is not None  # plan.draws (has_read or has_relax)
        return self.gens[i]

    def chunk(self, ci: int, pos, neg, p0: int, n0: int) -> None:
        plan, laws = self.plan, self.laws
        o0, o1 = self.chunks[ci]
        n_in = self.shape[1]
        e1, e2, K = self.e1, self.e2, self.K
        zn0 = o0 if self.diff else 0  # row 0 of the chunk's G- arrays (d, z, q): its own rows, or all references
        rows_p, rows_n = slice(o0 - p0, o1 - p0), slice(o0 - n0, o1 - n0)
        z_pos = z_neg = q_pos = q_neg = e2
        if plan.has_read:
            # Q_s(x_P) of the programmed conductances, vectorised (numpy's SIMD log/exp/power)
            z_pos = normals(self._gen(ci), (o1 - o0, n_in), self.dtype, K)
            z_neg = normals(self._gen(ci), (o1 - o0, n_in), self.dtype, K) if self.diff else self.z_ref
            if not plan.read_on_g_t:
                q_pos, q_neg = self._pair(laws.q_s, 0, pos, neg, rows_p, rows_n, "q")
        s_pos = s_neg = e2
        if plan.has_sig:  # squared per-read sigma of x_P (programmed G), like Q_s
            s_pos, s_neg = self._pair(laws.read_sigma2, 0, pos, neg, rows_p, rows_n, "s2")
        if plan.has_relax:  # G(t) = G_prog + mu + sigma z: the kernel then reads these rows
            pos, p0, neg, n0 = self._relax_chunk(ci, pos, neg, p0, n0)
        if plan.has_read and plan.read_on_g_t:  # the law of the relaxed G(t) (log_one_over_f)
            q_pos, q_neg = self._pair(laws.q_s, 0, pos, neg, slice(o0 - p0, o1 - p0), slice(o0 - n0, o1 - n0), "q")
        d_pos = d_neg = e2
        if plan.has_nu:
            d_pos, d_neg = self._pair(laws.drift_factor, 1, pos, neg, rows_p, rows_n, "d")
        if plan.shared_neg and self.vref is None:
            self.vref = self._ref_variance(neg[0], d_neg, z_neg, q_neg, s_neg)
        K.drift_to_blocks(
            pos[0], d_pos, z_pos, q_pos, s_pos, neg[0], d_neg, z_neg, q_neg, s_neg,
            self.neg_row, self.shape[0], o0, o1, p0, n0, zn0, int(self.profile.tile.rows), plan,
            self.w, e1 if self.wn is None else self.wn, e1 if self.v is None else self.v,
            e1 if self.vn is None else self.vn,
        )

    def _relax_chunk(self, ci: int, pos, neg, p0: int, n0: int):
        """The relaxed G(t) of chunk ci's G+ rows and G- rows (or of all reference columns, once),
        with the row offsets the kernel then reads them at."""
        o0, o1 = self.chunks[ci]
        shape = (o1 - o0, self.shape[1])
        plan, dt = self.plan, self.dtype
        rows = slice(o0 - p0, o1 - p0)
        zx = normals(self._gen(ci), shape, dt, self.K)
        pos = (plan.relaxed(pos[0][rows], zx, None if pos[2] is None else pos[2][rows], dt),)
        if self.diff:
            rows = slice(o0 - n0, o1 - n0)
            zx = normals(self._gen(ci), shape, dt, self.K)
            return pos, o0, (plan.relaxed(neg[0][rows], zx, None if neg[2] is None else neg[2][rows], dt),), o0
        if self.g_ref is None:
            self.g_ref = plan.relaxed(neg[0], self.zx_ref, neg[2], dt)
        return pos, o0, (self.g_ref,), n0

    def _pair(self, law, i: int, pos, neg, rows_p: slice, rows_n: slice, key: str):
        """``law`` of array ``i`` (g or nu) of the chunk's G+ rows and of its G- rows, evaluated
        together (differential), or of the G+ rows and of all reference columns (single_reference;
        the latter once per drift, kept under ``key``)."""
        if self.diff:
            return law(pos[i][rows_p], neg[i][rows_n])
        (a,) = law(pos[i][rows_p])
        if key not in self.ref_laws:  # chunks on two threads may both compute it: the same values
            self.ref_laws[key] = law(neg[i])[0]
        return a, self.ref_laws[key]

    def _ref_variance(self, g, d, z, q, s2) -> np.ndarray:
        """Per-read variance of the reference devices at t, ``[n_ref, n_in]`` (weight units^2, the
        chip's dtype): w_unit^2 u^2 ((var_rel G_ref(t))^2 + sigma(x_P)^2), G_ref(t) and the IR-drop
        transfer u as :func:`drift_to_blocks` computes them."""
        plan = self.plan
        g = g.astype(np.float64)
        if plan.has_nu:
            g = g * d
        if plan.has_read:
            g = np.maximum(g + np.abs(g) * q * plan.c_read * z, 0.0)
        if plan.clamp:
            g = np.clip(g, plan.g_min_us, plan.g_max_us)
        u = np.ones_like(g)
        if plan.has_ir:  # the reference column's own bit-line IR drop
            self.K.bit_line_transfer(g, plan.r_us, int(self.profile.tile.rows), u)
        var = plan.var_scale * (g * u) ** 2
        if plan.has_sig:
            var += plan.w_unit ** 2 * s2 * u**2
        return var.astype(self.dtype)

    def _iv_blocks(self) -> dict[str, np.ndarray | None]:
        """The blocks of a nonlinear I-V (``iv.kind: polynomial``) from the G+ / G- blocks
        ``w = w_unit G+(t)``, ``wn = w_unit G-(t)`` the kernel wrote.

        A cell driven at V = x v_r (x the normalised DAC output, v_r = iv.v_read_v) carries
        ``I = G V (1 + a2(x_G) |V| + a3(x_G) V^2)``, x_G = G(t) / g_max (Milo et al., IRPS 2021
        form, odd in V).  Per unit of v_r the column partial sum of input tile k is then
        ``x @ W1^T + (x |x|) @ W2^T + x^3 @ W3^T`` with W1 = w_unit G, W2 = w_unit G a2 v_r,
        W3 = w_unit G a3 v_r^2, each G+ minus G- (analog subtraction; digital keeps both sides);
        a term whose law is the constant 0 gets no block.
        """
        iv, wn = self.iv, self.wn
        assert isinstance(iv, IVPolynomial)  # plan.has_iv (finish calls this only then)
        assert wn is not None  # plan.digital, which plan.has_iv sets: G- written apart
        v_r = float(iv.v_read_v)
        terms = [(key, law, scale) for key, law, scale in (("w2", iv.a2_per_v, v_r), ("w3", iv.a3_per_v2, v_r * v_r))
                 if not (isinstance(law, ConstantFn) and law.value == 0.0)]  # a zero term: no block, no GEMM
        out: dict[str, np.ndarray | None] = {key + side: None for key in ("w2", "w3") for side in ("", "n")}
        if not terms:
            return out
        for side, wa in (("", self.w), ("n", wn)):
            x = np.divide(wa, self.plan.w_unit * self.plan.g_max_us, dtype=np.float64)  # G(t) / g_max
            for key, law, scale in terms:
                out[key + side] = np.multiply(wa, law.evaluate(x) * scale, dtype=np.float64).astype(self.dtype)
        return out

    def _wire_blocks(self, state: ProgrammedState) -> None:
        """Word- and bit-line IR drop (``tile.word_line_r_ohm`` > 0): every tile, in place,
        becomes its effective conductances ``M`` (:func:`tile_transfer`, the exact solution of the
        tile's resistive network), ``w = w_unit M``.  Differential mapping: the G+ and the G-
        devices form two arrays, each with its own word lines.  single_reference: the tile's
        reference column is one more column at the far end of the same word lines.  Each device's
        per-read variance is scaled by its own share ``(M_ji / G_ij)^2`` (the part of a cell's
        fluctuation that reaches other columns through the wires is left out)."""
        t = self.profile.tile
        grid = state.grid
        w_unit = self.plan.w_unit
        wn = self.wn
        assert wn is not None  # plan.digital, which plan.word_ir sets: G- (or the references) written apart

        def share(m, g):
            r = np.divide(m, g, out=np.zeros_like(m), where=g > 0)
            return r * r

        for k in range(grid.n_in_tiles):
            k0, k1 = grid.in_slice(k)
            blocks = [(DriftedState.block_of(grid, wa, k), None if va is None else DriftedState.block_of(grid, va, k))
                      for wa, va in ((self.w, self.v), (wn, self.vn))]
            for p, o0 in enumerate(range(0, grid.n_out, t.cols)):
                o1 = min(o0 + t.cols, grid.n_out)
                arrays = blocks if self.diff else [blocks[0]]
                for wb, vb in arrays:
                    g = wb[o0:o1].astype(np.float64) / w_unit  # [outputs, rows] = G^T
                    if not self.diff:  # the reference column: the last column of this tile
                        g = np.vstack([g, blocks[1][0][o0].astype(np.float64) / w_unit])
                    m = tile_transfer(g.T, t.word_line_r_ohm, t.bit_line_r_ohm)  # [columns, rows]
                    if not self.diff:
                        if self.vref is not None:
                            self.vref[p, k0:k1] *= share(m[-1], g[-1]).astype(self.dtype)
                        blocks[1][0][o0:o1] = w_unit * m[-1]
                        m, g = m[:-1], g[:-1]
                    if vb is not None:
                        vb[o0:o1] = vb[o0:o1] * share(m, g)
                    wb[o0:o1] = w_unit * m

    def finish(self, state: ProgrammedState) -> DriftedState:
        arrays: dict[str, np.ndarray | None] = dict(w=self.w, wn=self.wn, v=self.v, vn=self.vn, w2=None, w3=None,
                                                    w2n=None, w3n=None)
        if self.plan.word_ir:
            self._wire_blocks(state)
        if self.iv is not None:
            arrays.update(self._iv_blocks())
        if self.profile.mapping.subtraction == "analog" and self.wn is not None:
            # the split layout of a nonlinear I-V or word-line IR drop: G+ - G- (or G - G_ref) on the bit line
            for key in ("w", "w2", "w3"):
                a, an = arrays[key], arrays[key + "n"]
                if a is not None:
                    assert an is not None  # plan.digital (wn exists): every G+ block has its G- block
                    arrays[key] = np.subtract(a, an, dtype=np.float64).astype(self.dtype)
                    arrays[key + "n"] = None
            v, vn = arrays["v"], arrays["vn"]
            if v is not None:
                assert vn is not None  # plan.has_var and plan.digital made both
                arrays["v"] = np.add(v, vn, dtype=np.float64).astype(self.dtype)
                arrays["vn"] = None
        for a in list(arrays.values()) + [self.vref]:
            if a is not None:
                a.flags.writeable = False
        w = arrays.pop("w")
        assert w is not None  # self.w always exists (and stays after the subtraction)
        return DriftedState(state=state, t_s=self.t, w=w, vref=self.vref, **arrays)
