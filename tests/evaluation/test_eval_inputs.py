"""Models beyond float features in drift studies (evaluation/metrics.py): token ids, dict inputs,
tuple / ModelOutput-like outputs with output_key, custom metrics, DataLoaders read batch by batch."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from cimsim.errors import DataError, ParameterError
from cimsim.evaluation import digital_copy, evaluate_drift
from cimsim.nn import convert

VOCAB, SEQ, DIM, CLASSES = 24, 6, 16, 4


class TokenClassifier(nn.Module):
    """Token ids [n, SEQ] -> embedding, mean over the sequence -> class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))


class Output(OrderedDict):
    """What a HuggingFace ModelOutput is: a dict whose fields are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class DictTagger(nn.Module):
    """model(input_ids=..., attention_mask=...) -> Output(logits [n, SEQ, CLASSES], pooled [n, CLASSES])."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Output:
        logits = self.head(self.embed(input_ids)) * attention_mask[..., None]
        return Output(loss=None, logits=logits, pooled=logits.sum(dim=1))


class TupleModel(TokenClassifier):
    def forward(self, ids: torch.Tensor):  # type: ignore[override]
        logits = super().forward(ids)
        return logits, logits.softmax(dim=-1)


def _converted(cls: type[nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = cls()
    return convert(net, "pcm", seed=0)


def _ids(n: int = 64) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(1))


def test_token_id_model(tmp_path):
    """Integer token ids reach the model unchanged (an nn.Embedding needs them)."""
    net = _converted(TokenClassifier)
    ids = _ids()
    with torch.no_grad():
        y = digital_copy(net)(ids).argmax(dim=1)  # targets the float model gets right
    rep = evaluate_drift(net, (ids, y), times_s=[1.0, 86400.0], repeats=2, seed=0, workers=1, out=tmp_path / "s.json")
    assert rep.digital_score == 1.0
    assert rep.scores.shape == (2, 2) and 0.5 < rep.scores.min() <= rep.scores.max() <= 1.0
    assert rep.meta["analog_layers"] == ["head"] and rep.meta["n_samples"] == 64
    # a resumed study reads the same integer data back to the same fingerprint
    assert evaluate_drift(net, (ids, y), times_s=[1.0, 86400.0], repeats=2, seed=0, workers=1,
                          out=tmp_path / "s.json").meta["points_computed"] == 0
    # cross-entropy on the same chips: finite, and the float model does better than a chip 1 y on
    ce = evaluate_drift(net, (ids, y), times_s=[3.15576e7], repeats=2, seed=0, workers=1, metric="cross_entropy", compensation="none")
    assert 0 < ce.digital_score < ce.scores.min()


def test_dict_inputs_model_output_and_output_key():
    net = _converted(DictTagger)
    ids = _ids()
    mask = (torch.arange(SEQ) < 4).long().expand(len(ids), SEQ).contiguous()
    batch = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        out = digital_copy(net)(**batch)
    tags = out.logits.argmax(dim=-1).masked_fill(mask == 0, -100)  # padded positions are ignored
    kw = dict(times_s=[1.0], repeats=2, seed=0, workers=1)
    rep = evaluate_drift(net, (batch, tags), **kw)  # default: the 'logits' field, classes on the last dim
    assert rep.digital_score == 1.0 and rep.scores.min() > 0.5
    pooled = evaluate_drift(net, (batch, out.pooled.argmax(dim=1)), output_key="pooled", **kw)
    assert pooled.digital_score == 1.0
    with pytest.raises(ParameterError, match=r"output_key='hidden' is not found in the Output.*fields: \['loss', 'logits', 'pooled'\]"):
        evaluate_drift(net, (batch, tags), output_key="hidden", **kw)
    with pytest.raises(DataError, match=r"accuracy needs outputs \[\.\.\., classes\].*\(64, 4\).*\(64, 6\)"):
        evaluate_drift(net, (batch, tags), output_key="pooled", **kw)
    with pytest.raises(DataError, match=r"\{'input_ids': \(6,\)\} \(keyword inputs\) fails in the model's forward.*attention_mask"):
        evaluate_drift(net, ({"input_ids": ids}, tags), **kw)  # attention_mask missing


def test_tuple_output_and_custom_metric():
    net = _converted(TupleModel)
    ids = _ids()
    with torch.no_grad():
        logits, probs = digital_copy(net)(ids)
    y = logits.argmax(dim=1)

    def mean_true_prob(outputs, targets):  # a user's metric: mean probability of the true class
        return float(outputs.gather(1, targets[:, None]).mean())

    kw = dict(times_s=[1.0], repeats=2, seed=0, workers=1)
    first = evaluate_drift(net, (ids, y), **kw)  # default: the first element (logits)
    assert first.digital_score == 1.0
    rep = evaluate_drift(net, (ids, y), metric=mean_true_prob, output_key=1, **kw)
    assert rep.metric.endswith("mean_true_prob")
    assert rep.digital_score == pytest.approx(float(probs.gather(1, y[:, None]).mean()), rel=1e-6)
    assert 0 < rep.scores.min() < 1
    with pytest.raises(ParameterError, match=r"metric must return one number"):
        evaluate_drift(net, (ids, y), metric=lambda o, t: "good", **kw)
    with pytest.raises(ParameterError, match=r"output_key must be a field name"):
        evaluate_drift(net, (ids, y), output_key=1.5, **kw)


def test_dataloader_equals_tensors(model, small_data):
    """A DataLoader (read batch by batch) scores the same bits as the same samples in memory."""
    x, y = small_data
    kw = dict(times_s=[1.0, 86400.0], repeats=2, seed=3, workers=1, batch_size=32)
    tensors = evaluate_drift(model, (x, y), **kw)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    streamed = evaluate_drift(model, loader, **kw)
    assert streamed.scores.tobytes() == tensors.scores.tobytes()
    assert streamed.digital_score == tensors.digital_score and streamed.meta["n_samples"] == len(y)
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    with pytest.raises(DataError, match="shuffle=False"):
        evaluate_drift(model, shuffled, **kw)


class _Dicts(torch.utils.data.Dataset):
    """HuggingFace-style samples: a dict of token ids, mask and 'labels'; counts the reads."""

    reads = 0

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.mask, self.labels = ids, mask, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        _Dicts.reads += 1
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


@pytest.mark.slow
def test_dict_loader_on_workers_equals_in_memory():
    """A loader of dict batches with 'labels' is sent to worker processes: parallel == serial == in memory."""
    net = _converted(DictTagger)
    ids = _ids(48)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        tags = digital_copy(net)(input_ids=ids, attention_mask=mask).logits.argmax(dim=-1)
    loader = torch.utils.data.DataLoader(_Dicts(ids, mask, tags), batch_size=16)
    kw = dict(times_s=[1.0, 3.15576e7], repeats=2, seed=1, batch_size=16, metric="cross_entropy")
    serial = evaluate_drift(net, loader, workers=1, **kw)
    parallel = evaluate_drift(net, loader, workers=2, **kw)
    memory = evaluate_drift(net, ({"input_ids": ids, "attention_mask": mask}, tags), workers=1, **kw)
    assert parallel.meta["workers"] == 2
    assert parallel.scores.tobytes() == serial.scores.tobytes() == memory.scores.tobytes()


class _PeekingTagger(DictTagger):
    """Notes how many samples the data set had served when each forward call came."""

    seen: list[int] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Output:  # type: ignore[override]
        _PeekingTagger.seen.append(_Dicts.reads)
        return super().forward(input_ids, attention_mask)


def test_a_loader_is_read_batch_by_batch():
    """The model sees the first batch before the loader has read the second: the set is never loaded whole."""
    net = _converted(_PeekingTagger)
    ids = _ids(48)
    data = _Dicts(ids, torch.ones_like(ids), torch.zeros(48, SEQ, dtype=torch.long))
    _Dicts.reads, _PeekingTagger.seen[:] = 0, []
    evaluate_drift(net, torch.utils.data.DataLoader(data, batch_size=16), times_s=[1.0], repeats=1, seed=0, workers=1)
    assert _PeekingTagger.seen[0] == 16  # the first forward came after one batch of 48 samples
    assert _PeekingTagger.seen[:4] == [16, 32, 48, 64]  # the fit check (batch 1), then the digital reference reads anew, batch by batch
