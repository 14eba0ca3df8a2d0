"""Fit a device profile to measurements: simulated PCM data, then a real RRAM sample.

1. SIMULATED measurements (not a lab's data): 12 target levels x 150 devices drawn from the
   shipped `pcm` profile with `simulate_measurements`, read 3 times at 9 times from 1 s to
   11.6 days.  The fit recovers the generating laws; the script prints fitted against true
   values at a few x and writes the profile, the report and the figure.
2. MEASURED data: `examples/data/rram_relaxation_levy2021_techC.csv`, a 640-device sample of
   the RRAM relaxation measurements of Levy et al. (MIT licence; source in
   examples/data/README.md), one read per device at 10 ms, 100 ms, 1 s and 1e5 s.

Run: ``python examples/fit_profile.py [OUT_DIR]`` (a few seconds; writes to ./fit_out by default).
The same from the shell: ``cimsim profile fit DATA.csv --base pcm --name my_device --out my_device.yaml
--report fit.md --plot fit.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cimsim import fit_profile, load_profile, simulate_measurements

HERE = Path(__file__).resolve().parent


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pcm = load_profile("pcm")
    levels = np.r_[0.02, 0.05, np.linspace(0.1, 1.0, 10)] * 25.0
    times = [1, 3, 10, 30, 100, 1e3, 1e4, 1e5, 1e6]
    table = simulate_measurements(pcm, levels, times, devices_per_target=150, reads=3, seed=0)
    data = table.save(out / "simulated_pcm.csv")
    print(f"SIMULATED measurements (from the pcm profile, not a lab): {data} ({len(table)} reads)")
    res = fit_profile(data, base="pcm", name="pcm_refit", g_range_us=(0.0, 25.0), n_levels=None)
    (out / "pcm_refit.yaml").write_text(res.to_yaml(), encoding="utf-8")
    (out / "pcm_refit.md").write_text(res.report, encoding="utf-8")
    res.plot(out / "pcm_refit.png")
    fit = res.profile
    x = np.array([0.05, 0.1, 0.3, 1.0])
    rows = [
        ("sigma_prog (uS)", pcm.programming.noise.sigma.evaluate(x), res.laws["programming.noise"].evaluate(x)),
        ("mu_nu", pcm.drift.nu.mean.evaluate(x), fit.drift.nu.mean.evaluate(x)),
        ("sigma_nu", pcm.drift.nu.std.evaluate(x), fit.drift.nu.std.evaluate(x)),
        ("Q_s", pcm.read_noise.q_s.evaluate(x), fit.read_noise.q_s.evaluate(x)),
    ]
    print(f"t0: true {pcm.drift.t0_s:g} s, fitted {fit.drift.t0_s:.3g} s")
    print(f"{'law':<16}" + "".join(f"  x={v:<4g} true / fit " for v in x))
    for name, true, got in rows:
        print(f"{name:<16}" + "".join(f"  {a:8.4f} / {b:<8.4f}" for a, b in zip(true, got)))
    print(f"wrote {out / 'pcm_refit.yaml'}, {out / 'pcm_refit.md'}, {out / 'pcm_refit.png'}")

    real = HERE / "data" / "rram_relaxation_levy2021_techC.csv"
    res = fit_profile(real, base="reram_cmo", name="rram_levy2021_techC")
    (out / "rram_levy2021_techC.yaml").write_text(res.to_yaml(), encoding="utf-8")
    (out / "rram_levy2021_techC.md").write_text(res.report, encoding="utf-8")
    res.plot(out / "rram_levy2021_techC.png")
    d = res.profile.drift
    print(f"\nMEASURED RRAM sample ({real.name}): drift model {d.kind} (BIC: "
          + ", ".join(f"{k} {v[1]:.0f}" for k, v in res.laws["drift.choice"].items()) + ")")
    if d.kind == "relaxation":
        print(f"  mean change {d.mean_slope_us:+.3f} ln(t) {d.mean_at_1s_us:+.3f} uS, "
              f"spread {d.sigma_slope_us:.3f} ln(t) + {d.sigma_at_1s_us:.3f} uS")
    print(f"wrote {out / 'rram_levy2021_techC.yaml'}, .md, .png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("fit_out"))
