"""Transformers and recurrent layers on the chip: a tiny attention + GRU classifier of the digits.

Each 8x8 digit is read as a sequence of 8 rows. The model (an embedding Linear, one
TransformerEncoderLayer, a GRU and a Linear head) is trained in float, converted with
``cimsim.convert`` (every Linear, the attention's four projections and the GRU's two matrices
go on crossbars; the attention scores, softmax and the GRU's gates stay digital) and read
from 1 s to 1 year after programming on the `pcm` chip, over independently programmed chips.

Run: ``python examples/sequence_models.py`` (about 20 s on 2 cores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cimsim import convert, evaluate_drift, load_profile
from cimsim.data import digits
from cimsim.nn import analog_layers


class RowReader(nn.Module):
    """Digits as 8 rows of 8 pixels: embed, self-attend, run a GRU, classify its last state."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.embed = nn.Linear(8, width)
        # nested tensors (the encoder's padding fast path) cannot go through the chip
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(width, 4, 2 * width, batch_first=True, dropout=0.0), 1,
            enable_nested_tensor=False)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.encoder(self.embed(x.reshape(-1, 8, 8)))
        t, _ = self.gru(t)
        return self.head(t[:, -1])


def main() -> None:
    data = digits(seed=0)
    torch.manual_seed(0)
    net = RowReader()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        perm = torch.randperm(len(data.x_train), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    analog = convert(net, load_profile("pcm"), seed=0)
    print("on crossbars:", ", ".join(f"{name} ({type(m).__name__})" for name, m in analog_layers(analog)), "\n")
    report = evaluate_drift(analog, data, times_s="1s,1h,1d,1y", repeats=5, compensation="global", seed=0)
    print(report.to_markdown())


if __name__ == "__main__":
    main()
