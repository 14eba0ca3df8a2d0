"""The piece pool: ordered results, pieces of pieces run inline (no deadlock), scratch reuse."""

import ctypes
import numpy as np
import pytest

from cimsim._threads import SCRATCH_MAX_BYTES, map_pieces, scratch


def test_map_pieces_ordered_and_nested():
    assert map_pieces(lambda i: i * i, range(50)) == [i * i for i in range(50)]
    # every outer piece maps inner pieces: with 2 workers both busy this would deadlock if an
    # inner map waited on the pool
    assert map_pieces(lambda i: sum(map_pieces(lambda j: i + j, range(5))), range(8)) == [5 * i + 10 for i in range(8)]


def test_scratch_reuses_per_name_and_skips_large():
    a = scratch("t", (10, 10), np.float32)
    b = scratch("t", (5,), np.float64)
    assert a.shape == (10, 10) and b.shape == (5,) and b.dtype == np.float64
    assert np.shares_memory(a, b)  # same buffer, re-viewed
    c = scratch("u", (4,), np.float32)
    assert not np.shares_memory(a, c)
    big = SCRATCH_MAX_BYTES // 4 + 1
    d1 = scratch("big", big, np.float32)
    d2 = scratch("big", big, np.float32)
    assert not np.shares_memory(d1, d2)  # over the cap: never kept


def test_release_free_heap_returns_freed_pages_and_is_safe_to_repeat():
    """glibc: the freed pages of a fragmented heap leave the resident set; elsewhere a no-op."""
    import cimsim._threads as T

    T.release_free_heap()
    T.release_free_heap()
    assert len(T._LIBC) == 1  # resolved once
    if T._libc_fn("malloc_trim", [ctypes.c_size_t], ctypes.c_int) is None:
        return  # not glibc: nothing to trim, and nothing may fail
    import re

    def rss_kib():
        with open("/proc/self/status") as fh:
            return int(re.search(r"VmRSS:\s+(\d+)", fh.read()).group(1))

    # 64 MiB in 64 KiB blocks (below the mmap threshold: heap), every other one freed and a live
    # block above them all, so glibc keeps the freed half resident until it is trimmed
    blocks = [np.ones(8192) for _ in range(1024)]
    top = np.ones(8192)
    del blocks[::2]
    before = rss_kib()
    T.release_free_heap()
    assert rss_kib() < before - 16 * 1024, (before, rss_kib())
    del blocks, top


@pytest.mark.slow
def test_cimsim_follows_torch_thread_count_and_gives_it_back():
    """Numba's OpenMP launch used to turn torch.set_num_threads(1) into 2 (issue 14 item 10): in
    a fresh process, a large forward on one thread and one on two Numba threads both leave torch's
    setting alone, and give the same bits."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent(
        """
        import torch
        import cimsim
        torch.set_num_threads(1)
        assert cimsim.get_num_threads() == 1
        torch.manual_seed(0)
        model = cimsim.convert(torch.nn.Linear(512, 512), "pcm", seed=0).eval()
        x = torch.randn(256, 512)
        with torch.no_grad():
            y1 = model(x)                      # one thread: the serial kernels
        assert torch.get_num_threads() == 1, torch.get_num_threads()
        cimsim.set_num_threads(2)              # cimsim's own count: Numba's threads start
        cimsim.reprogram(model)
        with torch.no_grad():
            y2 = model.hardware_forward(x, model.last_seed)
        assert torch.get_num_threads() == 1, torch.get_num_threads()
        assert torch.equal(y1, y2)
        cimsim.set_num_threads(None)
        assert cimsim.get_num_threads() == 1   # following torch again
        torch.set_num_threads(2)
        assert cimsim.get_num_threads() == 2
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_set_num_threads_checks_its_argument_and_sizes_the_pool():
    import cimsim._threads as T
    from cimsim.errors import ParameterError

    with pytest.raises(ParameterError, match="positive int"):
        T.set_num_threads(0)
    try:
        T.set_num_threads(3)
        assert T.get_num_threads() == 3 and T.n_workers() == 3
        assert map_pieces(lambda i: i + 1, range(7)) == list(range(1, 8))
        assert T._POOL_SIZE == 3
        T.set_num_threads(1)
        assert map_pieces(lambda i: T.in_pool(), range(4)) == [False] * 4  # one thread: inline
    finally:
        T.set_num_threads(None)
