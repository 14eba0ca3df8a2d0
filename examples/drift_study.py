"""How accurate will my network be on a PCM chip after an hour, a day, a year?

Trains the digits MLP against the simulated `pcm` chip (hardware mode, extended STE), then runs
a Monte-Carlo drift study: 10 independently programmed chips, each read at 1 s ... 10 years,
without and with global drift compensation. Prints both tables, saves CSV/JSON and a plot into
``runs/example_drift`` and shows how to keep and reload one programmed chip.

Run: ``python examples/drift_study.py`` (about half a minute on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cimsim.data import digits
from cimsim.evaluation import Chip, evaluate_drift, plot_reports, program
from cimsim.models import mlp
from cimsim.nn import convert
from cimsim.profiles import load_profile


def train(model: torch.nn.Module, data, epochs: int = 12, lr: float = 2e-3) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(data.x_train), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def main() -> None:
    out = Path("runs/example_drift")
    out.mkdir(parents=True, exist_ok=True)
    data = digits(seed=0)
    pcm = load_profile("pcm")

    torch.manual_seed(0)
    model = convert(mlp(64, (256, 256), 10), pcm, mode="hardware", seed=0)
    train(model, data)

    times = "1s,1h,1d,1mo,1y,10y"
    reports = []
    for comp in ("none", "global"):
        rep = evaluate_drift(model, data, times_s=times, repeats=10, compensation=comp, seed=0,
                             out=out / f"drift_{comp}.json", label=f"compensation: {comp}")
        rep.to_csv(out / f"drift_{comp}.csv")
        print(rep.to_markdown())
        reports.append(rep)
    plot_reports(reports, out / "drift.png", labels=["no compensation", "global compensation"])

    # one chip, kept: program once, save, reload, read it at any time
    chip = program(model, seed=reports[1].chip_seeds[0])
    chip.save(out / "chip")
    same = Chip.load(out / "chip", model=model)
    x = data.x_test
    acc = (same.forward(x, t_s=365.25 * 86400, compensation="global").argmax(1) == data.y_test).float().mean()
    print(f"chip {chip.seed} after 1 year, global compensation: {100 * acc:.2f} % "
          f"(the study's repeat 0 at 1y: {100 * reports[1].scores[0, 4]:.2f} %)")
    print(f"wrote {out}/drift_none.*, drift_global.*, drift.png and chip/")


if __name__ == "__main__":
    main()
