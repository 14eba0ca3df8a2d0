"""A hardware-mode training step keeps no chip alive after it (each forward programs a fresh one)."""

from __future__ import annotations

import gc

import torch
import torch.nn.functional as F

from cimsim.crossbar import DriftedState
from cimsim.nn import convert
from cimsim.profiles.loader import load_profile


def _live_states() -> set[int]:
    """ids of the DriftedStates alive now (``type``, not ``isinstance``: other tests may leave dead
    weak proxies in the heap, whose ``isinstance`` raises ReferenceError)."""
    return {id(o) for o in gc.get_objects() if type(o) is DriftedState}


def test_hardware_training_frees_every_chip_it_reads():
    """After three hardware-mode SGD steps (and a garbage collection) no DriftedState is alive:
    the chips programmed by the forwards, their MVM plans and blocks are freed, so memory does
    not grow with the number of steps."""
    torch.manual_seed(0)
    model = convert(torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5)),
                    load_profile("pcm"), mode="hardware", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 40), torch.randint(0, 5, (16,))
    gc.collect()
    before = _live_states()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    gc.collect()
    assert _live_states() - before == set()


def test_reads_of_a_programmed_chip_free_their_snapshots():
    """tile_mvm on a ProgrammedState drifts a snapshot per call and caches its MVM plan with it:
    once the call returns, the snapshot and its plan go (both kernel sets)."""
    import numpy as np

    from cimsim.crossbar import program_matrix, tile_mvm

    W = np.random.default_rng(0).standard_normal((20, 300)).astype(np.float32)
    state = program_matrix(W, load_profile("pcm", overrides={"read_noise.per_read_sigma_rel": 0.02}), rng=0)
    x = np.ones((3, 300), np.float32)
    gc.collect()
    before = _live_states()
    for backend in ("numba", "reference"):
        for _ in range(3):
            tile_mvm(x, state, t_s=10.0, rng=1, backend_name=backend)
    gc.collect()
    assert _live_states() - before == set()
