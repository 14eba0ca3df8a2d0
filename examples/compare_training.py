"""Hardware-in-the-loop training vs float training vs noise injection, evaluated on the same chips.

    .venv/bin/python examples/compare_training.py [--seeds 4] [--epochs 15] [--chips 3] [--adc-bound 2]

A harsh chip: the ``pcm`` profile with only 8 conductance levels and a 4-bit ADC whose full scale
is ``--adc-bound`` normalised column units (default 2; the ``pcm`` profile's own 12 gives a
4-bit step of 1.7 units that the digits MLP shrugs off, see docs/training.md). For every seed
the digits MLP 64-256-256-10 starts from the same initial weights and is trained three ways:

* ``float``: plain float training (the converted model in ``ideal`` mode),
* ``noise injection``: Gaussian weight noise from the profile's programming noise (the common
  hardware-aware-training baseline),
* ``hardware``: the chip itself in the forward pass, extended straight-through backward.

Each trained model is then programmed onto the *same* simulated chips (the same seeds for every
method, ``--chips`` of them) and its test accuracy read through the hardware model. The script
prints a markdown table (per seed, mean over chips) and the mean over seeds.
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
from cimsim.nn import analog_layers, convert, set_mode  # noqa: E402
from cimsim.profiles.loader import load_profile  # noqa: E402

HARSH_OVERRIDES = {"conductance.n_levels": 8, "adc.bits": 4}  # plus adc.range.bound from --adc-bound
METHODS = {"float": "ideal", "noise injection": "noise_injection", "hardware": "hardware"}


def train(model, x, y, *, epochs: int, lr: float, seed: int, batch: int = 64) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


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


def main() -> None:
    ap = argparse.ArgumentParser(description="hardware vs float vs noise-injection training on a harsh chip")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--chips", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--adc-bound", type=float, default=2.0, help="ADC full scale, normalised column units (pcm: 12)")
    args = ap.parse_args()

    overrides = dict(HARSH_OVERRIDES, **{"adc.range.bound": args.adc_bound})
    profile = load_profile("pcm", overrides=overrides)
    data = digits(seed=0)
    chips = list(range(args.chips))
    table = {m: [] for m in METHODS}
    digital = []
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        init = mlp(64, (256, 256), 10)
        for name, mode in METHODS.items():
            model = convert(init, profile, mode=mode, seed=seed)  # a copy: same initial weights
            train(model, data.x_train, data.y_train, epochs=args.epochs, lr=args.lr, seed=seed)
            if name == "float":
                digital.append(float_accuracy(model, data.x_test, data.y_test))
            table[name].append(statistics.mean(chip_accuracy(model, data.x_test, data.y_test, chips)))
    elapsed = time.perf_counter() - t0

    print(f"Profile: pcm with {overrides} (8 levels, 4-bit ADC); digits MLP 64-256-256-10, "
          f"{args.epochs} epochs, Adam lr {args.lr}, batch 64; test accuracy (%) through the hardware model, "
          f"mean over {args.chips} chips (same chips for every method)\n")
    print("| seed | float-trained (digital acc.) | float-trained on chip | noise injection on chip | hardware (extended STE) on chip |")
    print("|---|---|---|---|---|")
    for i in range(args.seeds):
        print(f"| {i} | {100 * digital[i]:.1f} | {100 * table['float'][i]:.1f} | {100 * table['noise injection'][i]:.1f} "
              f"| {100 * table['hardware'][i]:.1f} |")
    mean = {k: 100 * statistics.mean(v) for k, v in table.items()}
    sd = {k: 100 * statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in table.items()}
    print(f"| **mean ± sd** | {100 * statistics.mean(digital):.1f} | {mean['float']:.1f} ± {sd['float']:.1f} "
          f"| {mean['noise injection']:.1f} ± {sd['noise injection']:.1f} | {mean['hardware']:.1f} ± {sd['hardware']:.1f} |")
    print(f"\nhardware - float-trained: {mean['hardware'] - mean['float']:+.1f} points; "
          f"hardware - noise injection: {mean['hardware'] - mean['noise injection']:+.1f} points "
          f"({elapsed:.0f} s in all)")


if __name__ == "__main__":
    main()
