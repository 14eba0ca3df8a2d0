"""Training cost of the torch bridge: seconds per epoch and peak memory per training mode.

Run by hand (never by pytest):  .venv/bin/python benchmarks/bench_train.py [--quick]

1. Digits MLP 64-256-256-10 (embedded data, batch 64, one table per optimizer: plain SGD, lr
   0.05, no momentum, as in the aihwkit comparison, and Adam): seconds per epoch for plain float
   torch, and the converted model in ``ideal``, ``noise_injection`` and ``hardware`` modes on the
   ``pcm`` profile; ratio to the float epoch.  Target (issue 17): hardware <= 3.0x float with SGD.
2. Large MLP 1024-4096-4096-10 (synthetic data, batch 256, a few batches, SGD and Adam): seconds
   per batch and ratio to float.  Target (issue 17): hardware <= 1.5x float with Adam.
3. Set-up of one hardware-mode training forward of the digits MLP (batch 64): the time spent
   building what a forward needs besides its kernels (seeds and generators, programming / drift
   plans and laws, converter plans, the MVM plan, checks, scratch buffers), per piece, against
   the whole forward.
4. Peak memory of Adam training (VmHWM / ru_maxrss) of the large MLP and of 1024-1024-1024-10
   (``--mem-sizes``), batch 256, each mode in its own process; also the part above a process that
   only holds the model, its gradients and the Adam state (no forward), and the same process after
   one hardware step of a tiny MLP (Numba's runtime and cimsim's kernels loaded: a fixed cost,
   whatever the model's size).  Target (issue 17): hardware's peak <= noise_injection's.
5. The training methods of ``examples/compare_training.py`` (issue 18) on its harsh chip (pcm, 8
   levels, 4-bit ADC of full scale 2 with 0.5 LSB noise), digits MLP: seconds per epoch, ratio to
   the float epoch and to hardware mode's (``--only methods``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cimsim.data import digits  # noqa: E402
from cimsim.models import mlp  # noqa: E402
from cimsim.nn import NoiseSpec, convert  # noqa: E402
from cimsim.profiles.loader import load_profile  # noqa: E402

MODES = ("float", "ideal", "noise_injection", "hardware")
LARGE = (1024, (4096, 4096), 10)
#: the MLPs whose training peak memory is measured (``--mem-sizes``): the large one and 1024-wide layers
MEM_SIZES = ("1024-4096-4096-10", "1024-1024-1024-10")
#: optimizers of the timing tables and their learning rates (digits, large MLP): plain SGD as in
#: the aihwkit comparison (no momentum), and Adam
OPTIMIZERS = {"sgd": (0.05, 0.01), "adam": (1e-3, 1e-4)}


def make_opt(name: str, params, lr: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def parse_sizes(spec: str):
    """``"1024-4096-4096-10"`` -> ``(1024, (4096, 4096), 10)``."""
    n = [int(v) for v in spec.split("-")]
    return n[0], tuple(n[1:-1]), n[-1]


def cpu_model() -> str:
    """The CPU's model name, family / model numbers and widest vector extensions (``/proc/cpuinfo``;
    elsewhere ``platform.processor()``): virtual machines often report only a brand."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first CPU's block
                k, _, v = line.partition(":")
                info[k.strip()] = v.strip()
    except OSError:
        pass
    if "model name" not in info:
        return platform.processor() or "unknown"
    flags = set(info.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return (f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}; "
            f"{' '.join(simd) or 'no AVX2'})")


def machine_line() -> str:
    """torch version, the CPU (model, torch's capability, usable cores) and the thread counts."""
    import numba

    from cimsim._threads import get_num_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"torch {torch.__version__}; CPU {cpu_model()}, torch capability "
            f"{torch.backends.cpu.get_cpu_capability()}, {cores} usable cores; threads: torch "
            f"{torch.get_num_threads()}, cimsim {get_num_threads()}, numba {numba.get_num_threads()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
