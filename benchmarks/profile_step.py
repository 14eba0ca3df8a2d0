"""Where the time of a hardware-mode training step goes (issue 17's profile), next to a float step.

Run by hand (never by pytest):  .venv/bin/python benchmarks/profile_step.py [--steps 200] [--optim sgd|adam] [--mvm | --parts | --program]

Digits MLP 64-256-256-10, batch 64, pcm profile, as in ``bench_train.py``.  First the wall time per
step of plain float torch and of hardware mode (no profiler, best of rounds, the two taking turns).
Then one cProfile run of hardware-mode steps, its functions' own time (tottime) summed into
categories: random normals, the device laws (numpy), the programming / drift kernels, the MVM's
GEMMs, its converter kernels, torch's autograd engine (the backward GEMMs and masks), the optimizer,
and the rest (Python set-up and glue: seeds and generators, plans, checks, array and tensor
plumbing).  cProfile inflates the Python-heavy parts (every call pays its hook), so the shares
over-state the glue; the wall-time ratio is the figure, the shares say where to look.

``--parts``: instead, no profiler: the wall time of the step's compute parts measured inside the
running step (each part's outermost call timed with perf_counter, best of 5 rounds of 100 steps):
the device laws (numpy), the normals, the programming / drift kernels, the tile GEMMs, the DAC and
ADC stages, then the backward + optimizer, and what remains of the forward (set-up, checks, seeds,
plans, tensors).  The compute parts plus the backward and optimizer, over a float step, are the
floor that removing every bit of set-up would leave.

``--program``: instead, programming a 4096 x 4096 layer at t_s = 0 as a training forward does
(``program_drifted``), on 1 and 2 threads: wall time per device and each part's thread time
(normals, device laws, kernels, weight scales, the check of W), then the programming time this
rate gives the large MLP 1024-4096-4096-10 per step against a float Adam step of it timed in the
same run: the floor of its hardware/float ratio before any MVM overhead.

``--mvm``: instead, the parts of a tiled MVM 1024 x 1024, batch 256 (pcm, 256 x 256 tiles, drifted
to 1 h) against torch's one GEMM: the tiles' signal GEMM (one bmm), the variance GEMM of the exact
per-read noise, its normals (one per tile output), and the whole ``tile_mvm`` without and with
per-read noise.  Each round calls torch's GEMM and then every part once, so each part's ratio is
the median over rounds of its time over the GEMM's of the same round (paired: this VM's speed
drifts within a minute).  Then the floors they set: the two GEMMs and the normals, and what the
MVM without per-read noise spends beyond its GEMM (the converters, the DAC stage, the input checks).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cimsim.data import digits  # noqa: E402
from cimsim.models import mlp  # noqa: E402
from cimsim.nn import convert  # noqa: E402
from cimsim.profiles.loader import load_profile  # noqa: E402

#: (category, test on (file, function name)) in order; the first that matches takes the function
CATEGORIES = [
    ("random normals (sampling, ziggurat, Philox)",
     lambda f, n: any(k in f for k in ("kernels/sampling", "kernels/ziggurat", "kernels/philox"))),
    ("device laws (numpy passes)",
     lambda f, n: "profiles/functions" in f or (("devices/drift" in f or "devices/programming" in f)
                                                and not n.endswith("plan"))
     or n in ("<method 'clip' of 'numpy.ndarray' objects>", "_clip")),
    ("programming / drift kernels", lambda f, n: "kernels/programming" in f or "kernels/drift" in f),
    ("MVM GEMMs (torch)", lambda f, n: n in ("<built-in method torch.bmm>", "<built-in method torch.matmul>")),
    ("converter kernels (DAC, ADC, abs-max)", lambda f, n: "kernels/converters" in f),
    ("autograd engine (backward GEMMs, masks)",
     lambda f, n: "run_backward" in n or "nn/ste.py" in f),
    ("optimizer", lambda f, n: "torch/optim" in f),
]


def build(mode: str):
    torch.manual_seed(0)
    model = mlp(64, (256, 256), 10)
    if mode != "float":
        model = convert(model, load_profile("pcm"), mode=mode, seed=0, inplace=True)
    return model


def make_opt(model, kind: str):
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05)
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def steps(model, opt, x, y, n: int, g: torch.Generator) -> None:
    for _ in range(n):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def categorise(stats: pstats.Stats) -> dict[str, float]:
    out = {name: 0.0 for name, _ in CATEGORIES}
    out["Python set-up and glue (the rest)"] = 0.0
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        f = file.replace("\\", "/")
        for name, test in CATEGORIES:
            if test(f, func):
                out[name] += tt
                break
        else:
            out["Python set-up and glue (the rest)"] += tt
    return out


def mvm_parts(rounds: int = 40) -> None:
    from cimsim.crossbar import program_matrix, tile_mvm
    from cimsim.crossbar.mvm import mvm_plan
    from cimsim.kernels import NUMBA
    from cimsim.kernels.sampling import normals

    n, batch, rows = 1024, 256, 256
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    x = rng.standard_normal((batch, n)).astype(np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(W)
    prof = load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02})
    ds = program_matrix(W, prof, rng=1).drift(3600.0, 2)
    st_off = program_matrix(W, load_profile("pcm"), rng=1).drift(3600.0, 2)
    pl = mvm_plan(ds, NUMBA)
    xv = xt.as_strided((n // rows, batch, rows), (rows, n, 1))
    out = torch.empty(n // rows, batch, n)
    w_full, v_full = pl.streams[0].w[0], pl.streams[0].v[0]
    x2 = torch.square(xv)
    z = np.empty((n // rows, batch, n), np.float32)
    g = np.random.default_rng(3)
    parts = {
        "torch GEMM x @ W^T": lambda: torch.matmul(xt, wt.T),
        "signal GEMM per tile (one bmm)": lambda: torch.bmm(xv, w_full.transpose(1, 2), out=out),
        "variance GEMM per tile (one bmm)": lambda: torch.bmm(x2, v_full.transpose(1, 2), out=out),
        "per-read normals, one per tile output": lambda: normals(g, z.shape, np.float32, out=z),
        "tile_mvm, no per-read noise": lambda: tile_mvm(x, st_off, rng=g),
        "tile_mvm, exact per-read noise": lambda: tile_mvm(x, ds, rng=g),
    }
    for fn in parts.values():  # compile, fill the scratch buffers
        fn()
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(rounds):
        for name, fn in parts.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ref = np.array(times["torch GEMM x @ W^T"])
    ratio = {name: float(np.median(np.array(ts) / ref)) for name, ts in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; MVM {n}x{n}, batch {batch}, pcm, tiles {rows}x{rows}; "
          f"{rounds} rounds, each part paired with torch's GEMM of its round\n")
    print("| part | ms (median) | x torch GEMM (paired) |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {np.median(ts) * 1e3:.2f} | {ratio[name]:.2f} |")
    gemms = ratio["signal GEMM per tile (one bmm)"] + ratio["variance GEMM per tile (one bmm)"]
    draws = ratio["per-read normals, one per tile output"]
    rest = ratio["tile_mvm, no per-read noise"] - ratio["signal GEMM per tile (one bmm)"]
    print(f"\nfloors (x torch GEMM): the two GEMMs {gemms:.2f}, with the normals {gemms + draws:.2f}; "
          f"the MVM without per-read noise beyond its GEMM (converters, DAC stage, input checks) {rest:.2f}, "
          f"so the exact per-read MVM's parts sum to {gemms + draws + rest:.2f}")


class _Depth(threading.local):
    """How deep the calling thread is in timed calls (per thread: the pool's chunks run side by side)."""

    n = 0


_LOCK = threading.Lock()


def _timed(parts: dict[str, float], depth: _Depth, label: str, fn):
    """``fn`` whose outermost calls (per thread) add their wall time to ``parts[label]``: on the
    piece pool the parts are summed over the threads (thread time, not wall time)."""

    def wrapper(*args, **kwargs):
        if depth.n:
            return fn(*args, **kwargs)
        depth.n += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            with _LOCK:
                parts[label] = parts.get(label, 0.0) + dt
            depth.n -= 1

    return wrapper


def _time_device_parts(parts: dict[str, float], depth: _Depth, normal_modules) -> None:
    """Time, into ``parts``, the device work of programming and drift: the normals drawn by
    ``normal_modules``, the device laws (numpy passes) and the programming / drift kernels."""
    from cimsim.devices.drift import DriftLaws
    from cimsim.devices.programming import ProgrammingLaws
    from cimsim.kernels import NUMBA

    for mod in normal_modules:
        mod.normals = _timed(parts, depth, "normals (Philox ziggurat)", mod.normals)
    for cls, names in ((ProgrammingLaws, ("x", "all")), (DriftLaws, ("q_s", "read_sigma2", "drift_factor"))):
        for n in names:
            setattr(cls, n, _timed(parts, depth, "device laws (numpy passes)", getattr(cls, n)))
    for n in ("map_targets", "program_targets", "program_devices", "drift_to_blocks"):
        object.__setattr__(NUMBA, n, _timed(parts, depth, "programming / drift kernels", getattr(NUMBA, n)))


def step_parts(optim: str) -> None:
    import cimsim.crossbar.adc_stage as adc_stage
    import cimsim.crossbar.dac_stage as dac_stage
    import cimsim.crossbar.drift as drift
    import cimsim.crossbar.gemm as gemm
    import cimsim.crossbar.mvm as mvm
    import cimsim.crossbar.program as program

    parts: dict[str, float] = {}
    depth = _Depth()
    _time_device_parts(parts, depth, (program, drift, dac_stage, adc_stage))  # every module that draws normals
    gemm.gemm_tiles = _timed(parts, depth, "tile GEMMs (torch)", gemm.gemm_tiles)
    mvm.dac_stage = _timed(parts, depth, "DAC stage", mvm.dac_stage)
    mvm.convert_group = _timed(parts, depth, "ADC stage", mvm.convert_group)
    d = digits(seed=0)
    x, y = d.x_train, d.y_train
    hw, fl = build("hardware"), build("float")
    ho, fo = make_opt(hw, optim), make_opt(fl, optim)
    hg, fg = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    steps(hw, ho, x, y, 30, hg)
    steps(fl, fo, x, y, 30, fg)
    best: dict | None = None
    n = 100
    for _ in range(5):
        t0 = time.perf_counter()
        steps(fl, fo, x, y, n, fg)
        t_float = (time.perf_counter() - t0) / n
        parts.clear()
        fwd = bwd = 0.0
        for _ in range(n):
            idx = torch.randint(0, len(x), (64,), generator=hg)
            t0 = time.perf_counter()
            loss = F.cross_entropy(hw(x[idx]), y[idx])
            t1 = time.perf_counter()
            ho.zero_grad(set_to_none=True)
            loss.backward()
            ho.step()
            t2 = time.perf_counter()
            fwd, bwd = fwd + t1 - t0, bwd + t2 - t1
        if best is None or fwd + bwd < best["fwd"] + best["bwd"]:
            best = dict(float=t_float, fwd=fwd / n, bwd=bwd / n, parts={k: v / n for k, v in parts.items()})
    assert best is not None
    tot = best["fwd"] + best["bwd"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; digits MLP 64-256-256-10, batch 64, {optim}\n")
    print(f"float step {best['float'] * 1e3:.3f} ms; hardware step {tot * 1e3:.3f} ms = {tot / best['float']:.2f}x "
          f"(best of 5 rounds of {n} steps, parts timed inside the step)\n")
    print("| part of the hardware step | ms / step | x float step |")
    print("|---|---|---|")
    compute = 0.0
    for name, t in sorted(best["parts"].items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {t * 1e3:.3f} | {t / best['float']:.2f} |")
        compute += t
    print(f"| backward + optimizer | {best['bwd'] * 1e3:.3f} | {best['bwd'] / best['float']:.2f} |")
    rest = best["fwd"] - compute
    print(f"| rest of the forward (set-up, checks, seeds, plans, tensors) | {rest * 1e3:.3f} | {rest / best['float']:.2f} |")
    floor = compute + best["bwd"]
    print(f"\nfloor with no set-up at all (compute parts + backward + optimizer): {floor / best['float']:.2f}x float")


def program_parts() -> None:
    """``--program``: programming a 4096 x 4096 layer at t_s = 0 (``program_drifted``, what every
    hardware-mode training forward does), per device, on 1 and 2 threads, by part; then what it
    sets for the large MLP 1024-4096-4096-10 against a float Adam step timed in the same run."""
    import cimsim
    import cimsim.crossbar.drift as drift
    import cimsim.crossbar.program as program
    from cimsim.rng import split_seed

    parts: dict[str, float] = {}
    depth = _Depth()
    _time_device_parts(parts, depth, (program, drift))  # the programming and 1/f normals
    program.weight_scales = _timed(parts, depth, "weight scales", program.weight_scales)
    program.check_w = _timed(parts, depth, "check of W (finite)", program.check_w)
    prof = load_profile("pcm")
    W = (np.random.default_rng(0).standard_normal((4096, 4096)) * 0.02).astype(np.float32)
    devices = 2 * W.size
    large = 2 * (1024 * 4096 + 4096 * 4096 + 4096 * 10)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}; program_drifted of a "
          f"4096x4096 pcm layer at t_s = 0 ({devices / 1e6:.1f} M devices), best of 4\n")
    walls = {}
    for threads in (1, 2):
        cimsim.set_num_threads(threads)
        best: tuple[float, dict] | None = None
        for r in range(4):
            parts.clear()
            prog, read = split_seed(r)
            t0 = time.perf_counter()
            program.program_drifted(W, prof, rng=prog, t_s=0.0, read_rng=read)
            t = time.perf_counter() - t0
            if best is None or t < best[0]:
                best = (t, dict(parts))
        assert best is not None
        t, pp = best
        walls[threads] = t
        print(f"{threads} thread(s): {t * 1e3:.0f} ms wall = {t / devices * 1e9:.2f} ns per device\n")
        print("| part | thread-ms | ns per device (thread time) |")
        print("|---|---|---|")
        for name, v in sorted(pp.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {v * 1e3:.1f} | {v / devices * 1e9:.2f} |")
        rest = t * threads - sum(pp.values())
        print(f"| rest (Python, allocation; idle threads on 2) | {rest * 1e3:.1f} | {rest / devices * 1e9:.2f} |\n")
    cimsim.set_num_threads(None)
    torch.manual_seed(0)
    model = mlp(1024, (4096, 4096), 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    xb, yb = torch.randn(256, 1024, generator=g), torch.randint(0, 10, (256,), generator=g)
    ts = []
    for _ in range(4):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ts.append(time.perf_counter() - t0)
    t_float = min(ts[1:])
    t_prog = walls[2] / devices * large
    print(f"large MLP 1024-4096-4096-10: {large / 1e6:.1f} M devices; programming them at this rate on 2 threads "
          f"{t_prog * 1e3:.0f} ms per step; float Adam step (batch 256) {t_float * 1e3:.0f} ms\n"
          f"floor of a hardware step from programming alone (no MVM overhead): {(t_float + t_prog) / t_float:.2f}x float")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--optim", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--mvm", action="store_true", help="the parts of a tiled MVM instead")
    ap.add_argument("--parts", action="store_true", help="the compute parts of a step, timed inside it, instead")
    ap.add_argument("--program", action="store_true", help="the parts of programming a 4096x4096 layer, instead")
    a = ap.parse_args()
    if a.parts:
        step_parts(a.optim)
        return
    if a.program:
        program_parts()
        return
    if a.mvm:
        mvm_parts()
        return
    d = digits(seed=0)
    x, y = d.x_train, d.y_train
    runs = {}
    for mode in ("float", "hardware"):
        m = build(mode)
        o = make_opt(m, a.optim)
        g = torch.Generator().manual_seed(0)
        steps(m, o, x, y, 20, g)  # warm-up (Numba compile, caches)
        runs[mode] = (m, o, g, [])
    for _ in range(a.rounds):
        for m, o, g, ts in runs.values():
            t0 = time.perf_counter()
            steps(m, o, x, y, a.steps // a.rounds, g)
            ts.append((time.perf_counter() - t0) / (a.steps // a.rounds))
    fl, hw = min(runs["float"][3]), min(runs["hardware"][3])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; digits MLP 64-256-256-10, batch 64, {a.optim}\n")
    print(f"float step {fl * 1e3:.3f} ms; hardware step {hw * 1e3:.3f} ms = {hw / fl:.2f}x float (best of {a.rounds} rounds)\n")
    m, o, g, _ = runs["hardware"]
    pr = cProfile.Profile()
    pr.enable()
    t0 = time.perf_counter()
    steps(m, o, x, y, a.steps, g)
    wall = (time.perf_counter() - t0) / a.steps
    pr.disable()
    cats = categorise(pstats.Stats(pr))
    total = sum(cats.values())
    print(f"cProfile of {a.steps} hardware steps ({wall * 1e3:.3f} ms per step under the profiler)\n")
    print("| category | ms / step (profiled) | share |")
    print("|---|---|---|")
    for name, t in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {t / a.steps * 1e3:.3f} | {t / total:.0%} |")


if __name__ == "__main__":
    main()
