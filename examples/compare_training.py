"""Training methods compared on the same simulated chips: float, noise injection (tuned, and through
the noisy weights), the hardware STE (with and without expected-transfer ADC gradients), smoothed.

    .venv/bin/python examples/compare_training.py [--seeds 4] [--epochs 15] [--chips 3] [--quick]

Two chips, both the ``pcm`` profile with 8 conductance levels and a 4-bit ADC with 0.5 LSB of
conversion noise (``adc.noise_lsb``): ``mild`` keeps pcm's ADC full scale of 12 normalised column
units, ``harsh`` tightens it to 2 (tile outputs saturate and a step is coarse). For every seed the
digits MLP 64-256-256-10 starts from the same initial weights and is trained six ways:

* ``float``: plain float training (the converted model in ``ideal`` mode);
* ``noise inj. (tuned)``: additive Gaussian weight noise ``W + level max|W_i| eps`` per output
  channel, straight-through gradient, ``level`` picked on a validation split (below);
* ``noise inj. x(1+s eps), through``: multiplicative noise ``W (1 + level eps)`` with the gradient
  through the noisy weights (``noise_grad="through"``), its level tuned the same way;
* ``hardware STE``: the chip in the forward pass, extended straight-through backward;
* ``hardware + E[ADC] grad``: the same with expected-transfer ADC gradients
  (``adc_backward="expected"``, sigma = the chip's 0.5 LSB);
* ``smoothed``: randomized rounding on the 8-level grid plus programming noise (``mode="smoothed"``).

Tuning (per chip, before the study): each noise-injection variant is trained with seed 100 on the
first 80 % of the training set at each candidate level and read on the remaining 20 % through
``--chips`` chips (seeds 500+); the best level is used for every seed. The test set is not seen.

Each trained model is then programmed onto the *same* chips (layer i of chip c: seed
1000 c + i, the same for every method) and its test accuracy read through the hardware model.
The script prints one markdown table per chip (per method: each seed's mean over chips, the mean
and standard deviation over seeds) and the paired differences to the hardware STE.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cimsim.data import digits  # noqa: E402
from cimsim.models import mlp  # noqa: E402
from cimsim.nn import NoiseSpec, analog_layers, convert, set_mode  # noqa: E402
from cimsim.profiles.loader import load_profile  # noqa: E402

CHIPS = {
    "mild": {"conductance.n_levels": 8, "adc.bits": 4, "adc.noise_lsb": 0.5},
    "harsh": {"conductance.n_levels": 8, "adc.bits": 4, "adc.noise_lsb": 0.5, "adc.range.bound": 2.0},
}
#: candidate levels of the two noise-injection variants (additive: of max|W| per channel; multiplicative: of |W|)
LEVELS = {"additive": (0.02, 0.05, 0.1, 0.2), "multiplicative": (0.1, 0.2, 0.4)}
METHODS = ("float", "noise inj. (tuned)", "noise inj. x(1+s eps), through", "hardware STE",
           "hardware + E[ADC] grad", "smoothed", "smoothed + curvature")


def method_config(name: str, levels: dict[str, float]) -> dict:
    """The convert() settings of a method (the noise levels from tuning)."""
    return {
        "float": {"mode": "ideal"},
        "noise inj. (tuned)": {"mode": "noise_injection",
                               "noise": NoiseSpec("additive", levels["additive"], "channel")},
        "noise inj. x(1+s eps), through": {"mode": "noise_injection", "noise_grad": "through",
                                           "noise": NoiseSpec("multiplicative", levels["multiplicative"])},
        "hardware STE": {"mode": "hardware"},
        "hardware + E[ADC] grad": {"mode": "hardware", "adc_backward": "expected"},
        "smoothed": {"mode": "smoothed"},
        "smoothed + curvature": {"mode": "smoothed", "smoothing_curvature": "fisher"},
    }[name]


def train(model, x, y, *, epochs: int, lr: float, seed: int, batch: int = 64) -> float:
    """Adam, shuffled batches from ``seed``; returns the seconds spent."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


@torch.no_grad()
def chip_accuracy(model, x, y, chip_seeds) -> list[float]:
    """Accuracy on each chip: layer i of chip c is programmed with seed 1000 * c + i (same for every method)."""
    set_mode(model, "hardware", eval_mode=None)
    model.eval()
    accs = []
    for c in chip_seeds:
        for i, (_, layer) in enumerate(analog_layers(model)):
            layer.reseed(1000 * c + i)
        accs.append((model(x).argmax(1) == y).float().mean().item())
    return accs