#: the training methods of examples/compare_training.py: convert() settings (None: plain float torch)
METHODS: dict[str, dict | None] = {
    "float": None,
    "noise injection (profile noise)": {"mode": "noise_injection"},
    "noise injection (additive 5 %, straight)": {"mode": "noise_injection", "noise": NoiseSpec("additive", 0.05, "channel")},
    "noise injection (x(1 + 0.2 eps), through)": {"mode": "noise_injection", "noise_grad": "through",
                                                  "noise": NoiseSpec("multiplicative", 0.2)},
    "hardware (STE)": {"mode": "hardware"},
    "hardware + expected ADC gradients": {"mode": "hardware", "adc_backward": "expected"},
    "smoothed": {"mode": "smoothed"},
}
HARSH = {"conductance.n_levels": 8, "adc.bits": 4, "adc.noise_lsb": 0.5, "adc.range.bound": 2.0}


def build(mode: str, sizes, seed: int = 0):
    torch.manual_seed(seed)
    model = mlp(sizes[0], sizes[1], sizes[2])
    if mode != "float":
        model = convert(model, load_profile("pcm"), mode=mode, seed=seed, inplace=True)
    return model


def step(model, opt, xb, yb):
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def epoch(model, opt, x, y, batch, g):
    perm = torch.randperm(len(x), generator=g)
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        step(model, opt, x[idx], y[idx])


def bench_digits(repeats: int, optimizers):
    """Epoch times per optimizer and mode, all taking turns within each repeat (round robin), so
    that this machine's drifting speed hits them alike; also the per-round ratio to the float
    epoch of the same optimizer."""
    data = digits(seed=0)
    runs = {}
    for name in optimizers:
        for mode in MODES:
            model = build(mode, (64, (256, 256), 10))
            opt = make_opt(name, model.parameters(), OPTIMIZERS[name][0])
            g = torch.Generator().manual_seed(0)
            epoch(model, opt, data.x_train, data.y_train, 64, g)  # warm-up (Numba compile, allocator)
            runs[name, mode] = (model, opt, g, [])
    for _ in range(repeats):
        for model, opt, g, ts in runs.values():
            t0 = time.perf_counter()
            epoch(model, opt, data.x_train, data.y_train, 64, g)
            ts.append(time.perf_counter() - t0)
    rows = {}
    for (name, mode), (_, _, _, ts) in runs.items():
        ref = runs[name, "float"][3]
        rows.setdefault(name, {})[mode] = (min(ts), statistics.median(ts),
                                           statistics.median(t / f for t, f in zip(ts, ref)))
    return rows, len(data.x_train)


def bench_methods(repeats: int):
    """Epoch times of the training methods on the harsh chip, taking turns as in :func:`bench_digits`."""
    data = digits(seed=0)
    prof = load_profile("pcm", overrides=HARSH)
    runs = {}
    for name, cfg in METHODS.items():
        torch.manual_seed(0)
        model = mlp(64, (256, 256), 10)
        if cfg is not None:
            model = convert(model, prof, seed=0, inplace=True, **cfg)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        epoch(model, opt, data.x_train, data.y_train, 64, g)  # warm-up
        runs[name] = (model, opt, g, [])
    for _ in range(repeats):
        for model, opt, g, ts in runs.values():
            t0 = time.perf_counter()
            epoch(model, opt, data.x_train, data.y_train, 64, g)
            ts.append(time.perf_counter() - t0)
    return {name: min(ts) for name, (_, _, _, ts) in runs.items()}


def methods_part(args):
    best = bench_methods(3 if args.quick else 7)
    print(f"Training methods (examples/compare_training.py), digits MLP, pcm with {HARSH}, batch 64, Adam "
          "(best of repeats, the methods taking turns)\n")
    print("| method | s / epoch | x float | x hardware (STE) |")
    print("|---|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {t:.4f} | {t / best['float']:.2f} | {t / best['hardware (STE)']:.2f} |")
    print()


def large_data(n, batch, seed=0, sizes=LARGE):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n * batch, sizes[0], generator=g), torch.randint(0, sizes[2], (n * batch,), generator=g)


