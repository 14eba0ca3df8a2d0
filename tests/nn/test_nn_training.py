"""End to end: networks trained in hardware mode on the embedded digits data (kept fast)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cimsim.data import digits
from cimsim.models import lenet, mlp
from cimsim.nn import analog_layers, convert


def _train(model, x, y, *, epochs, lr, batch=64, seed=0):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return losses


@torch.no_grad()
def _hw_accuracy(model, x, y, chips=3):
    """Test accuracy through the hardware model: each pass programs fresh chips (mean over ``chips``)."""
    model.eval()
    assert all(layer.active_mode() == "hardware" for _, layer in analog_layers(model))
    accs = [(model(x).argmax(1) == y).float().mean().item() for _ in range(chips)]
    return sum(accs) / len(accs)


@pytest.mark.slow
def test_digits_mlp_trained_in_hardware_mode_on_pcm_reaches_95_percent(pcm):
    torch.manual_seed(0)
    data = digits(seed=0)
    model = convert(mlp(64, (256, 256), 10), pcm, mode="hardware", seed=0)
    losses = _train(model, data.x_train, data.y_train, epochs=7, lr=3e-3)
    assert losses[-1] < losses[0] / 5
    acc = _hw_accuracy(model, data.x_test, data.y_test)
    assert acc >= 0.95, f"hardware-model test accuracy {acc:.3f} < 0.95 (losses {losses})"


@pytest.mark.slow
def test_small_cnn_trains_in_hardware_mode(pcm):
    torch.manual_seed(1)
    data = digits(seed=1, image=True)
    model = convert(lenet(1, 10, input_size=8), pcm, mode="hardware", seed=1)
    assert sum(type(m).__name__ == "AnalogConv2d" for _, m in analog_layers(model)) == 2
    losses = _train(model, data.x_train, data.y_train, epochs=6, lr=5e-3)
    assert losses[-1] < losses[0] / 3
    acc = _hw_accuracy(model, data.x_test, data.y_test)
    assert acc >= 0.85, f"hardware-model test accuracy {acc:.3f} < 0.85 (losses {losses})"
