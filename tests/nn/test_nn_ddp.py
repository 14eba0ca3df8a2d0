"""DistributedDataParallel over gloo (2 CPU processes, a file store: no network port)."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cimsim.nn import convert


def _worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same float weights on both ranks, as DDP requires
        model = convert(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), "pcm", seed=1)
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        for _ in range(3):
            x = torch.randn(4, 8, generator=g)
            loss = ddp(x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.save({"state": model.state_dict(), "seed": model[0].last_seed}, f"{out}.{rank}")
    except BaseException:
        dist.destroy_process_group()
        raise
    # Leave without tearing the process group down: torch's gloo ProcessGroup destructor joins
    # its worker thread while holding the GIL, and that thread may still be freeing a finished
    # AsyncWork, which needs the GIL (seen here once as a hang of this test, torch 2.13;
    # pytorch/pytorch#56297).  The results are on disk; exit status 0 is all that
    # mp.spawn checks.
    os._exit(0)


def test_ddp_trains_a_converted_model_in_step_across_ranks(tmp_path):
    """Gradients are all-reduced as for float layers: after three hardware-mode steps on
    different data both ranks hold the same weights; their chips use the same seeds."""
    out = str(tmp_path / "rank")
    ctx = mp.spawn(_worker, args=(2, str(tmp_path / "store"), out), nprocs=2, join=False)
    deadline = time.monotonic() + 180  # a hung rank fails the test instead of stalling the suite
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DistributedDataParallel workers did not finish within 180 s")
    a, b = (torch.load(f"{out}.{r}") for r in range(2))
    assert a["seed"] == b["seed"]
    for key in a["state"]:
        assert torch.equal(a["state"][key], b["state"][key]), key
    torch.manual_seed(0)
    start = convert(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), "pcm", seed=1)
    assert not torch.equal(a["state"]["0.weight"], start.state_dict()["0.weight"])  # it did train