def bench_large(n_batches: int, optimizers, batch: int = 256):
    """Seconds per batch per optimizer and mode; the optimizers' models of one mode take turns
    batch by batch (one mode's models at a time: they are large)."""
    x, y = large_data(n_batches + 1, batch)
    rows: dict[str, dict] = {name: {} for name in optimizers}
    for mode in MODES:
        runs = {}
        for name in optimizers:
            model = build(mode, LARGE)
            opt = make_opt(name, model.parameters(), OPTIMIZERS[name][1])
            step(model, opt, x[:batch], y[:batch])  # warm-up
            runs[name] = (model, opt, [])
        for i in range(1, n_batches + 1):
            sl = slice(i * batch, (i + 1) * batch)
            for model, opt, ts in runs.values():
                t0 = time.perf_counter()
                step(model, opt, x[sl], y[sl])
                ts.append(time.perf_counter() - t0)
        for name, (_, _, ts) in runs.items():
            rows[name][mode] = min(ts), statistics.median(ts)
        del runs
    return rows


#: the set-up pieces of a hardware forward: functions, and classes whose __init__ is timed; a
#: piece called inside another is counted in the outer one only
SETUP_FUNCS = ("split_seed", "child_generators", "as_generator", "check_profile", "check_w", "check_time",
               "programming_plan", "programming_laws", "drift_plan", "dac_plan", "adc_plan", "mvm_plan", "make_gemm",
               "adc_coefficients", "scratch", "row_chunks", "_dac_is_ideal")
SETUP_CLASSES = ("ProgrammingLaws", "DriftLaws", "DriftRun", "MvmPlan")


