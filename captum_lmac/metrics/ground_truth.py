r"""Ground truth where the true source is known: SI-SDR of the listenable explanation and
precision / recall of the mask against the oracle mask.
"""

from __future__ import annotations

from typing import Dict, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from .base import EvalContext, Metric, Scorer, register_scorer
from .faithfulness import _safe_ratio

ArrayLike = Union[Tensor, np.ndarray, Sequence[float]]

GROUND_TRUTH = (
    Metric("SI-SDR", "SI-SDR (dB)", True, 2, "ground truth",
           "SI-SDR of the listenable explanation against the true source (dB)"),
    Metric("precision", "Prec", True, 3, "ground truth", "share of the mask (≥ 0.5) where the true source dominates"),
    Metric("recall", "Rec", True, 3, "ground truth", "share of the oracle mask the mask (≥ 0.5) covers"),
)


def _as_batch(t: ArrayLike, name: str) -> Tensor:
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if not torch.is_tensor(t):
        raise InputError(f"{name} must be a tensor or numpy array, got {type(t).__name__}")
    t = t.detach()
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() < 2 or t.shape[0] == 0 or t.shape[-1] == 0:
        raise InputError(f"{name} must be a non-empty (N, ...) batch, got shape {tuple(t.shape)}")
    return t


def si_sdr(estimate: ArrayLike, reference: ArrayLike, zero_mean: bool = True, eps: float = 1e-10) -> Tensor:
    r"""Scale-invariant signal-to-distortion ratio per sample, in dB (Le Roux et al., 2019,
    https://arxiv.org/abs/1811.02508).

    With s the reference and ŝ the estimate (optionally zero-mean), α = ⟨ŝ, s⟩ / ‖s‖² and
    SI-SDR = 10·log10(‖α s‖² / ‖ŝ − α s‖²). A rescaled copy of the reference scores very high
    (bounded by ``eps``), independent noise scores very low.

    Args:
        estimate, reference: Same shape, (samples,), (N, samples), (N, 1, samples) or any (N, ...)
            (everything after dimension 0 is one signal).
        zero_mean (bool): Remove each signal's mean first (standard). Default True.
        eps (float): Regulariser of both energies.

    Returns:
        Tensor: (N,) float64 SI-SDR in dB; NaN where the reference is silent (undefined).
    """
    est, ref = _as_batch(estimate, "estimate"), _as_batch(reference, "reference")
    if est.shape != ref.shape:
        raise InputError(
            f"estimate shape {tuple(est.shape)} differs from reference shape {tuple(ref.shape)}; "
            "crop/pad to the same length first (e.g. STFT.listen(..., length=...))"
        )
    est = est.flatten(1).double()
    ref = ref.flatten(1).double()
    if zero_mean:
        est = est - est.mean(dim=1, keepdim=True)
        ref = ref - ref.mean(dim=1, keepdim=True)
    ref_energy = ref.pow(2).sum(dim=1)
    alpha = (est * ref).sum(dim=1) / (ref_energy + eps)
    target = alpha.unsqueeze(1) * ref
    noise = est - target
    out = 10.0 * torch.log10((target.pow(2).sum(dim=1) + eps) / (noise.pow(2).sum(dim=1) + eps))
    return torch.where(ref_energy > 0, out, torch.full_like(out, float("nan")))


