"""Hash the simulator's outputs, to show that a refactor keeps every bit.

    .venv/bin/python scripts/bits_hash.py            # the chip hash and the training-step hash
    .venv/bin/python scripts/bits_hash.py --demo     # also the demo's table (about 1 min more)

For each profile variant below, in float32 and float64: the programmed chip's arrays, the
drifted blocks at two read times, ``tile_mvm`` outputs and masks on the drifted chip, and
``program_drifted``'s blocks and outputs.  Then one hardware-mode training step of the digits
MLP (weights and gradients after an Adam step).  Run it before and after a change that must not
change bits, on one machine (other CPU generations round BLAS differently), and compare.
Only public names are used, so the same script runs on both sides of a renovation.

Reference hashes since the Philox normals (issue 17, the one change allowed to move bits),
on an AVX2 EPYC (other CPUs round BLAS differently: compare on one machine):
chips 61186a38832e5f8d0f07f68cfaf72d2205b59e898d38098d33ccfae3e39b6582,
training 811aa2c3ae3a950506df261a40d80a249e01d907914466821f367c8363e8623d
(before it: chips a25619f1...5962, training 6f14036d...fc47).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys

import numpy as np

import cimsim

BASE = "pcm"
#: (name, preset, overrides): the variants of the earlier kernel changes and the laws added since.
VARIANTS: list[tuple[str, str, dict]] = [
    ("pcm", "pcm", {}),
    ("digital", "pcm", {"mapping.subtraction": "digital"}),
    ("per_read", "pcm", {"read_noise.per_read_sigma_rel": 0.02}),
    ("single_ref", "pcm", {"mapping.kind": "single_reference"}),
    ("single_ref_digital_per_read", "pcm", {"mapping.kind": "single_reference", "mapping.subtraction": "digital",
                                             "read_noise.per_read_sigma_rel": 0.03}),
    ("bit_line_ir", "pcm", {"tile.bit_line_r_ohm": 2.0}),
    ("sonos", "sonos", {}),
    ("reram_cmo", "reram_cmo", {}),
    ("rram_neurram", "rram_neurram", {}),
    ("faults_var", "pcm", {"faults.stuck_at_g_min_rel": 0.02, "faults.stuck_at_g_max_rel": 0.01,
                           "variability.g_max_spread_rel": 0.05}),
    ("levels_stoch", "pcm", {"conductance.n_levels": 16, "programming.stochastic_rounding": True}),
    ("levels", "pcm", {"conductance.n_levels": 9}),
    ("prog_constant", "pcm", {"programming.noise": {"kind": "constant", "sigma_us": 0.7}}),
    ("prog_relative", "pcm", {"programming.noise": {"kind": "relative", "sigma_rel": 0.04}}),
    ("nu_clipped", "pcm", {"drift.absolute": False}),
    ("clip_upper", "pcm", {"programming.clip_upper": True}),
    ("per_tile_dac_fixed", "pcm", {"mapping.scaling": "per_tile", "dac.range": {"kind": "fixed", "bound": 2.5}}),
    ("adc_errors_nl", "pcm", {"adc.gain_error_rel": 0.02, "adc.offset_error_lsb": 0.5, "adc.noise_lsb": 0.7,
                              "adc.nonlinearity": {"kind": "s_curve", "k": 1.5}}),
    ("dac_nl_noise", "pcm", {"dac.noise_lsb": 0.3, "dac.nonlinearity": {"kind": "polynomial",
                                                                        "coeffs": [0.0, 1.0, 0.0, -0.05]}}),
    ("ideal_adc", "pcm", {"adc.bits": None, "dac.bits": None}),
    ("bit_slices", "pcm", {"conductance.n_levels": 4, "mapping.weight_slices": 2}),
    ("bit_serial", "pcm", {"dac.bit_serial": True}),
    ("iv_poly", "pcm", {"iv": {"kind": "polynomial", "v_read_v": 0.2,
                                 "a2_per_v": {"kind": "constant", "value": 0.3},
                                 "a3_per_v2": {"kind": "polynomial", "coeffs": [0.1, 0.2]}}}),
    ("word_line_ir", "pcm", {"tile.word_line_r_ohm": 1.5, "tile.bit_line_r_ohm": 1.0, "tile.rows": 64,
                             "tile.cols": 64}),
    ("calibrated", "pcm", {"dac.range": {"kind": "calibrated", "percentile": 99.0},
                           "adc.range": {"kind": "calibrated", "percentile": 99.5}}),
    ("ideal", "ideal", {}),
]
TIMES = (0.0, 3600.0)


class Hasher:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def add(self, label: str, a) -> None:
        self.h.update(label.encode())
        if a is None:
            self.h.update(b"<none>")
            return
        a = np.ascontiguousarray(np.asarray(a))
        self.h.update(str(a.dtype).encode() + str(a.shape).encode())
        self.h.update(a.tobytes())

    def add_obj(self, label: str, obj) -> None:
        for f in sorted(f.name for f in dataclasses.fields(obj)):
            v = getattr(obj, f)
            if isinstance(v, np.ndarray) or v is None:
                self.add(f"{label}.{f}", v)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _profile(preset: str, overrides: dict):
    try:
        return cimsim.load_profile(preset, overrides=overrides or None)
    except cimsim.ProfileError as e:  # a variant this version cannot express: say so, do not skip silently
        sys.exit(f"variant {preset} {overrides}: {e}")


def chip_hash(verbose: bool) -> str:
    total = Hasher()
    for name, preset, ov in VARIANTS:
        h = Hasher()
        p = _profile(preset, ov)
        small = p.tile.rows <= 64
        shape = (70, 150) if small else (300, 520)
        for dt in (np.float32, np.float64):
            W = np.random.default_rng(11).standard_normal(shape).astype(dt) * 0.1
            x = np.random.default_rng(12).standard_normal((17, shape[1])).astype(dt)
            st = cimsim.program_matrix(W, p, rng=5)
            if "calibrated" in (p.dac.range.kind, p.adc.range.kind):
                st = st.calibrate(x)
            h.add_obj(f"{dt.__name__}.state", st)
            for t in TIMES:
                d = st.drift(t, np.random.default_rng(6))
                h.add_obj(f"{dt.__name__}.{t}.drifted", d)
                y, m = cimsim.tile_mvm(x, d, rng=np.random.default_rng(7), return_masks=True)
                h.add(f"{dt.__name__}.{t}.y", y)
                h.add_obj(f"{dt.__name__}.{t}.masks", m)
                y1 = cimsim.tile_mvm(x[3], st, t_s=t, rng=np.random.default_rng(8))
                h.add(f"{dt.__name__}.{t}.y1", y1)
                if "calibrated" not in (p.dac.range.kind, p.adc.range.kind):
                    pd = cimsim.program_drifted(W, p, rng=5, t_s=t, read_rng=np.random.default_rng(6))
                    h.add_obj(f"{dt.__name__}.{t}.program_drifted", pd)
                    h.add(f"{dt.__name__}.{t}.pd_y", cimsim.tile_mvm(x, pd, rng=np.random.default_rng(7)))
            c = cimsim.GlobalDriftCompensation.from_state(st, np.random.default_rng(9))
            h.add(f"{dt.__name__}.comp", cimsim.tile_mvm(x, st, t_s=86400.0, rng=np.random.default_rng(10),
                                                        compensation=c))
        if verbose:
            print(f"  {name:30s} {h.hexdigest()[:16]}")
        total.add(name, np.frombuffer(bytes.fromhex(h.hexdigest()), np.uint8))
    return total.hexdigest()


def train_hash() -> str:
    import torch
    import torch.nn.functional as F

    h = Hasher()
    torch.manual_seed(0)
    data = cimsim.data.digits()
    for mode in ("hardware", "noise_injection"):
        torch.manual_seed(0)
        net = cimsim.convert(cimsim.models.mlp(), cimsim.load_profile("pcm"), mode=mode, seed=3)
        opt = torch.optim.Adam(net.parameters(), lr=5e-3)
        for i in range(3):
            xb, yb = data.x_train[i * 64:(i + 1) * 64], data.y_train[i * 64:(i + 1) * 64]
            out = net(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            h.add(f"{mode}.{i}.out", out.detach().numpy())
            for n, prm in net.named_parameters():
                h.add(f"{mode}.{i}.grad.{n}", prm.grad.numpy())
            opt.step()
        for n, prm in net.named_parameters():
            h.add(f"{mode}.w.{n}", prm.detach().numpy())
        net.eval()
        h.add(f"{mode}.eval", net(data.x_test[:100]).detach().numpy())
    return h.hexdigest()


def demo_hash() -> str:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-m", "cimsim", "demo", "--out", d], check=True,
                             capture_output=True, text=True).stdout
    table = "\n".join(line for line in out.splitlines() if line.startswith("|"))
    print(table)
    return hashlib.sha256(table.encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", action="store_true", help="also hash the demo's table")
    ap.add_argument("-v", "--verbose", action="store_true", help="a hash per variant")
    a = ap.parse_args()
    print(f"chips ({len(VARIANTS)} variants x float32/float64 x t in {TIMES}): {chip_hash(a.verbose)}")
    print(f"training steps (hardware, noise injection): {train_hash()}")
    if a.demo:
        print(f"demo table: {demo_hash()}")


if __name__ == "__main__":
    main()
