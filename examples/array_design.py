"""What if the array were organised differently? One float-trained network, many chips.

Trains the digits MLP 64-256-256-10 in float once, then deploys it on chips that differ in one
design knob each (profile overrides: cell levels, bit-sliced weights, ADC resolution, bit-serial
inputs, bit-line IR drop) and on the other shipped device families, and prints
the test accuracy one hour after programming (mean and spread over independently programmed
chips, global drift compensation). Every line is a `load_profile(name, overrides=...)` away.

Run: ``python examples/array_design.py`` (about half a minute on 2 cores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cimsim.data import digits
from cimsim.evaluation import evaluate_drift
from cimsim.models import mlp
from cimsim.nn import convert
from cimsim.profiles import load_profile

CHIPS = 5  # independently programmed chips per design
# I = I0 sinh(V / V0) ~ G (V + V^3 / (6 V0^2)): a3 = 1 / (6 V0^2) per V^2 (a2 = 0), V0 = 0.1 V
SINH_IV = {"kind": "polynomial", "v_read_v": 0.2, "a2_per_v": {"kind": "constant", "value": 0.0},
           "a3_per_v2": {"kind": "constant", "value": 1 / (6 * 0.1**2)}}
DESIGNS: list[tuple[str, str, dict]] = [
    ("pcm (continuous levels, 256-row tiles, 8-bit DAC/ADC)", "pcm", {}),
    ("  2-level (binary) cells", "pcm", {"conductance.n_levels": 2}),
    ("  binary cells, 4 weight slices", "pcm", {"conductance.n_levels": 2, "mapping.weight_slices": 4}),
    ("  4-level cells, 3 weight slices", "pcm", {"conductance.n_levels": 4, "mapping.weight_slices": 3}),
    ("  4-bit ADC", "pcm", {"adc.bits": 4}),
    ("  4-bit ADC, bit-serial inputs", "pcm", {"adc.bits": 4, "dac.bit_serial": True}),
    ("  bit-line IR drop 0.35 Ohm per cell", "pcm", {"tile.bit_line_r_ohm": 0.35}),
    ("  bit-line IR drop 5 Ohm per cell", "pcm", {"tile.bit_line_r_ohm": 5.0}),
    ("  sinh-like I-V (V0 = 0.1 V) read at 0.2 V", "pcm", {"iv": SINH_IV}),
    ("  sinh-like I-V, bit-serial inputs (ADC bound 24)", "pcm",
     {"iv": SINH_IV, "dac.bit_serial": True, "adc.range": {"kind": "fixed", "bound": 24.0}}),
    ("pcm_hermes (IBM HERMES 14 nm)", "pcm_hermes", {}),
    ("rram_neurram (NeuRRAM, 1 s)", "rram_neurram", {}),
    ("reram_cmo (CMO/HfOx ReRAM, with relaxation)", "reram_cmo", {}),
    ("rram_milo (multilevel RRAM, 50-225 uS)", "rram_milo", {}),
    ("sonos (40 nm charge trap)", "sonos", {}),
    ("sram_cim (ASiM charge-domain SRAM)", "sram_cim", {}),
]


def train_float(data, epochs: int = 30) -> torch.nn.Module:
    torch.manual_seed(0)
    net = mlp(64, (256, 256), 10)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(data.x_train), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def main() -> None:
    data = digits(seed=0)
    net = train_float(data)
    with torch.no_grad():
        float_acc = (net(data.x_test).argmax(1) == data.y_test).float().mean().item()
    print(f"digits MLP 64-256-256-10, float-trained: {100 * float_acc:.2f} % in float\n")
    print(f"{'design':58s} {'accuracy at 1 h':>16s}")
    print("-" * 75)
    for label, name, overrides in DESIGNS:
        analog = convert(net, load_profile(name, overrides=overrides), seed=0)
        rep = evaluate_drift(analog, data, times_s=[3600.0], repeats=CHIPS, compensation="global", workers=1,
                             progress=False)
        print(f"{label:58s} {100 * rep.mean[0]:8.2f} +- {100 * rep.std[0]:4.2f} %")


if __name__ == "__main__":
    main()
