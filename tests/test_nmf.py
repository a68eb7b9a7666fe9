"""Sparse NMF dictionary learning (captum_lmac.nmf) for L2I."""

import pytest
import torch

from captum_lmac.errors import InputError
from captum_lmac.nmf import frames_matrix, learn_dictionary, log_magnitude, nmf_activations


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def planted(F=40, K=5, M=1500, seed=0, dtype=torch.float64):
    """V = W H with a sparse, peaky non-negative W (unit-norm columns) and sparse H."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(F, K, generator=g, dtype=dtype) ** 6
    W = W / W.norm(dim=0)
    H = torch.rand(K, M, generator=g, dtype=dtype) * (torch.rand(K, M, generator=g, dtype=dtype) < 0.3)
    return W, H, W @ H


def objective(V, W, H, beta):
    return 0.5 * float(((V - W @ H) ** 2).sum()) + beta * float(H.sum())


def test_objective_decreases_monotonically_and_constraints_hold():
    _, _, V = planted()
    V = V + 0.01  # no exact zeros in the data
    W, info = learn_dictionary(V, n_components=5, beta=0.05, n_iter=80, tol=0, progress=False, return_info=True)
    obj = torch.tensor(info["objective"], dtype=torch.float64)
    assert info["iterations"] == 80
    rel_increase = (obj[1:] - obj[:-1]) / obj[:-1]
    assert float(rel_increase.max()) <= 1e-9  # the updates never increase J (float64 data)
    assert obj[-1] < 0.5 * obj[0]
    assert W.shape == (40, 5) and W.dtype == torch.float32
    assert float(W.min()) >= 0
    assert torch.allclose(W.norm(dim=0), torch.ones(5), atol=1e-5)


def test_recovers_planted_dictionary():
    W_true, _, V = planted(seed=1)
    W, info = learn_dictionary(V, n_components=5, beta=0.0, n_iter=300, progress=False, return_info=True)
    cos = W.double().T @ W_true  # unit-norm columns: cosine similarities (K_learnt, K_true)
    assert float(cos.amax(0).min()) > 0.95  # every true atom has a close learnt atom
    assert info["relative_error"] < 0.05


def test_activations_on_fixed_dictionary():
    W_true, H_true, V = planted(seed=2, M=200)
    V3 = V.T.reshape(4, 50, 40).permute(0, 2, 1)  # 4 clips (N, F, T)
    H = nmf_activations(V3.unsqueeze(1), W_true, beta=0.0, n_iter=300)
    assert H.shape == (4, 5, 50) and float(H.min()) >= 0
    rec = torch.einsum("fk,nkt->nft", W_true, H)
    assert float((rec - V3).norm() / V3.norm()) < 0.05
    # the same objective decreases with more iterations, and the ℓ1 penalty makes H sparser
    h_few = nmf_activations(V, W_true, beta=0.1, n_iter=5)
    h_many = nmf_activations(V, W_true, beta=0.1, n_iter=50)
    assert objective(V, W_true, h_many, 0.1) <= objective(V, W_true, h_few, 0.1)
    assert float(nmf_activations(V, W_true, beta=2.0, n_iter=50).sum()) < float(h_many.sum())


def test_multiplicative_w_update_variant():
    _, _, V = planted(seed=3)
    W, info = learn_dictionary(V + 0.01, 5, beta=0.05, n_iter=60, w_update="multiplicative", tol=0,
                               progress=False, return_info=True)
    assert float(W.min()) >= 0
    assert torch.allclose(W.norm(dim=0), torch.ones(5), atol=1e-5)
    assert info["objective"][-1] < 0.5 * info["objective"][0]


def test_spectrogram_input_silent_frames_and_subsampling():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(3, 1, 20, 30, generator=g) * 5
    X[0, :, :, :10] = 0  # digital silence is dropped
    V = log_magnitude(X)
    assert frames_matrix(V).shape == (20, 90)
    assert torch.equal(frames_matrix(V)[:, 30:60], V[1, 0])
    W, info = learn_dictionary(V, 4, n_iter=5, max_frames=50, progress=False, return_info=True)
    assert info["frames"] == 50 and W.shape == (20, 4)
    _, info = learn_dictionary(V, 4, n_iter=5, progress=False, return_info=True)
    assert info["frames"] == 80
    # seeded
    assert torch.equal(learn_dictionary(V, 4, n_iter=5, progress=False, seed=3),
                       learn_dictionary(V, 4, n_iter=5, progress=False, seed=3))


def test_bad_input():
    V = torch.rand(10, 30)
    with pytest.raises(InputError, match="non-negative"):
        learn_dictionary(V - 1, 3, progress=False)
    with pytest.raises(InputError, match="fewer than n_components"):
        learn_dictionary(V, 40, progress=False)
    with pytest.raises(InputError, match="w_update"):
        learn_dictionary(V, 3, w_update="sgd", progress=False)
    with pytest.raises(InputError, match="NaN"):
        learn_dictionary(V * float("nan"), 3, progress=False)
    with pytest.raises(InputError, match="frequency bins"):
        nmf_activations(torch.rand(2, 1, 11, 5), torch.rand(10, 3))
    with pytest.raises(InputError, match="shape"):
        frames_matrix(torch.rand(2, 2, 3, 4))
