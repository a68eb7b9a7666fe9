"""Faithfulness on a model with known probabilities: AI, AD, AG, FF, Fid-In, MM."""

import math

import pytest
import torch
from torch import nn

from captum_lmac.errors import InputError
from captum_lmac.metrics import FAITHFULNESS_KEYS, class_probabilities, faithfulness


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



def test_known_probabilities_on_X_give_the_same_scores(setup):
    """The benchmark computes p(X) once per condition and passes it to every row: same scores."""
    model, X, M = setup
    model.train()
    p = class_probabilities(model, X, batch_size=1)
    assert model.training  # eval mode only inside the call
    torch.testing.assert_close(p.sum(1), torch.ones(2))
    ref = faithfulness(model, X, M)
    torch.testing.assert_close(p.gather(1, ref["target"].view(-1, 1))[:, 0], ref["p_X"])
    calls = []
    counting = lambda x: calls.append(x.shape[0]) or model(x)  # noqa: E731
    model.eval()
    got = faithfulness(counting, X, M, probs_X=p)
    assert sum(calls) == 2 * X.shape[0]  # masked-in and masked-out only
    for k in list(FAITHFULNESS_KEYS) + ["p_X", "target"]:
        torch.testing.assert_close(got[k], ref[k])
    with pytest.raises(InputError, match="probs_X"):
        faithfulness(model, X, M, probs_X=p[:1])


def test_plain_masking_batch_by_batch_equals_the_whole_masked_inputs():
    """M ⊙ X and (1 − M) ⊙ X are made one batch at a time (no full-size copies): the same scores as from
    the whole masked inputs, a mask outside [0, 1] by rounding clamped, a broadcast mask expanded."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).eval()
    X = torch.rand(7, 1, 3, 4, generator=g)
    M = torch.rand(7, 1, 3, 4, generator=g)
    M[0, 0, 0, 0], M[1, 0, 0, 0] = 1.0 + 5e-7, -5e-7
    whole = lambda X_, M_: (M_ * X_, (1.0 - M_) * X_)  # noqa: E731
    for mask in (M, M[:, :, :1]):  # full, and one row broadcast over frequency
        ref = faithfulness(model, X, mask, batch_size=7, masked=whole)
        got = faithfulness(model, X, mask, batch_size=3)
        for k in FAITHFULNESS_KEYS + ("p_in", "p_out"):
            assert torch.equal(got[k], ref[k]), k
