"""programming.weight_noise and the pcm_afm preset (issue 19 item 6): IBM's Analog Foundation
Models PCM weight-noise law against its closed form, read from the source's own coefficients."""

import math

import numpy as np
import pytest

from cimsim.crossbar import program_drifted, program_matrix, tile_mvm
from cimsim.errors import ProfileError
from cimsim.profiles.loader import load_profile

Z = 5.0  # tolerance: 5 standard errors

# apply_noise_model.py (github.com/IBM/analog-foundation-models), numpy.polyval order, g in [0, 180]
OD = [2.939751381126213e-05, -0.00371581208142707, 0.22419685954327148, 2.5797410660159494]
TD = [1.2329755395573392e-05, -0.003054993405157235, 0.2453487119885723, 2.110295720240385]


def _sigma_afm(x: float) -> float:
    """The source's sigma at |w| = x max|w|, relative to max|w|: polyval(OD or TD, 180 x) / 180."""
    g = 180.0 * x
    return float(np.polyval(OD if g <= 52.5 else TD, g)) / 180.0


def _rows(xs, n_in=2048, rows_per_x=10, tile=512):
    """W with |w_n| = x in every entry of its block of rows (alternating signs), each row's max
    |w| = 1 set by the first entry of each input tile (excluded from the statistics)."""
    W = np.empty((len(xs) * rows_per_x, n_in))
    for i, x in enumerate(xs):
        sgn = np.where(np.arange(n_in) % 2 == 0, 1.0, -1.0)
        W[i * rows_per_x:(i + 1) * rows_per_x] = x * sgn
    W[:, ::tile] = 1.0
    keep = np.ones(n_in, bool)
    keep[::tile] = False
    return W, keep


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_afm_weight_noise_matches_the_source_law(dtype):
    """Per |w_n| = x: the programmed weight is w_n + sigma(x) z with the source's sigma (both
    fits, 5 standard errors on mean and sd), symmetric in sign, not clipped at the scale (x = 1
    keeps its mean), and exactly 0 below the pruning threshold 0.6 / 180."""
    xs = [1.0, 0.5, 0.25, 0.05, 0.002]
    W, keep = _rows(xs)
    st = program_matrix(W.astype(dtype), load_profile("pcm_afm"), rng=3)  # the weights: no converter on the way
    w = st.effective_weights(0.0, 0).astype(np.float64)
    for i, x in enumerate(xs):
        blk, ref = w[i * 10:(i + 1) * 10][:, keep], W[i * 10:(i + 1) * 10][:, keep]
        err = (blk - ref) * np.sign(ref)  # noise in the direction of the weight
        if x < 0.6 / 180:
            np.testing.assert_array_equal(blk, 0.0)
            continue
        want = _sigma_afm(x)
        n = err.size
        assert abs(err.mean()) < Z * want / math.sqrt(n), (x, err.mean())
        assert err.std() == pytest.approx(want, rel=Z / math.sqrt(2 * n) + (1e-3 if dtype == np.float32 else 0)), x


def test_weight_noise_draws_the_same_in_both_programming_paths():
    """program_drifted (the training forward's path) programs the same noisy weights as
    program_matrix for the same seed: the reads agree bit for bit."""
    W, _ = _rows([0.5, 0.05], n_in=600)
    p = load_profile("pcm_afm")
    x = np.random.default_rng(0).standard_normal((4, 600)).astype(np.float32)
    a = tile_mvm(x, program_matrix(W.astype(np.float32), p, rng=5), t_s=0.0, rng=7)
    b = tile_mvm(x, program_drifted(W.astype(np.float32), p, rng=5, t_s=0.0, read_rng=6), rng=7)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - x @ W.T).max() > 1e-3  # the noise is there


def test_weight_noise_needs_a_differential_pair():
    with pytest.raises(ProfileError, match=r"programming\.weight_noise: a noise on the signed weight needs mapping\.kind differential"):
        load_profile("pcm_afm", overrides={"mapping.kind": "single_reference"})
