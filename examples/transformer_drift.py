"""A small transformer on a PCM chip: GPT-2 from a config, converted, studied from 1 s to 10 years.

Nothing is downloaded: a two-layer GPT-2 is built from ``transformers.GPT2Config`` and trained
(in float, a few seconds) on a toy task that ships with the example: arithmetic sequences modulo
``VOCAB`` (``a, a+d, a+2d, ...``), where every token after the second follows from the two before
it.  ``cimsim.convert`` turns HuggingFace's ``Conv1D`` projections (attention and MLP) and the
``lm_head`` into analog layers and reports what stayed digital (the embeddings).  The drift study
feeds token ids (integer tensors, unchanged), scores the ``logits`` field of the model's output
against next-token targets (``-100`` marks the first two positions, which cannot be predicted),
and prints next-token accuracy vs time since programming on 10 chips, without and with global
drift compensation.

Run: ``python examples/transformer_drift.py`` (needs ``pip install transformers``; about a minute on
2 cores).  ``--quick`` runs a smaller study (the test suite uses it).
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

from cimsim.evaluation import evaluate_drift
from cimsim.nn import convert

VOCAB = 17  # a prime: every step d != 0 walks through all tokens
SEQ = 12


def sequences(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` arithmetic sequences mod VOCAB and their next-token targets (-100: not predictable)."""
    a = torch.randint(0, VOCAB, (n, 1), generator=g)
    d = torch.randint(1, VOCAB, (n, 1), generator=g)
    x = (a + d * torch.arange(SEQ + 1)) % VOCAB
    ids, targets = x[:, :-1], x[:, 1:].clone()
    targets[:, :1] = -100  # after one token the step is unknown
    return ids, targets


def build_gpt2() -> torch.nn.Module:
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as exc:  # an optional dependency: say what to install
        raise SystemExit("this example needs HuggingFace transformers: pip install transformers") from exc
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=64, n_layer=2, n_head=4,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg)


def train(model: torch.nn.Module, steps: int, g: torch.Generator) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        ids, targets = sequences(64, g)
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller study (fewer chips, times and sequences)")
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    net = build_gpt2()
    train(net, 150 if args.quick else 400, g)
    ids, targets = sequences(64 if args.quick else 256, g)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below says what stayed digital
        model = convert(net, "pcm", seed=0)
    report = model.conversion_report
    print(report)

    times = ["1s", "1d", "10y"] if args.quick else ["1s", "1h", "1d", "1y", "10y"]
    repeats = 3 if args.quick else 10
    reports = {}
    for comp in ("none", "global"):
        rep = evaluate_drift(model, (ids, targets), times_s=times, repeats=repeats, compensation=comp,
                             seed=0, workers=1, label=f"GPT-2 (2 layers) next-token accuracy, {comp} compensation")
        print(rep.to_markdown())
        print()
        reports[comp] = rep
    return reports


if __name__ == "__main__":
    main()
