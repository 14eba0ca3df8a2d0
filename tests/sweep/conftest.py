"""Shared fixtures of the sweep tests: a small float-trained digits MLP (64-16-10), 100 test samples,
and a real Dask cluster on this machine (2 worker processes, localhost only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cimsim.data import digits
from cimsim.models import mlp


@pytest.fixture(scope="session")
def digits_ds():
    return digits(seed=0)


@pytest.fixture(scope="session")
def net(digits_ds):
    """A float digits MLP 64-16-10, trained full-batch (deterministic, a second)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = mlp(64, (16,), 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = F.cross_entropy(model(digits_ds.x_train), digits_ds.y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def data(digits_ds):
    return digits_ds.x_test[:100], digits_ds.y_test[:100]


@pytest.fixture(scope="module")
def dask_client(local_cluster):
    """A LocalCluster of 2 worker processes (nannies restart a killed one), no dashboard, localhost only."""
    import distributed

    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        yield client
