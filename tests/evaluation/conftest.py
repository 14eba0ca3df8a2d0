"""Shared fixtures of the evaluation tests: a float-trained digits MLP deployed on pcm, and data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cimsim.data import digits
from cimsim.models import mlp
from cimsim.nn import convert
from cimsim.profiles import load_profile


def _train_float(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150, lr: float = 1e-2) -> torch.nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):  # full batch: deterministic and quick
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


@pytest.fixture(scope="module")
def pcm():
    return load_profile("pcm")


@pytest.fixture(scope="module")
def model(data, pcm):
    """A float-trained digits MLP 64-64-10 with biases, deployed on pcm."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = mlp(64, (64,), 10)
    _train_float(net, data.x_train, data.y_train)
    return convert(net, pcm, mode="hardware", seed=0)


@pytest.fixture(scope="module")
def small_data(data):
    return data.x_test[:120], data.y_test[:120]