@torch.no_grad()
def float_accuracy(model, x, y) -> float:
    set_mode(model, "ideal", eval_mode=None)
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def tune(profile, data, args) -> dict[str, float]:
    """Best level of each noise-injection variant on a validation split (see the module docstring)."""
    n = len(data.x_train) * 4 // 5
    xt, yt, xv, yv = data.x_train[:n], data.y_train[:n], data.x_train[n:], data.y_train[n:]
    chips = [500 + c for c in range(args.chips)]
    best = {}
    for kind, levels in LEVELS.items():
        scores = {}
        for lvl in levels:
            torch.manual_seed(100)
            grad = "through" if kind == "multiplicative" else "straight"
            model = convert(mlp(64, (256, 256), 10), profile, mode="noise_injection", seed=100, noise_grad=grad,
                            noise=NoiseSpec(kind, lvl, "channel"))
            train(model, xt, yt, epochs=args.epochs, lr=args.lr, seed=100)
            scores[lvl] = statistics.mean(chip_accuracy(model, xv, yv, chips))
        best[kind] = max(scores, key=lambda k: scores[k])
        print(f"  tuning {kind}: " + ", ".join(f"{k}: {100 * v:.1f}" for k, v in scores.items())
              + f" -> {best[kind]}", flush=True)
    return best


def study(chip: str, args, data) -> None:
    overrides = CHIPS[chip]
    profile = load_profile("pcm", overrides=overrides)
    print(f"### {chip} chip: pcm with {overrides}\n", flush=True)
    methods = args.methods
    levels = (tune(profile, data, args) if any(m.startswith("noise inj.") for m in methods)
              else {"additive": LEVELS["additive"][1], "multiplicative": LEVELS["multiplicative"][1]})  # unused
    chips = list(range(args.chips))
    table: dict[str, list[float]] = {m: [] for m in methods}
    secs: dict[str, float] = {m: 0.0 for m in methods}
    digital = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        init = mlp(64, (256, 256), 10)
        for name in methods:
            model = convert(init, profile, seed=seed, **method_config(name, levels))  # a copy: same initial weights
            secs[name] += train(model, data.x_train, data.y_train, epochs=args.epochs, lr=args.lr, seed=seed)
            if name == "float":
                digital.append(float_accuracy(model, data.x_test, data.y_test))
            table[name].append(statistics.mean(chip_accuracy(model, data.x_test, data.y_test, chips)))
    print(f"\nDigits MLP 64-256-256-10, {args.epochs} epochs, Adam lr {args.lr}, batch 64; test accuracy (%) "
          f"through the hardware model, mean over {args.chips} chips (the same chips for every method); noise "
          f"levels tuned on a validation split: additive {levels['additive']} of max|W| per channel, "
          f"multiplicative {levels['multiplicative']}. Float-trained, digital accuracy: "
          f"{100 * statistics.mean(digital) if digital else float('nan'):.1f} %\n")
    seeds = range(args.seeds)
    print("| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd | - hardware STE (paired mean ± sd) "
          "| train s / epoch |")
    print("|---" * (args.seeds + 4) + "|")
    ref = table["hardware STE"]
    for name in methods:
        v = table[name]
        d = [a - b for a, b in zip(v, ref)]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        sdd = statistics.stdev(d) if len(d) > 1 else 0.0
        diff = "" if name == "hardware STE" else f"{100 * statistics.mean(d):+.1f} ± {100 * sdd:.1f}"
        print(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in v)
              + f" | {100 * statistics.mean(v):.1f} ± {100 * sd:.1f} | {diff} "
              f"| {secs[name] / (args.seeds * args.epochs):.3f} |")
    print(flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description="training methods on the same simulated chips")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--chips", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--only", choices=tuple(CHIPS), help="one chip only")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs, 1 chip (a smoke run)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma list of methods (hardware STE is always run: the paired differences are against it)")
    args = ap.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if "hardware STE" not in args.methods:
        args.methods.insert(0, "hardware STE")
    if args.quick:
        args.seeds, args.epochs, args.chips = 2, 2, 1
    data = digits(seed=0)
    t0 = time.perf_counter()
    for chip in CHIPS if args.only is None else (args.only,):
        study(chip, args, data)
    print(f"({time.perf_counter() - t0:.0f} s in all, torch {torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
