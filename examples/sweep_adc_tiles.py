"""A design sweep: ADC bits {4, 6, 8} x tile size {128, 256} x drift compensation, for the
hardware-trained digits MLP 64-256-256-10 on the ``pcm`` profile.

    .venv/bin/python examples/sweep_adc_tiles.py [--out runs/sweep_adc_tiles] [--epochs 8] [--repeats 8]
                                                 [--workers N | --scheduler tcp://HOST:8786]

The model is trained once against the chip (``mode: hardware``, extended STE) by
:func:`cimsim.runs.train_run` into ``OUT/cache/runs/``; a second run of this script finds it, and
finds every point already computed in ``OUT/cache`` (change ``--repeats`` or the times and only
the new points are computed). Each configuration deploys the trained float weights on ``pcm``
with its overrides and reads ``--repeats`` chips (the same chip seeds in every configuration) at
1 s, 1 h, 1 d, 1 month and 1 year. The 256-input hidden layer fills one 256-row tile, or two
128-row tiles whose partial sums are digitised separately (each with the ADC's fixed full scale
of 12 normalised column units) and added digitally.

Writes OUT/results.csv (+ .parquet), summary.md, score_vs_time.png, score_vs_adc_bits.png, and
prints the table at 1 month (docs/sweeps.md shows it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cimsim  # noqa: E402

SPEC = {
    "name": "adc_tiles",
    "models": {"hardware": {"train": {"mode": "hardware", "epochs": 8, "hidden": [256, 256], "profile": "pcm", "seed": 0}}},
    "profile": "pcm",
    "data": {"name": "digits"},  # the whole test split (450 images)
    "axes": {
        "adc.bits": [4, 6, 8],
        "tile": {128: {"tile.rows": 128, "tile.cols": 128}, 256: {"tile.rows": 256, "tile.cols": 256}},
        "compensation": ["none", "global"],
    },
    "times_s": "1s,1h,1d,30d,1y",
    "repeats": 8,
    "seed": 0,
    "plot": {"axis": "adc.bits", "t_s": "30d"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/sweep_adc_tiles")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--docs", action="store_true", help="copy the plots to docs/img/")
    args = ap.parse_args()
    spec = dict(SPEC, repeats=args.repeats)
    spec["models"]["hardware"]["train"]["epochs"] = args.epochs
    res = cimsim.sweep(spec, out=args.out, workers=args.workers, scheduler=args.scheduler, progress=True)
    m = res.meta
    print(f"{m['points_total']} points: {m['points_computed']} computed, {m['points_cached']} from the cache, "
          f"{m['wall_s']:.1f} s ({m['executor']})")
    print(f"digital (float weights) accuracy: {100 * res.reports[0].digital_score:.2f} %\n")
    print(res.to_markdown("30d"))
    if args.docs:
        img = Path(__file__).resolve().parents[1] / "docs" / "img"
        for name in ("score_vs_time.png", "score_vs_adc_bits.png"):
            shutil.copyfile(Path(args.out) / name, img / f"sweep_adc_tiles_{name}")


if __name__ == "__main__":
    main()
