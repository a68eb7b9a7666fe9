"""Metrics: faithfulness on a model with known probabilities, Quantus wrappers, ground truth, bootstrap."""

import math

import numpy as np
import pytest
import quantus
import torch
from torch import nn

from captum_lmac.audio import mix_at_snr
from captum_lmac.errors import InputError
from captum_lmac.metrics import (
    FAITHFULNESS_KEYS,
    aggregate,
    aggregate_all,
    faithfulness,
    mask_precision_recall,
    oracle_mask,
    quantus_complexity,
    quantus_sparseness,
    si_sdr,
)


class Linear3(nn.Module):
    """logits = [s, 0, 0] with s = x00 + x01 - x10 - x11, on (N, 1, 2, 2) inputs."""

    def __init__(self):
        super().__init__()
        self.w = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
        self.drop = nn.Dropout(0.9)  # would randomise results if faithfulness forgot eval()

    def forward(self, x):
        s = self.drop((x[:, 0] * self.w).sum(dim=(1, 2)))
        return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], dim=1)


def p0(s):
    """Probability of class 0 for logits [s, 0, 0]."""
    return math.exp(s) / (math.exp(s) + 2)


@pytest.fixture
def setup():
    X = torch.tensor([[[[2.0, 1.0], [0.5, 0.5]]], [[[1.0, 1.0], [1.0, 1.0]]]])  # s = 2 and s = 0
    M = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]], [[[1.0, 1.0], [0.0, 0.0]]]])
    return Linear3().eval(), X, M


def test_faithfulness_matches_analytic_probabilities(setup):
    model, X, M = setup
    model.train()  # must be evaluated in eval mode and left as it was
    r = faithfulness(model, X, M, target=0)
    assert model.training
    assert set(FAITHFULNESS_KEYS) <= set(r)
    # sample A: s(X) = 2, s(M X) = 0.5 - 1 = -0.5, s((1-M) X) = 2.5
    # sample B: s(X) = 0, s(M X) = 2, s((1-M) X) = -2
    px = torch.tensor([p0(2), p0(0)])
    pin = torch.tensor([p0(-0.5), p0(2)])
    pout = torch.tensor([p0(2.5), p0(-2)])
    torch.testing.assert_close(r["p_X"], px)
    torch.testing.assert_close(r["p_in"], pin)
    torch.testing.assert_close(r["AI"], torch.tensor([0.0, 100.0]))
    torch.testing.assert_close(r["AD"], torch.tensor([100 * (p0(2) - p0(-0.5)) / p0(2), 0.0]))
    torch.testing.assert_close(r["AG"], torch.tensor([0.0, 100 * (p0(2) - p0(0)) / (1 - p0(0))]))
    torch.testing.assert_close(r["FF"], px - pout)
    torch.testing.assert_close(r["p_out"], pout)
    # A: M X has logits [-0.5, 0, 0] -> class 1 wins; B: class 0
    torch.testing.assert_close(r["FidIn"], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(r["MM"], torch.tensor([0.625, 0.5]))


def test_ad_applies_softmax_once(setup):
    model, X, M = setup
    r = faithfulness(model, X[:1], M[:1], target=0)
    single = 100 * (p0(2) - p0(-0.5)) / p0(2)
    # the reference code's AD: softmax applied to probabilities again
    p_twice = lambda s: torch.softmax(torch.softmax(torch.tensor([s, 0.0, 0.0]), 0), 0)[0].item()  # noqa: E731
    double = 100 * max(0.0, p_twice(2) - p_twice(-0.5)) / p_twice(2)
    assert abs(double - single) > 5
    assert r["AD"].item() == pytest.approx(single, rel=1e-5)


def test_all_ones_mask(setup):
    model, X, _ = setup
    r = faithfulness(model, X, torch.ones_like(X), target=0)
    assert (r["AD"] == 0).all() and (r["AI"] == 0).all() and (r["AG"] == 0).all()
    assert (r["MM"] == 1).all()
    # FF of an all-ones mask = p_c(X) - p_c(0)
    torch.testing.assert_close(r["FF"], torch.tensor([p0(2) - p0(0), p0(0) - p0(0)]))
    # FidIn with the default target (the model's decision) is 1 for the unmasked input
    assert (faithfulness(model, X, torch.ones_like(X))["FidIn"] == 1).all()


def test_default_target_is_argmax_and_batching_does_not_matter(setup):
    model, X, M = setup
    Xb = torch.cat([X, -X])  # s = 2, 0, -2, 0 -> classes 0, 0 (tie: first), 1, 0
    Mb = torch.cat([M, M])
    r = faithfulness(model, Xb, Mb)
    torch.testing.assert_close(r["target"], torch.tensor([0, 0, 1, 0]))
    r1 = faithfulness(model, Xb, Mb, batch_size=1)
    for k in FAITHFULNESS_KEYS:
        torch.testing.assert_close(r[k], r1[k])


def test_probs_fn_and_input_transform(setup):
    model, X, M = setup
    ref = faithfulness(model, X, M, target=0)
    # a model that already returns probabilities: probs_fn = identity (softmax is not applied again)
    prob_model = lambda x: torch.softmax(model(x), 1)  # noqa: E731
    r = faithfulness(prob_model, X, M, target=0, probs_fn=lambda p: p)
    for k in FAITHFULNESS_KEYS:
        torch.testing.assert_close(r[k], ref[k])
    # zero-shot style: scores are similarities, probabilities a softmax with a temperature
    sims = lambda x: model(x) / 2.0  # noqa: E731
    r2 = faithfulness(sims, X, M, target=0, probs_fn=lambda s: torch.softmax(s * 2.0, 1))
    torch.testing.assert_close(r2["AD"], ref["AD"])
    # masking in another domain: the model sees input_transform(M * Z)
    Z = torch.log1p(X)
    r3 = faithfulness(model, Z, torch.ones_like(Z), target=0, input_transform=torch.expm1)
    torch.testing.assert_close(r3["p_X"], ref["p_X"])


def test_saturated_probability_gives_finite_ag():
    def model(x):
        s = x.flatten(1).sum(1) * 100
        return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], 1)

    X = torch.ones(1, 1, 2, 2)
    r = faithfulness(model, X, torch.full_like(X, 0.5), target=0)
    assert r["p_X"].item() == 1.0
    assert all(torch.isfinite(r[k]).all() for k in FAITHFULNESS_KEYS)
    assert r["AG"].item() == 0.0


