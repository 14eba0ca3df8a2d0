"""cimsim fixes glibc's malloc thresholds at import, so per-step arrays are not faulted in afresh."""

import ctypes
import os
import subprocess
import sys
import textwrap

from cimsim import _threads

#: frees chunks of ~600 KiB, then, round after round, three of them at once: glibc's adaptive
#: thresholds (mmap 600 KiB, trim 1.2 MiB after the first free) hand the heap's top back on
#: every round, so each round faults its ~1.8 MiB in again
PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "cimsim":
        import cimsim  # noqa: F401
    np.ones(150_000, np.float32)
    for _ in range(5):
        a = [np.ones(150_000, np.float32) for _ in range(3)]
        del a
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        a = [np.ones(150_000, np.float32) for _ in range(3)]
        del a
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 50)
""")


def _faults_per_round(mode: str, env_extra: dict | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in _threads.MALLOC_ENV}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def test_steady_heap_stops_refaulting_per_step_arrays():
    if _threads._libc_fn("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int) is None:  # not glibc: nothing to set
        assert not _threads.steady_heap()
        return
    assert _threads.HEAP_STEADY or any(k in os.environ for k in _threads.MALLOC_ENV)
    plain = _faults_per_round("plain")
    steady = _faults_per_round("cimsim")
    assert plain > 100  # ~440 pages of 4 KiB per round: the probe does show glibc's adaptive behaviour
    assert steady < 5
    # a user's own glibc setting stands: cimsim then leaves the thresholds alone
    assert _faults_per_round("cimsim", {"MALLOC_TRIM_THRESHOLD_": "131072", "MALLOC_MMAP_THRESHOLD_": "131072"}) > 100
