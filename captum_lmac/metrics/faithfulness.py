r"""Faithfulness of mask explanations (L-MAC paper, section 3): AI, AD, AG, FF, Fid-In, MM.

With p the class probabilities — computed with *one* softmax — and c the model's decision
``argmax f(X)`` unless a target is given, per sample:

- AI  = 100·1[p_c(M⊙X) > p_c(X)]                          (average increase, higher is better)
- AD  = 100·max(0, p_c(X) − p_c(M⊙X)) / p_c(X)             (average drop, lower is better)
- AG  = 100·max(0, p_c(M⊙X) − p_c(X)) / (1 − p_c(X))       (average gain, higher is better)
- FF  = p_c(X) − p_c((1−M)⊙X)                             (faithfulness on removal, higher is better)
- FidIn = 1[argmax f(M⊙X) = c]                            (input fidelity, higher is better)
- MM  = mean(M)                                           (mask mean; lower = sparser)

Difference from the released reference code: it applies softmax to values that are already
probabilities when computing AD, which deflates AD; here softmax is applied exactly once.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .._utils import eval_mode, format_target
from ..errors import InputError
from ..nn.adapters import bound_slice, using_phase
from .base import EvalContext, Metric, Scorer, register_scorer

FAITHFULNESS = (
    Metric("AI", "AI", True, 2, "faithfulness", "how often the masked-in input raises the class probability (%)"),
    Metric("AD", "AD", False, 2, "faithfulness", "relative drop of the class probability on the masked-in input (%)"),
    Metric("AG", "AG", True, 2, "faithfulness", "relative gain of the class probability on the masked-in input (%)"),
    Metric("FF", "FF", True, 3, "faithfulness", "drop of the class probability when the mask is removed"),
    Metric("FidIn", "Fid-In", True, 3, "faithfulness", "share of clips whose decision the masked-in input keeps"),
    Metric("MM", "MM", False, 3, "faithfulness", "mask mean: the share of the input kept (smaller = sparser)"),
)

FAITHFULNESS_KEYS = tuple(m.name for m in FAITHFULNESS)
"""The six per-sample faithfulness metrics returned by :func:`faithfulness` (plus diagnostics)."""


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den <= 0."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def _softmax(scores: Tensor) -> Tensor:
    return torch.softmax(scores, dim=1)


def class_probabilities(
    model: Callable[[Tensor], Tensor],
    Z: Tensor,
    batch_size: int = 32,
    input_transform: Optional[Callable[[Tensor], Tensor]] = None,
    probs_fn: Optional[Callable[[Tensor], Tensor]] = None,
    phase: Optional[Tensor] = None,
) -> Tensor:
    """The model's probabilities on ``Z`` (N, C), float32 on the CPU: in eval mode, without gradients, in
    batches of ``batch_size`` (each batch's slice of a bound phase), with ``probs_fn`` (default softmax)
    applied once. ``phase`` is bound for the whole call (waveform models). :func:`faithfulness` uses it
    for each of its three passes."""
    return _probabilities(model, Z.shape[0], lambda s, e: Z[s:e], batch_size, input_transform, probs_fn, phase)


def _probabilities(model: Callable[[Tensor], Tensor], n: int, batch: Callable[[int, int], Tensor], batch_size: int = 32,
                   input_transform: Optional[Callable[[Tensor], Tensor]] = None,
                   probs_fn: Optional[Callable[[Tensor], Tensor]] = None, phase: Optional[Tensor] = None) -> Tensor:
    """:func:`class_probabilities` of inputs made batch by batch: ``batch(start, stop)`` gives clips start … stop − 1."""
    transform = input_transform or (lambda z: z)
    to_probs = probs_fn or _softmax
    out = []
    with eval_mode(model), torch.no_grad(), \
            (using_phase(model, phase, getattr(model, "bound_length", None)) if phase is not None else nullcontext()):
        for s in range(0, n, batch_size):
            with bound_slice(model, s, s + batch_size):  # waveform models: this chunk's phase
                p = to_probs(model(transform(batch(s, min(n, s + batch_size)))))
            if not torch.is_tensor(p) or p.dim() != 2 or p.shape[0] != min(batch_size, n - s):
                raise InputError(f"model/probs_fn must return (N, C) scores, got {getattr(p, 'shape', type(p))}")
            out.append(p.detach().float().cpu())
    return torch.cat(out)


def faithfulness(
    model: Callable[[Tensor], Tensor],
    X: Tensor,
    mask: Tensor,
    target: Any = None,
    batch_size: int = 32,
    input_transform: Optional[Callable[[Tensor], Tensor]] = None,
    probs_fn: Optional[Callable[[Tensor], Tensor]] = None,
    masked: Optional[Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]] = None,
    probs_X: Optional[Tensor] = None,
) -> Dict[str, Tensor]:
    r"""Per-sample AI, AD, AG, FF, Fid-In and Mask-Mean of a mask explanation.

    The model is evaluated (in eval mode, without gradients, in batches) on X, on the mask-in
    input M⊙X and on the mask-out input (1−M)⊙X. Its outputs can be any class scores (logits,
    or prompt similarities for a zero-shot model): ``probs_fn`` turns them into probabilities and is
    applied **exactly once** (default softmax over dimension 1).

    Args:
        model (Callable): Maps the (transformed) input to scores (N, C), e.g. a
            :class:`~captum_lmac.SpectrogramClassifier`. An ``nn.Module`` is run in eval mode (its
            flags are restored afterwards); for any other callable (e.g. a lambda around a module)
            put the modules it uses in eval mode yourself, or dropout makes the metrics random.
        X (Tensor): The explained input (N, ...), e.g. the linear magnitude (N, 1, F, T) — or the
            classifier features (N, 1, n_mels, T) with ``model.in_feature_domain()`` for the
            "Mel" rows.
        mask (Tensor): Mask in [0, 1], the shape of X (or broadcastable to it, e.g. over channels).
        target (int, list or Tensor, optional): Class explained per sample; default
            c = argmax of the model's probabilities on X (the model's own decision).
        batch_size (int): Samples per forward pass.
        input_transform (Callable, optional): Applied to X, M⊙X and (1−M)⊙X before the model.
            E.g. to mask in the log-magnitude domain like the reference code, pass
            ``X=torch.log1p(X_mag)`` and ``input_transform=torch.expm1``; or pass a feature
            extractor to mask features and classify with ``model.net``.
        probs_fn (Callable, optional): Model output (N, C) → probabilities (N, C). Default
            ``softmax(dim=1)``; e.g. ``lambda s: torch.softmax(s / tau, 1)`` for CLAP-style
            similarities with a temperature, or ``lambda p: p`` if the model already outputs
            probabilities.
        masked (Callable, optional): ``(X, M) -> (X_in, X_out)``, the masked-in and masked-out
            inputs of a method whose explanation is not a plain multiplication (default
            ``M ⊙ X`` and ``(1 − M) ⊙ X``); it may also return their phases ``(X_in, X_out,
            P_in, P_out)``, bound for a classifier that needs the phase (waveform models).
        probs_X (Tensor, optional): The probabilities on X itself, (N, C), when they are already
            known — :func:`class_probabilities` of the same model, batch size and ``probs_fn``; the
            benchmark computes them once per condition for all its methods. Default: computed here.

    Returns:
        dict of (N,) float tensors on the CPU: ``AI``, ``AD``, ``AG`` (percent), ``FF``, ``FidIn``
        (0/1), ``MM``, plus diagnostics ``p_X`` = p_c(X), ``p_in`` = p_c(M⊙X), ``p_out`` =
        p_c((1−M)⊙X) and ``target`` (long). Edge cases: AD = 0 when p_c(X) = 0 and AG = 0 when
        p_c(X) = 1 (no drop/gain is possible), instead of 0/0.

    Raises:
        InputError: on shape mismatch, a mask outside [0, 1] or with NaN, or bad targets.

    Examples::

        >>> mask = make_baseline("gradcam", model).attribute(X)
        >>> m = faithfulness(model, X, mask)
        >>> {k: aggregate(m[k])["mean"] for k in FAITHFULNESS_KEYS}
    """
    if not torch.is_tensor(X) or X.dim() < 2 or X.shape[0] == 0:
        shape = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
        raise InputError(f"X must be a non-empty (N, ...) tensor, got {shape}")
    if not torch.is_tensor(mask):
        raise InputError(f"mask must be a tensor, got {type(mask).__name__}")
    try:
        mask = mask.detach().to(device=X.device, dtype=X.dtype).expand_as(X)
    except RuntimeError:
        raise InputError(f"mask shape {tuple(mask.shape)} does not fit input shape {tuple(X.shape)}") from None
    if not torch.isfinite(mask).all():
        raise InputError("mask contains NaN or infinite values")
    lo, hi = float(mask.min()), float(mask.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(f"mask values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if lo < 0.0 or hi > 1.0:  # (a mask already in [0, 1] is used as it is, not copied)
        mask = mask.clamp(0.0, 1.0)
    X = X.detach()
    n = X.shape[0]
    run = dict(batch_size=batch_size, input_transform=input_transform, probs_fn=probs_fn)
    if probs_X is None:
        p_full = class_probabilities(model, X, **run)
    else:
        p_full = probs_X.detach().float().cpu()
        if p_full.dim() != 2 or p_full.shape[0] != n:
            raise InputError(f"probs_X must be the (N, C) = ({n}, C) probabilities on X, got {tuple(p_full.shape)}")
    if masked is None:  # M ⊙ X and (1 − M) ⊙ X one batch at a time: no two full-size copies of X held
        p_mask_in = _probabilities(model, n, lambda s, e: mask[s:e] * X[s:e], **run)
        p_mask_out = _probabilities(model, n, lambda s, e: (1.0 - mask[s:e]) * X[s:e], **run)
    else:
        with eval_mode(model), torch.no_grad():
            parts = masked(X, mask)
        phases = parts[2:4] if len(parts) == 4 else (None, None)
        p_mask_in = class_probabilities(model, parts[0], phase=phases[0], **run)
        p_mask_out = class_probabilities(model, parts[1], phase=phases[1], **run)
    c = format_target(target, n, default=p_full.argmax(dim=1))
    if bool(((c < 0) | (c >= p_full.shape[1])).any()):
        raise InputError(f"target indices must lie in [0, {p_full.shape[1]})")
    idx = c.view(-1, 1)
    p_x = p_full.gather(1, idx)[:, 0]
    p_in = p_mask_in.gather(1, idx)[:, 0]
    p_out = p_mask_out.gather(1, idx)[:, 0]
    ad = 100.0 * _safe_ratio((p_x - p_in).clamp_min(0), p_x)  # 0 when p_c(X) = 0
    ag = 100.0 * _safe_ratio((p_in - p_x).clamp_min(0), 1.0 - p_x)  # 0 when p_c(X) = 1
    return {
        "AI": 100.0 * (p_in > p_x).float(),
        "AD": ad,
        "AG": ag,
        "FF": p_x - p_out,
        "FidIn": (p_mask_in.argmax(dim=1) == c).float(),
        "MM": mask.flatten(1).mean(dim=1).float().cpu(),
        "p_X": p_x,
        "p_in": p_in,
        "p_out": p_out,
        "target": c,
    }



class FaithfulnessScorer(Scorer):
    """AI, AD, AG, FF, Fid-In and MM of every row (:func:`faithfulness`)."""

    name = "faithfulness"
    metrics = FAITHFULNESS

    def compute(self, ctx: EvalContext) -> Dict[str, np.ndarray]:
        m = faithfulness(ctx.model, ctx.X, ctx.masks, batch_size=ctx.batch_size, masked=ctx.masked,
                         probs_X=ctx.probs_X)
        return {k: m[k].numpy().astype(np.float64) for k in FAITHFULNESS_KEYS}


register_scorer(FaithfulnessScorer())

__all__ = ["FAITHFULNESS", "FAITHFULNESS_KEYS", "class_probabilities", "faithfulness", "FaithfulnessScorer"]