class SetupTimer:
    """Wraps the set-up pieces wherever cimsim's modules hold them (module attributes, class
    ``__init__``), timing the outermost call of each with ``perf_counter``; ``undo()`` restores them."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._tls = threading.local()
        self._undo: list = []
        wrapped: dict[int, object] = {}
        for name, mod in list(sys.modules.items()):
            if not name.startswith("cimsim") or mod is None:
                continue
            for attr in SETUP_FUNCS:
                fn = getattr(mod, attr, None)
                if callable(fn) and not isinstance(fn, type):
                    w = wrapped.setdefault(id(fn), self._wrap(attr, fn))
                    self._undo.append((mod, attr, fn))
                    setattr(mod, attr, w)
            for attr in SETUP_CLASSES:
                cls = getattr(mod, attr, None)
                if isinstance(cls, type) and id(cls) not in wrapped:
                    wrapped[id(cls)] = cls
                    init = cls.__dict__["__init__"]
                    self._undo.append((cls, "__init__", init))
                    cls.__init__ = self._wrap(attr, init)

    def _wrap(self, label, fn):
        def timed(*args, **kwargs):
            depth = getattr(self._tls, "depth", 0)
            if depth:
                return fn(*args, **kwargs)
            self._tls.depth = 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self._tls.depth = 0
                self.totals[label] = self.totals.get(label, 0.0) + dt
                self.calls[label] = self.calls.get(label, 0) + 1
        return timed

    def undo(self):
        for owner, attr, orig in reversed(self._undo):
            setattr(owner, attr, orig)


def bench_setup(n: int, repeats: int):
    """Per hardware forward of the digits MLP (batch 64, 3 layers): total wall time (no timers),
    then with the timers: the set-up pieces, ms per forward each (medians over ``repeats`` rounds of ``n``)."""
    data = digits(seed=0)
    model = build("hardware", (64, (256, 256), 10))
    xb = data.x_train[:64]
    for _ in range(5):  # warm-up (Numba compile, caches)
        model(xb)
    walls, setups, pieces = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            model(xb)
        walls.append((time.perf_counter() - t0) / n)
        timer = SetupTimer()
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                model(xb)
            timed_wall = (time.perf_counter() - t0) / n
        finally:
            timer.undo()
        setups.append((sum(timer.totals.values()) / n, timed_wall))
        pieces.append({k: (v / n, timer.calls[k] / n) for k, v in timer.totals.items()})
    med = statistics.median
    wall = med(walls)
    setup = med(s for s, _ in setups)
    timed_wall = med(w for _, w in setups)
    per = {k: (med(p.get(k, (0.0, 0))[0] for p in pieces), pieces[-1].get(k, (0.0, 0))[1])
           for k in sorted({k for p in pieces for k in p})}
    return wall, setup, timed_wall, per


def mem_child(mode: str, n_steps: int, sizes=LARGE, batch: int = 256) -> None:
    """Runs in its own process: peak RSS of ``n_steps`` Adam training steps of the MLP ``sizes`` in ``mode``."""
    x, y = large_data(n_steps, batch, sizes=sizes)
    if mode == "kernels":  # Numba's runtime and cimsim's kernels loaded: one hardware step of an 8-8-2 MLP
        tiny = build("hardware", (8, (8,), 2))
        F.cross_entropy(tiny(torch.randn(4, 8)), torch.zeros(4, dtype=torch.long)).backward()
        del tiny
    if mode in ("static", "kernels"):  # weights + grads + Adam state, no forward at all
        model = build("float", sizes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
    else:
        model = build(mode, sizes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for i in range(n_steps):
            sl = slice(i * batch, (i + 1) * batch)
            step(model, opt, x[sl], y[sl])
    print(json.dumps({"mode": mode, "maxrss_kb": peak_rss_kb(), "chips_alive": chips_alive()}))


def chips_alive() -> int:
    """DriftedStates still alive (after a garbage collection): 0 after training steps, whose
    forwards program a fresh chip each; more means chips are kept and memory grows with the steps."""
    from cimsim.crossbar import DriftedState

    gc.collect()
    return sum(isinstance(o, DriftedState) for o in gc.get_objects())


def peak_rss_kb() -> int:
    """Peak resident memory of this process, KiB.

    ``VmHWM`` from ``/proc/self/status`` where it exists: Linux carries ``ru_maxrss`` across
    ``execve``, so a child started from a big parent would report the parent's size. Elsewhere
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_memory(n_steps: int, spec: str, env_extra: dict | None = None):
    """Peak MiB per mode (one process each) and the DriftedStates alive after the steps."""
    out, alive = {}, {}
    env = dict(os.environ, **(env_extra or {}))
    for mode in ("static", "kernels") + MODES:
        res = subprocess.run([sys.executable, __file__, "--mem-child", mode, "--steps", str(n_steps),
                              "--mem-sizes", spec],
                             capture_output=True, text=True, check=True, env=env)
        rec = json.loads(res.stdout.strip().splitlines()[-1])
        out[mode], alive[mode] = rec["maxrss_kb"] / 1024.0, rec["chips_alive"]
    return out, alive


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--only", choices=("digits", "setup", "large", "memory", "methods"), help="run one part only")
    ap.add_argument("--mem-child", choices=("static", "kernels") + MODES, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--optimizers", nargs="+", choices=tuple(OPTIMIZERS), default=list(OPTIMIZERS),
                    help="optimizers of the digits and large-MLP tables (default: both)")
    ap.add_argument("--mem-sizes", nargs="+", default=list(MEM_SIZES),
                    help="MLPs of the memory part, as in-hidden...-out (default: %(default)s)")
    args = ap.parse_args()
    if args.mem_child:
        mem_child(args.mem_child, args.steps, parse_sizes(args.mem_sizes[0]))
        return
    print(f"{machine_line()}; profile pcm\n")
    if args.only in (None, "memory"):  # first, while this process is small
        for spec in args.mem_sizes:
            memory_part(spec)
    if args.only in (None, "digits"):
        digits_part(args)
    if args.only in (None, "setup"):
        setup_part(args)
    if args.only in (None, "large"):
        large_part(args)
    if args.only in (None, "methods"):
        methods_part(args)


def opt_label(name: str, lr: float) -> str:
    return f"plain SGD (lr {lr:g}, no momentum)" if name == "sgd" else f"Adam (lr {lr:g})"


def digits_part(args):
    tables, n = bench_digits(3 if args.quick else 9, args.optimizers)
    for name, rows in tables.items():
        print(f"Digits MLP 64-256-256-10, {n} training samples, batch 64, {opt_label(name, OPTIMIZERS[name][0])} "
              "(best / median of repeats;\nall modes and optimizers take turns; 'x float paired' = median over rounds "
              "of epoch / float epoch of that round)\n")
        print("| mode | s / epoch (best) | s / epoch (median) | x float (best) | x float paired |")
        print("|---|---|---|---|---|")
        for mode, (best, med, paired) in rows.items():
            print(f"| {mode} | {best:.4f} | {med:.4f} | {best / rows['float'][0]:.2f} | {paired:.2f} |")
        print()


