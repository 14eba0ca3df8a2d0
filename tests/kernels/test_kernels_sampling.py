"""Random draws: keyed by two words of the seeded Generator, a pure function of (key, index),
exactly standard normal and independent across streams to within sample-size tolerances."""

import math

import numpy as np
import pytest

import cimsim
from cimsim.kernels import NUMBA
from cimsim.kernels.sampling import ZIGGURAT_R, normals, uniforms

DTYPES = [np.float32, np.float64]


def _phi(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x) / math.sqrt(2.0)))


def _corr(a, b):
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("dtype", DTYPES)
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


def test_normals_take_two_words_of_the_generator():
    """Each call advances the Generator by exactly two raw words, whatever its size."""
    for n in (0, 1, 5, 300_000):
        g, ref = np.random.default_rng(2), np.random.default_rng(2)
        normals(g, n)
        ref.bit_generator.random_raw(2)
        assert g.bit_generator.state == ref.bit_generator.state


def test_normals_seeded_and_thread_independent():
    a = normals(np.random.default_rng(3), (700, 1000))
    b = normals(np.random.default_rng(3), (700, 1000))
    np.testing.assert_array_equal(a, b)
    old = cimsim.get_num_threads()
    try:
        for t in (1, 2):
            cimsim.set_num_threads(t)
            np.testing.assert_array_equal(a, normals(np.random.default_rng(3), (700, 1000)))
            for dtype in DTYPES:  # the parallel build itself, on t threads, and its serial copy
                w = np.random.default_rng(3).bit_generator.random_raw(2)
                p, s = np.empty(300_001, dtype), np.empty(300_001, dtype)
                NUMBA.zig_normals.parallel(w, dtype == np.float32, p)
                NUMBA.zig_normals.serial(w, dtype == np.float32, s)
                np.testing.assert_array_equal(p, s)
    finally:
        cimsim.set_num_threads(old)
    assert normals(np.random.default_rng(3), 0).shape == (0,)
    assert not np.array_equal(a, normals(np.random.default_rng(4), (700, 1000)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_normals_prefix(dtype):
    """Normal i depends on (the two words, i) alone: a shorter draw with the same words is the
    start of a longer one (across counter groups and parallel blocks), whatever the shape."""
    big = normals(np.random.default_rng(6), 100_000, dtype)
    for m in (1, 3, 63, 64, 65, 255, 256, 257, 8191, 8192, 8193, 20_000, 99_999):
        np.testing.assert_array_equal(normals(np.random.default_rng(6), m, dtype), big[:m])
    np.testing.assert_array_equal(normals(np.random.default_rng(6), (400, 250), dtype).ravel(), big)


@pytest.mark.parametrize("dtype", DTYPES)
def test_streams_are_independent(dtype):
    """Correlations of z and of |z| at equal indices below 5/sqrt(n): two calls on one Generator
    (consecutive keys), two blocks of one call, and the lanes of one Philox output."""
    n = 1 << 20
    g = np.random.default_rng(11)
    z1 = normals(g, n, dtype)
    z2 = normals(g, n, dtype)
    half = n // 2
    lanes = 4 if dtype == np.float32 else 2  # unit i and i + 64 share a Philox counter (same group)
    grp = normals(np.random.default_rng(12), n, dtype).reshape(-1, lanes, 64)
    pairs = [(z1, z2), (z1[:half], z1[half:])] + [(grp[:, 0].ravel(), grp[:, k].ravel()) for k in range(1, lanes)]
    for a, b in pairs:
        tol = 5 / math.sqrt(a.size)
        assert abs(_corr(a, b)) < tol
        assert abs(_corr(np.abs(a), np.abs(b))) < tol


@pytest.mark.parametrize("dtype", DTYPES)
def test_adjacent_pairs_fill_the_quadrants_evenly(dtype):
    """(z[2t], z[2t+1]) fall in the four sign quadrants with probability 1/4 each (chi-square, 3 dof)."""
    n = 1 << 20
    z = normals(np.random.default_rng(13), n, dtype).reshape(-1, 2)
    q = np.bincount((z[:, 0] > 0) * 2 + (z[:, 1] > 0), minlength=4)
    e = z.shape[0] / 4
    chi2 = float(((q - e) ** 2 / e).sum())
    assert chi2 < 3 + 5 * math.sqrt(2 * 3)


def test_uniforms():
    u = uniforms(np.random.default_rng(1), 1000)
    assert u.min() >= 0 and u.max() < 1


def test_normals_into_out_and_bad_out():
    from cimsim.errors import ParameterError

    buf = np.empty((3, 4), np.float32)
    z = normals(np.random.default_rng(1), (3, 4), out=buf)
    assert z is buf
    np.testing.assert_array_equal(buf, normals(np.random.default_rng(1), (3, 4)))
    with pytest.raises(ParameterError, match="C-contiguous float32 array of shape"):
        normals(np.random.default_rng(1), (3, 4), out=np.empty((4, 3), np.float32))
