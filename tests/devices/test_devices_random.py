"""Random draws: seed-determined, standard normal to within sample-size tolerances."""

import math

import numpy as np

from cimsim.devices import normals, uniforms


def test_normals_moments_and_seed():
    n = 400_000
    z = normals(np.random.default_rng(0), n).astype(np.float64)
    assert z.dtype == np.float64 and z.shape == (n,)
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(np.mean(np.abs(z) < 1.959964) - 0.95) < 5 * math.sqrt(0.95 * 0.05 / n)
    np.testing.assert_array_equal(normals(np.random.default_rng(3), (4, 5)), normals(np.random.default_rng(3), (4, 5)))
    assert normals(np.random.default_rng(3), 0).shape == (0,)
    u = uniforms(np.random.default_rng(1), 1000)
    assert u.min() >= 0 and u.max() < 1