def oracle_mask(X_target: Tensor, X_rest: Tensor, kind: str = "binary") -> Tensor:
    r"""The oracle mask of a mixture with known parts: where the target source dominates.

    Args:
        X_target (Tensor): Magnitude spectrogram of the target source (N, 1, F, T).
        X_rest (Tensor): Magnitude of everything else in the mixture (background, interferer), same shape.
        kind (str): ``"binary"`` (default): 1 where |X_target| > |X_rest| (ideal binary mask);
            ``"ratio"``: |X_target| / (|X_target| + |X_rest|) (ideal ratio mask; 0 where both are 0).

    Returns:
        Tensor: float mask in [0, 1] of the input shape.
    """
    if not torch.is_tensor(X_target) or not torch.is_tensor(X_rest):
        raise InputError("X_target and X_rest must be tensors")
    if X_target.shape != X_rest.shape:
        raise InputError(f"X_target shape {tuple(X_target.shape)} differs from X_rest shape {tuple(X_rest.shape)}")
    t, r = X_target.detach().abs().float(), X_rest.detach().abs().float()
    if kind == "binary":
        return (t > r).float()
    if kind == "ratio":
        return _safe_ratio(t, t + r)
    raise InputError(f"kind must be 'binary' or 'ratio', got {kind!r}")


def mask_precision_recall(mask: Tensor, oracle: Tensor, threshold: float = 0.5) -> Dict[str, Tensor]:
    r"""Per-sample precision, recall and F1 of a binarised mask against an oracle mask.

    Both masks are binarised with ``>= threshold`` (a binary oracle is unchanged for 0 < threshold ≤ 1).
    precision = |M ∩ O| / |M|, recall = |M ∩ O| / |O|, F1 = 2|M ∩ O| / (|M| + |O|).

    Args:
        mask (Tensor): Explanation mask (N, ...) in [0, 1].
        oracle (Tensor): Oracle mask of the same shape (e.g. :func:`oracle_mask`).
        threshold (float): Binarisation threshold. Default 0.5.

    Returns:
        dict of (N,) float tensors ``precision``, ``recall``, ``f1``: precision is NaN for an empty
        binarised mask, recall for an empty oracle, F1 when both are empty (all undefined; skipped
        by :func:`aggregate`).
    """
    if not torch.is_tensor(mask) or not torch.is_tensor(oracle):
        raise InputError("mask and oracle must be tensors")
    try:
        oracle = oracle.detach().to(mask.device).expand_as(mask)
    except RuntimeError:
        raise InputError(f"oracle shape {tuple(oracle.shape)} does not fit mask shape {tuple(mask.shape)}") from None
    m = (mask.detach() >= threshold).flatten(1).float()
    o = (oracle >= threshold).flatten(1).float()
    tp = (m * o).sum(dim=1)
    n_m, n_o = m.sum(dim=1), o.sum(dim=1)
    nan = torch.full_like(tp, float("nan"))

    def ratio(num: Tensor, den: Tensor) -> Tensor:
        return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), nan)

    return {"precision": ratio(tp, n_m).cpu(), "recall": ratio(tp, n_o).cpu(), "f1": ratio(2 * tp, n_m + n_o).cpu()}



class GroundTruthScorer(Scorer):
    """Precision / recall against the oracle mask and (STFT domain) SI-SDR against the true source.

    Clips whose true source is silent (a noise-only clip of the speech-in-noise suite) have no
    ground truth: their values are NaN and skipped by the aggregates."""

    name = "ground_truth"
    metrics = GROUND_TRUTH

    def applies(self, ctx: EvalContext) -> bool:
        return ctx.gt is not None

    def compute(self, ctx: EvalContext) -> Dict[str, np.ndarray]:
        pr = mask_precision_recall(ctx.masks, ctx.gt["oracle"])
        if "target_wave" in ctx.gt:  # no true source in a clip (e.g. a noise-only clip): nothing to score
            silent = ctx.gt["target_wave"].detach().flatten(1).abs().amax(dim=1).cpu() == 0
            pr["precision"] = torch.where(silent, torch.full_like(pr["precision"], float("nan")), pr["precision"])
        out = {"precision": pr["precision"].numpy(), "recall": pr["recall"].numpy()}
        if ctx.listen is not None:
            out["SI-SDR"] = si_sdr(ctx.listen(ctx.masks), ctx.gt["target_wave"]).numpy()
        return out


register_scorer(GroundTruthScorer())

__all__ = ["GROUND_TRUTH", "si_sdr", "oracle_mask", "mask_precision_recall", "GroundTruthScorer"]
