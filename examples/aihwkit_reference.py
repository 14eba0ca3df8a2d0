"""The aihwkit reference network through cimsim: the digits MLP read via pcm_aihwkit and pcm.

Trains aihwkit's reference MLP 64-256-256-10 in float exactly as its users do (scikit-learn's
digits, ``train_test_split(test_size=0.2, random_state=0)``, pixels / 16, ``torch.manual_seed(0)``,
SGD lr 0.1, batch 64, 30 epochs), then reads it through the ``pcm_aihwkit`` preset (aihwkit 1.1's
default InferenceRPUConfig) and the ``pcm`` profile from 1 s to 10 years after programming, with
no compensation, aihwkit's GlobalDriftCompensation readout (``global_aihwkit``) and cimsim's own
(``global``), 10 chips each, and prints the markdown table of docs/aihwkit.md.

Run: ``python examples/aihwkit_reference.py`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from cimsim.evaluation import evaluate_drift
from cimsim.models import mlp
from cimsim.nn import convert

CHIPS = 10
YEAR = 365.25 * 86400
TIMES = [("1 s", 1.0), ("1 h", 3600.0), ("1 d", 86400.0), ("1 mo", YEAR / 12), ("1 y", YEAR), ("10 y", 10 * YEAR)]
COMPENSATIONS = ("none", "global_aihwkit", "global")


def reference_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits split of the aihwkit reference: (x_train, y_train, x_test, y_test), x = pixels / 16."""
    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.2, random_state=0)
    f = lambda a: torch.tensor(a / 16.0, dtype=torch.float32)  # noqa: E731
    return f(xtr), torch.tensor(ytr), f(xte), torch.tensor(yte)


def train_reference_mlp(x: torch.Tensor, y: torch.Tensor, epochs: int = 30) -> torch.nn.Module:
    """MLP 64-256-256-10 trained in float: init and shuffling from seed 0, SGD lr 0.1, batch 64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = mlp(64, (256, 256), 10)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def main() -> None:
    xtr, ytr, xte, yte = reference_data()
    net = train_reference_mlp(xtr, ytr)
    float_acc = (net(xte).argmax(1) == yte).float().mean().item()
    print(f"float accuracy: {100 * float_acc:.2f} %  (test set {len(yte)} images)\n")
    cols = " | ".join(label for label, _ in TIMES)
    print(f"| profile | compensation | {cols} |")
    print("|---|---|" + "---|" * len(TIMES))
    for profile in ("pcm_aihwkit", "pcm"):
        analog = convert(net, profile, mode="hardware", seed=0)
        for comp in COMPENSATIONS:
            rep = evaluate_drift(analog, (xte, yte), times_s=[t for _, t in TIMES], repeats=CHIPS,
                                 compensation=comp, seed=0, workers=1, progress=False)
            cells = " | ".join(f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in zip(rep.mean, rep.std))
            print(f"| `{profile}` | {comp} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
