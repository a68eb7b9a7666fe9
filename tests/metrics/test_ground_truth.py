"""Ground truth: SI-SDR, oracle masks, precision / recall."""

import math

import pytest
import torch

from captum_lmac.audio import mix_at_snr
from captum_lmac.errors import InputError
from captum_lmac.metrics import mask_precision_recall, oracle_mask, si_sdr


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



def test_clips_without_a_true_source_are_skipped():
    """A noise-only clip (silent target) has no ground truth: NaN, not a precision of 0."""
    from captum_lmac.metrics import EvalContext
    from captum_lmac.metrics.ground_truth import GroundTruthScorer

    torch.manual_seed(0)
    target = torch.randn(2, 400)
    target[0] = 0.0  # noise only
    oracle = torch.zeros(2, 1, 4, 5)
    oracle[1, :, :2] = 1.0
    masks = torch.ones(2, 1, 4, 5)
    ctx = EvalContext(model=lambda X: X.flatten(1)[:, :2], X=torch.rand(2, 1, 4, 5), masks=masks,
                      gt={"target_wave": target, "oracle": oracle}, listen=lambda M: target + 0.1)
    out = GroundTruthScorer().compute(ctx)
    assert math.isnan(out["precision"][0]) and out["precision"][1] == pytest.approx(0.5)
    assert math.isnan(out["recall"][0]) and out["recall"][1] == 1.0
    assert math.isnan(out["SI-SDR"][0]) and out["SI-SDR"][1] > 20
