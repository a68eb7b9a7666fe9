"""Quantus Sparseness / Complexity wrappers and their vectorised twins."""

import math

import numpy as np
import pytest
import quantus
import torch

from captum_lmac.metrics import quantus_complexity, quantus_sparseness


def test_quantus_does_not_mutate_and_handles_degenerate_samples():
    torch.manual_seed(0)
    a = torch.rand(4, 1, 8, 10)
    a[1] = 0.0  # all zero
    a[2] = 1.0  # constant
    a[3] = 0.0
    a[3, 0, 2, 5] = 0.7  # one-hot
    a_t, a_np = a.clone(), a.numpy().copy()
    a_np0 = a_np.copy()
    sps, comp = quantus_sparseness(a_t), quantus_complexity(a_np)
    assert torch.equal(a_t, a) and np.array_equal(a_np, a_np0)
    assert sps.shape == comp.shape == (4,)
    assert np.isnan(sps[1]) and np.isnan(comp[1])
    assert sps[2] == pytest.approx(0.0, abs=1e-9)  # uniform -> Gini 0
    assert sps[3] == pytest.approx(79 / 80, abs=1e-5)  # one-hot -> (D - 1) / D
    assert comp[2] == pytest.approx(math.log(80), rel=1e-6)
    assert comp[3] == pytest.approx(0.0, abs=1e-6)
    assert 0 < sps[0] < 1 and 0 < comp[0] < math.log(80)


def test_quantus_constant_and_all_zero_batches():
    # Quantus itself rejects these batches; the wrappers return per-sample values
    ones = torch.ones(3, 1, 6, 7)
    assert np.allclose(quantus_sparseness(ones), 0.0, atol=1e-9)
    assert np.allclose(quantus_complexity(ones), math.log(42))
    with pytest.raises(AssertionError):
        quantus.Sparseness(disable_warnings=True)(model=None, x_batch=ones.numpy(), y_batch=None,
                                                  a_batch=ones.numpy().copy(), channel_first=True)
    zeros = torch.zeros(2, 1, 6, 7)
    assert np.isnan(quantus_sparseness(zeros)).all() and np.isnan(quantus_complexity(zeros)).all()


def test_quantus_scores_do_not_depend_on_the_batch_and_match_quantus():
    rng = np.random.default_rng(1)
    a = rng.random((3, 1, 8, 8))
    alone = quantus_sparseness(a[:2])
    with_big = quantus_sparseness(np.concatenate([a[:2], 1000 * a[2:]]))
    np.testing.assert_allclose(with_big[:2], alone, rtol=1e-12)
    # same as a direct Quantus call on per-sample max-normalised attributions
    norm = a / a.reshape(3, -1).max(1)[:, None, None, None]
    direct = quantus.Complexity(disable_warnings=True, normalise=False)(
        model=None, x_batch=norm.copy(), y_batch=None, a_batch=norm.copy(), channel_first=True)
    np.testing.assert_allclose(quantus_complexity(a), direct, rtol=1e-6)



@pytest.mark.parametrize("kind", ["float32", "float64", "numpy", "float16", "int"])
def test_fast_scores_equal_quantus_in_every_input_precision(kind):
    """The fast path sorts |M| in the input's own precision: ties, zeros, NaN rows and low-precision or
    integer masks still give Quantus's scores (and complexity_scores gives both from one preparation)."""
    from captum_lmac.metrics import complexity_scores, fast_complexity, fast_sparseness

    g = torch.Generator().manual_seed(5)
    M = torch.rand(5, 1, 12, 17, generator=g)
    M[1] = (M[1] * 4).round() / 4  # many ties
    M[2] = 0.0  # undefined
    M[3, 0, 0, 0] = float("nan")  # undefined
    M[4, 0, :6] = 0.0
    if kind == "int":
        M = torch.nan_to_num(M * 7).round().to(torch.int64)
    elif kind == "numpy":
        M = M.numpy()
    else:
        M = M.to(getattr(torch, kind))
    ref_s = quantus_sparseness(torch.as_tensor(M).double())
    ref_c = quantus_complexity(torch.as_tensor(M).double())
    np.testing.assert_allclose(fast_sparseness(M), ref_s, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(fast_complexity(M), ref_c, rtol=1e-9, equal_nan=True)
    sps, comp = complexity_scores(M, check=False)
    np.testing.assert_array_equal(sps, fast_sparseness(M))
    np.testing.assert_array_equal(comp, fast_complexity(M))
    assert np.isnan(sps[2]) and np.isnan(comp[2])


def test_chunked_scores_are_those_of_the_whole_batch_bit_for_bit():
    from captum_lmac.metrics.complexity import _Prepared, _chunked_scores, _entropy, _gini

    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 9):
        m = torch.rand(n, 1, 200, 200, generator=g) ** 3  # 40,000 values: above the size torch reduces serially
        if n > 2:
            m[1] = 0.0  # an undefined score stays NaN in its chunk
        whole = _Prepared(m)
        want = (_gini(whole), _entropy(whole))
        for rows in (1, 2, 3, 4, n):  # lone samples (and chunks with one defined score) sum as in the batch
            got = _chunked_scores(m, rows * 200 * 200)
            assert np.array_equal(got[0], want[0], equal_nan=True) and np.array_equal(got[1], want[1], equal_nan=True)
