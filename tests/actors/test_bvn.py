"""``actors._bvn``: the per-correlation tables change no bit.

A pass's cells share a few correlations; ``Correlations`` computes Genz's
per-r terms once a correlation. A cell's value must not depend on which
other cells share its correlation, or on the scratch memory reused between
calls (multipliers are floors of 9,500 / (100 p): a last bit can move one).
"""
import numpy as np

from actors import _bvn


def _bits(a):
    return np.asarray(a, dtype=float).view(np.int64)


def test_grouped_cells_equal_each_cell_alone():
    rng = np.random.default_rng(27)
    rs = np.concatenate([rng.uniform(-0.92, 0.92, 6), -rng.uniform(0.93, 0.999, 6), [1.0, -1.0]])
    n = 4000
    g = rng.integers(0, rs.size, n)
    h, k = rng.uniform(-7, 7, n), rng.uniform(-7, 7, n)
    corr = _bvn.Correlations(rs)
    parts, args = _bvn.prepare(h, k, g, corr)
    grouped = _bvn.finish(parts, _bvn.phis(*args))
    alone = _bvn.bvn_upper(h, k, rs[g])
    assert np.array_equal(_bits(grouped), _bits(alone))
    # a second call reuses the scratch arrays; a smaller one reads only its part
    assert np.array_equal(_bits(_bvn.bvn_upper(h[:7], k[:7], rs[g[:7]])), _bits(alone[:7]))
    assert np.array_equal(_bits(_bvn.bvn_upper(h, k, rs[g])), _bits(alone))


def test_bvn_upper_is_a_probability_with_its_symmetries():
    rng = np.random.default_rng(3)
    h, k = rng.uniform(-4, 4, 500), rng.uniform(-4, 4, 500)
    r = rng.uniform(-0.99, 0.99, 500)
    p = _bvn.bvn_upper(h, k, r)
    assert ((p >= -1e-15) & (p <= 1 + 1e-15)).all()
    assert np.allclose(p, _bvn.bvn_upper(k, h, r), rtol=0, atol=1e-14)
    # r = 0: independent
    assert np.allclose(_bvn.bvn_upper(h, k, 0.0), _bvn.phi(-h) * _bvn.phi(-k), rtol=0, atol=1e-15)
    assert _bvn.bvn_upper(np.array([]), np.array([]), np.array([])).size == 0