def setup_part(args):
    n, repeats = (100, 3) if args.quick else (200, 7)
    wall, setup, timed_wall, per = bench_setup(n, repeats)
    print(f"Set-up of one hardware-mode forward, digits MLP 64-256-256-10, batch 64 (median of {repeats} rounds of {n})\n")
    print(f"forward {wall * 1e3:.3f} ms (no timers); with timers {timed_wall * 1e3:.3f} ms, of which set-up "
          f"{setup * 1e3:.3f} ms ({setup / timed_wall:.0%}), kernels and the rest {(timed_wall - setup) * 1e3:.3f} ms\n")
    print("| set-up piece (outermost calls) | ms / forward | calls / forward |")
    print("|---|---|---|")
    for k, (ms, calls) in sorted(per.items(), key=lambda kv: -kv[1][0]):
        print(f"| {k} | {ms * 1e3:.3f} | {calls:g} |")
    print()


def large_part(args):
    nb = 2 if args.quick else 4
    tables = bench_large(nb, args.optimizers)
    for name, rows in tables.items():
        print(f"Large MLP 1024-4096-4096-10, synthetic data, batch 256, {opt_label(name, OPTIMIZERS[name][1])}, "
              f"{nb} timed batches (best / median)\n")
        print("| mode | s / batch (best) | s / batch (median) | x float |")
        print("|---|---|---|---|")
        for mode, (best, med) in rows.items():
            print(f"| {mode} | {best:.3f} | {med:.3f} | {best / rows['float'][0]:.2f} |")
        print()


def saved_for_backward_mib(mode: str, sizes=LARGE, batch: int = 256) -> float:
    """MiB of tensors autograd keeps from the forward to the backward (Parameters not counted)."""
    model = build(mode, sizes)
    x, y = large_data(1, batch, sizes=sizes)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    return sum(seen.values()) / 2**20


def memory_part(spec: str):
    sizes = parse_sizes(spec)
    mem, alive = bench_memory(3, spec)
    # glibc keeps freed blocks below its (dynamic, up to 32 MiB) mmap threshold in the heap, which
    # inflates peak RSS of every mode; the same children with a fixed 1 MiB threshold show the
    # allocator-independent part
    mem_mmap, _ = bench_memory(3, spec, {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)})
    saved = {mode: saved_for_backward_mib(mode, sizes) for mode in MODES}
    print(f"Saved for backward (autograd graph, Parameters excluded), MLP {spec}, batch 256\n")
    print("| mode | MiB | x noise_injection |")
    print("|---|---|---|")
    for mode in MODES:
        print(f"| {mode} | {saved[mode]:.1f} | {saved[mode] / saved['noise_injection']:.2f} |")
    print(f"\nPeak memory, MLP {spec}, batch 256, 3 Adam steps, one process per mode (peak RSS, VmHWM)\n")
    print("| mode | peak MiB | above static MiB | peak x noise_injection | above-static x noise_injection "
          "| chips alive after |")
    print("|---|---|---|---|---|---|")
    st, ni = mem["static"], mem["noise_injection"]
    for mode in MODES:
        m = mem[mode]
        print(f"| {mode} | {m:.0f} | {m - st:.0f} | {m / ni:.2f} | {(m - st) / max(ni - st, 1e-9):.2f} "
              f"| {alive[mode]} |")
    print(f"| static (model + grads + Adam state, no forward) | {st:.0f} | 0 | | | |")
    print(f"| static + Numba's runtime and the kernels (one hardware step of an 8-8-2 MLP first) | "
          f"{mem['kernels']:.0f} | {mem['kernels'] - st:.0f} | | | |\n")
    print(f"The same (MLP {spec}) with glibc's mmap threshold fixed at 1 MiB (MALLOC_MMAP_THRESHOLD_=1048576)\n")
    print("| mode | peak MiB | above static MiB | above-static x noise_injection |")
    print("|---|---|---|---|")
    st, ni = mem_mmap["static"], mem_mmap["noise_injection"]
    for mode in MODES:
        m = mem_mmap[mode]
        print(f"| {mode} | {m:.0f} | {m - st:.0f} | {(m - st) / max(ni - st, 1e-9):.2f} |")
    print(f"| static | {st:.0f} | 0 | |")
    print(f"| static + kernels | {mem_mmap['kernels']:.0f} | {mem_mmap['kernels'] - st:.0f} | |\n")


if __name__ == "__main__":
    main()
