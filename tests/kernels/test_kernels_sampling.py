"""Random draws: seed-determined, exactly standard normal to within sample-size tolerances."""

import math

import numba
import numpy as np
import pytest

from cimsim.kernels.sampling import normals, uniforms
from cimsim.kernels.sampling import ZIGGURAT_R, raw_words


def _phi(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x) / math.sqrt(2.0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normals_distribution(dtype):
    """Moments, binned CDF (chi-square) and the tail mass beyond the ziggurat's r, vs N(0, 1)."""
    n = 2_000_000
    z = normals(np.random.default_rng(0), n, dtype)
    assert z.dtype == dtype and z.shape == (n,)
    z = z.astype(np.float64)
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    edges = np.concatenate([[-np.inf], np.linspace(-4, 4, 81), [np.inf]])
    p = np.diff(_phi(edges))
    counts = np.histogram(z, edges)[0]
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    dof = len(p) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)  # ~5 sigma of the chi-square(dof) law
    p_tail = math.erfc(ZIGGURAT_R / math.sqrt(2))  # both tails beyond r: only the tail path gives these
    k = int((np.abs(z) > ZIGGURAT_R).sum())
    assert abs(k - n * p_tail) < 5 * math.sqrt(n * p_tail)


def test_normals_seeded_and_thread_independent():
    a = normals(np.random.default_rng(3), (700, 1000))
    b = normals(np.random.default_rng(3), (700, 1000))
    np.testing.assert_array_equal(a, b)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c = normals(np.random.default_rng(3), (700, 1000))
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a, c)
    assert normals(np.random.default_rng(3), 0).shape == (0,)
    assert not np.array_equal(a, normals(np.random.default_rng(4), (700, 1000)))


def test_raw_words_is_the_generators_own_stream():
    """The threaded draw equals one random_raw call and leaves the same generator state."""
    for n in (5, 1 << 19, (1 << 19) + 12345):
        g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
        np.testing.assert_array_equal(raw_words(g1, n), g2.bit_generator.random_raw(n))
        assert g1.bit_generator.state == g2.bit_generator.state
        assert g1.random() == g2.random()


def test_uniforms():
    u = uniforms(np.random.default_rng(1), 1000)
    assert u.min() >= 0 and u.max() < 1


def test_failure_list_overflow_gives_the_same_bits(monkeypatch):
    """Blocks whose failure list overflows are scanned instead: same normals, bit for bit."""
    import cimsim.kernels.sampling as R

    for dtype in (np.float32, np.float64):
        a = normals(np.random.default_rng(8), 100_000, dtype)
        with monkeypatch.context() as mp:
            mp.setattr(R, "_CAP", 3)
            b = normals(np.random.default_rng(8), 100_000, dtype)
        np.testing.assert_array_equal(a, b)


def test_normals_into_out_and_bad_out():
    from cimsim.errors import ParameterError

    buf = np.empty((3, 4), np.float32)
    z = normals(np.random.default_rng(1), (3, 4), out=buf)
    assert z is buf
    np.testing.assert_array_equal(buf, normals(np.random.default_rng(1), (3, 4)))
    with pytest.raises(ParameterError, match="C-contiguous float32 array of shape"):
        normals(np.random.default_rng(1), (3, 4), out=np.empty((4, 3), np.float32))