def test_faithfulness_rejects_bad_masks(setup):
    model, X, M = setup
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        faithfulness(model, X, M * 1.5)
    with pytest.raises(InputError, match="NaN"):
        faithfulness(model, X, torch.full_like(M, float("nan")))
    with pytest.raises(InputError):
        faithfulness(model, X, torch.ones(3, 1, 2, 2))
    with pytest.raises(InputError):
        faithfulness(model, X, M, target=[0, 1, 2])


# --- Quantus ------------------------------------------------------------------------------------


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


# --- ground truth ---------------------------------------------------------------------------------


def test_si_sdr():
    torch.manual_seed(0)
    ref = torch.randn(2, 8000)
    assert (si_sdr(0.3 * ref, ref) > 60).all()  # scale-invariant: a scaled copy is near perfect
    assert (si_sdr(torch.randn(2, 8000), ref) < -10).all()
    mix, _ = mix_at_snr(ref, torch.randn(2, 8000), 5.0)
    torch.testing.assert_close(si_sdr(mix, ref), torch.full((2,), 5.0, dtype=torch.float64), atol=0.3, rtol=0)
    assert si_sdr(ref[0], ref[0]).shape == (1,)
    silent = si_sdr(ref, torch.zeros_like(ref))
    assert torch.isnan(silent).all()
    with pytest.raises(InputError):
        si_sdr(ref[:, :100], ref)


def test_oracle_mask_and_precision_recall():
    T = torch.tensor([[[[3.0, 0.0], [1.0, 2.0]]]])
    R = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    torch.testing.assert_close(oracle_mask(T, R), torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]]))
    torch.testing.assert_close(oracle_mask(T, R, "ratio"), torch.tensor([[[[0.75, 0.0], [0.5, 1.0]]]]))
    oracle = oracle_mask(T, R)
    mask = torch.tensor([[[[0.9, 0.6], [0.1, 0.2]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    r = mask_precision_recall(mask, oracle.expand(2, -1, -1, -1))
    # sample 0: predicted {00, 01}, oracle {00, 11}: tp 1
    assert r["precision"][0].item() == pytest.approx(0.5)
    assert r["recall"][0].item() == pytest.approx(0.5)
    assert r["f1"][0].item() == pytest.approx(0.5)
    # sample 1: empty prediction -> precision undefined, recall 0, F1 0
    assert math.isnan(r["precision"][1].item()) and r["recall"][1].item() == 0 and r["f1"][1].item() == 0


# --- aggregation -----------------------------------------------------------------------------------


def test_aggregate_bootstrap():
    rng = np.random.default_rng(0)
    v = rng.normal(5.0, 1.0, 400)
    a = aggregate(np.concatenate([v, [np.nan] * 10]))
    assert a["n"] == 400 and a["mean"] == pytest.approx(v.mean())
    assert a["lo"] < a["mean"] < a["hi"]
    assert a["hi"] - a["lo"] == pytest.approx(2 * 1.96 / 20, rel=0.25)  # ~ 2 * 1.96 * sd / sqrt(n)
    assert aggregate(torch.tensor(v), seed=3) == aggregate(v, seed=3)
    assert aggregate([2.0, 2.0, 2.0]) == {"mean": 2.0, "lo": 2.0, "hi": 2.0, "median": 2.0, "n": 3}
    empty = aggregate([float("nan")])
    assert empty["n"] == 0 and math.isnan(empty["mean"])
    summary = aggregate_all({"AI": torch.tensor([0.0, 100.0]), "target": torch.tensor([0, 1])})
    assert list(summary) == ["AI"] and summary["AI"]["mean"] == 50.0
