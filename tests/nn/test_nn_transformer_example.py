"""examples/transformer_drift.py, quick settings: a GPT-2 built from a config converts (every
Conv1D and the lm_head analog, embeddings reported digital) and its drift study on token ids runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transformer_drift.py"


@pytest.mark.slow
def test_transformer_example_quick(capsys):
    import transformers  # noqa: F401 - in the dev extra; a missing one is a failure, not a skip
    spec = importlib.util.spec_from_file_location("transformer_drift", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    reports = mod.main(["--quick"])
    text = capsys.readouterr().out
    assert "ConversionReport (9 analog, 2 digital)" in text and "transformer.wte: Embedding" in text
    none, glob = reports["none"], reports["global"]
    assert none.digital_score > 0.95  # the float model learned the toy task
    assert none.mean[0] > 0.95  # right after programming the chip reads it nearly as well
    # drift without compensation shrinks the outputs; global compensation keeps the accuracy
    assert glob.mean[-1] > none.mean[-1] + 0.2 and glob.mean[-1] > 0.9
