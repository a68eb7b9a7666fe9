r"""Metrics for mask explanations: faithfulness, Quantus complexity, ground truth, aggregation.

Every metric is computed **per sample** and aggregated afterwards with :func:`aggregate` (mean and a
95 % bootstrap interval, NaN ignored), so reports can show spread and degenerate samples are
counted rather than silently averaged.

Faithfulness (:func:`faithfulness`; L-MAC paper, section 3, with p the class probabilities,
computed with *one* softmax, and c the model's decision ``argmax f(X)`` unless a target is given):

- AI  = 100·1[p_c(M⊙X) > p_c(X)]                          (average increase, higher is better)
- AD  = 100·max(0, p_c(X) − p_c(M⊙X)) / p_c(X)             (average drop, lower is better)
- AG  = 100·max(0, p_c(M⊙X) − p_c(X)) / (1 − p_c(X))       (average gain, higher is better)
- FF  = p_c(X) − p_c((1−M)⊙X)                             (faithfulness on removal, higher is better)
- FidIn = 1[argmax f(M⊙X) = c]                            (input fidelity, higher is better)
- MM  = mean(M)                                           (mask mean; lower = sparser)

Difference from the released reference code: it applies softmax to values that are already
probabilities when computing AD, which deflates AD; here softmax is applied exactly once.

Complexity (:func:`quantus_sparseness`, :func:`quantus_complexity`): ``quantus.Sparseness`` (Gini
index of |a|, higher = sparser) and ``quantus.Complexity`` (entropy of |a|/Σ|a|, lower = simpler),
wrapped once so their traps are handled (see the function docs).

Ground truth for synthetic mixtures with known sources: :func:`si_sdr`, :func:`oracle_mask`,
:func:`mask_precision_recall`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import quantus
import torch
from torch import Tensor, nn

from .attr._learned import format_target
from .attr.baselines import eval_mode
from .errors import InputError

ArrayLike = Union[Tensor, np.ndarray, Sequence[float]]

FAITHFULNESS_KEYS = ("AI", "AD", "AG", "FF", "FidIn", "MM")
"""The six per-sample faithfulness metrics returned by :func:`faithfulness` (plus diagnostics)."""

HIGHER_IS_BETTER: Dict[str, bool] = {
    "AI": True, "AD": False, "AG": True, "FF": True, "FidIn": True, "MM": False,
    "SPS": True, "COMP": False, "SI-SDR": True, "precision": True, "recall": True, "f1": True,
}
"""Direction of each metric, for report tables (MM: smaller masks are preferred at equal faithfulness)."""


# --- faithfulness -----------------------------------------------------------------------------------


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den <= 0."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def _softmax(scores: Tensor) -> Tensor:
    return torch.softmax(scores, dim=1)


def _resolve_target(target: Any, n: int, default: Tensor) -> Tensor:
    t = format_target(target, n)
    return default if t is None else t


def faithfulness(
    model: Callable[[Tensor], Tensor],
    X: Tensor,
    mask: Tensor,
    target: Any = None,
    batch_size: int = 32,
    input_transform: Optional[Callable[[Tensor], Tensor]] = None,
    probs_fn: Optional[Callable[[Tensor], Tensor]] = None,
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
    if float(mask.min()) < -1e-6 or float(mask.max()) > 1 + 1e-6:
        raise InputError(f"mask values must lie in [0, 1], got [{float(mask.min()):.4g}, {float(mask.max()):.4g}]")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    mask = mask.clamp(0.0, 1.0)
    X = X.detach()
    transform = input_transform or (lambda z: z)
    to_probs = probs_fn or _softmax
    n = X.shape[0]

    def probs(Z: Tensor) -> Tensor:
        out = []
        for s in range(0, n, batch_size):
            p = to_probs(model(transform(Z[s : s + batch_size])))
            if not torch.is_tensor(p) or p.dim() != 2 or p.shape[0] != min(batch_size, n - s):
                raise InputError(f"model/probs_fn must return (N, C) scores, got {getattr(p, 'shape', type(p))}")
            out.append(p.detach().float().cpu())
        return torch.cat(out)

    with eval_mode(model), torch.no_grad():
        p_full = probs(X)
        p_mask_in = probs(mask * X)
        p_mask_out = probs((1.0 - mask) * X)
    c = _resolve_target(target, n, p_full.argmax(dim=1))
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


# --- Quantus ----------------------------------------------------------------------------------------


def _to_numpy(a: ArrayLike, name: str) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().double().numpy()
    arr = np.array(a, dtype=np.float64, copy=True)  # always our own copy: Quantus may write into it
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InputError(f"{name} must be a non-empty (N, ...) batch, got shape {arr.shape}")
    return arr


def _quantus_per_sample(metric_cls: type, mask: ArrayLike, name: str) -> np.ndarray:
    r"""Run a Quantus complexity metric once per batch and return one score per sample.

    Handles Quantus 0.6's traps:

    - it wants numpy arrays and an ``x_batch`` (only for shape checks for these two metrics; the
      flattened attribution itself is passed — ``y_batch`` may be None, ``model`` None);
    - it writes into ``a_batch`` when ``abs``/``normalise`` are off → we always pass private copies;
    - its default normalisation divides by *one* maximum over the whole batch (scores would depend
      on the other samples) → we normalise each sample by its own max of |a| and disable Quantus's;
    - it rejects a whole batch whose attributions are all 0, all 1 or all one constant, and its
      channel-order inference fails on some shapes → each sample is flattened to (1, D) and one
      non-constant sentinel sample (one-hot) is appended, whose score is dropped;
    - an all-zero (or non-finite) sample has no defined score (Complexity gives NaN, Sparseness a
      spurious 0) → such samples get NaN, which :func:`aggregate` skips.
    """
    a = _to_numpy(mask, "mask")
    n = a.shape[0]
    flat = np.abs(a.reshape(n, -1))
    d = flat.shape[1]
    scores = np.full(n, np.nan)
    if d < 2:
        return scores
    finite = np.isfinite(flat).all(axis=1)
    peak = np.where(finite, np.nan_to_num(flat, nan=0.0, posinf=0.0).max(axis=1), 0.0)
    ok = finite & (peak > 0)
    if not ok.any():
        return scores
    valid = flat[ok] / peak[ok, None]
    sentinel = np.zeros((1, d))
    sentinel[0, 0] = 1.0
    batch = np.concatenate([valid, sentinel])[:, None, :]  # (n_ok + 1, 1, D), channel first
    metric = metric_cls(abs=True, normalise=False, disable_warnings=True, display_progressbar=False)
    out = metric(
        model=None,
        x_batch=batch.copy(),
        y_batch=None,
        a_batch=batch.copy(),
        channel_first=True,
        batch_size=batch.shape[0],
    )
    scores[ok] = np.asarray(out, dtype=np.float64)[:-1]
    return scores


def quantus_explain_func(method: Any, **attribute_kwargs: Any) -> Callable[..., np.ndarray]:
    """Adapter so any attribution here (L-MAC, L2I, LMAC-ZS, a baseline) serves as a Quantus ``explain_func``.

    Quantus calls ``explain_func(model=..., inputs=numpy, targets=numpy, **kwargs)`` and wants a
    numpy array back; this converts both ways and calls ``method.attribute(inputs, target=...)``.
    The ``model`` Quantus passes is ignored (the method already holds the model it explains), and so
    are Quantus's own keyword arguments (``device``, ...); ``attribute_kwargs`` go to ``attribute``.

    Examples::

        >>> quantus.Sparseness()(model=model, x_batch=X.numpy(), y_batch=y, a_batch=None,
        ...                      explain_func=quantus_explain_func(lmac))
    """

    def explain(model: Any = None, inputs: Any = None, targets: Any = None, **kwargs: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        target = None if targets is None else torch.as_tensor(np.asarray(targets)).long().flatten()
        with torch.no_grad():
            a = method.attribute(x, target=target, **attribute_kwargs)
        return a.detach().cpu().numpy()

    return explain


def quantus_sparseness(mask: ArrayLike) -> np.ndarray:
    r"""Per-sample ``quantus.Sparseness`` (Chalasani et al., 2020): Gini index of |M| (higher = sparser).

    0 for a uniform mask, (D−1)/D ≈ 1 for a one-hot mask over D elements. Each sample is divided by
    its own maximum first (Gini is scale-invariant up to Quantus's 1e-7 offset, so the score no
    longer depends on the rest of the batch). The input is never modified.

    Args:
        mask (Tensor or np.ndarray): (N, ...) masks or attributions (|·| is taken).

    Returns:
        np.ndarray: (N,) float64 scores; NaN for an all-zero or non-finite sample (Gini of an empty
        mask is undefined) and for samples with fewer than 2 elements.
    """
    return _quantus_per_sample(quantus.Sparseness, mask, "Sparseness")


def quantus_complexity(mask: ArrayLike) -> np.ndarray:
    r"""Per-sample ``quantus.Complexity`` (Bhatt et al., 2020): entropy of |M| / Σ|M| (lower = simpler).

    0 for a one-hot mask, log(D) for a uniform mask over D elements (so values depend on the
    spectrogram size: compare methods on the same inputs). The input is never modified.

    Args:
        mask (Tensor or np.ndarray): (N, ...) masks or attributions (|·| is taken).

    Returns:
        np.ndarray: (N,) float64 scores (natural log); NaN for an all-zero or non-finite sample
        (Quantus itself divides 0/0 there) and for samples with fewer than 2 elements.
    """
    return _quantus_per_sample(quantus.Complexity, mask, "Complexity")


# --- the same two Quantus scores, vectorised ----------------------------------------------------------
# Quantus 0.6's input checks build a Python set of every attribution value (~0.1-0.2 s per 513×130
# mask here), longer than most attribution methods; the benchmark scores thousands of masks. These
# compute the *same formulas* (Quantus ``Sparseness.evaluate_batch``: Gini of a = |M|/max|M| + 1e-7
# sorted ascending, Σ(2i − D − 1)a_i / (D Σa_i); ``Complexity.evaluate_batch``: −Σ p log(p + 1e-12),
# p = a/Σa) with the same per-sample conventions as the wrappers above (own max, NaN when undefined).
# Tests check equality with the Quantus wrappers; the harness re-checks one sample per batch at run time.


def _fast_prepare(mask: ArrayLike):
    a = torch.as_tensor(mask).detach().cpu().double()
    n = a.shape[0]
    flat = a.reshape(n, -1).abs()
    scores = torch.full((n,), float("nan"), dtype=torch.float64)
    if flat.shape[1] < 2:
        return None, None, scores
    finite = torch.isfinite(flat).all(dim=1)
    peak = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat)).amax(dim=1)
    ok = finite & (peak > 0)
    valid = flat[ok] / peak[ok, None]
    return ok, valid, scores


def fast_sparseness(mask: ArrayLike) -> np.ndarray:
    """Per-sample Gini index of |M| (Quantus ``Sparseness`` formula): (N,) float64, NaN if undefined."""
    ok, valid, scores = _fast_prepare(mask)
    if ok is None or not bool(ok.any()):
        return scores.numpy()
    d = valid.shape[1]
    a = torch.sort(valid + 1e-7, dim=1).values
    w = 2 * torch.arange(1, d + 1, dtype=torch.float64) - d - 1
    scores[ok] = (a * w).sum(dim=1) / (d * a.sum(dim=1))
    return scores.numpy()


def fast_complexity(mask: ArrayLike) -> np.ndarray:
    """Per-sample entropy of |M| / Σ|M| (Quantus ``Complexity`` formula): (N,) float64, NaN if undefined."""
    ok, valid, scores = _fast_prepare(mask)
    if ok is None or not bool(ok.any()):
        return scores.numpy()
    p = valid / valid.sum(dim=1, keepdim=True)
    scores[ok] = -(p * torch.log(p + 1e-12)).sum(dim=1)
    return scores.numpy()


# --- ground truth -------------------------------------------------------------------------------------


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


# --- aggregation ----------------------------------------------------------------------------------------


def aggregate(values: ArrayLike, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> Dict[str, float]:
    r"""Mean of per-sample values with a percentile-bootstrap confidence interval, ignoring NaN.

    Args:
        values: Per-sample values (tensor, array or list); NaN entries (undefined samples) are dropped.
        n_boot (int): Bootstrap resamples. Default 1000.
        seed (int): Seed of the resampling (numpy ``default_rng``), for reproducible reports.
        ci (float): Interval coverage. Default 0.95.

    Returns:
        dict: ``mean``, ``lo``, ``hi`` (the interval) and ``n`` (number of non-NaN values). All NaN
        (and ``n`` 0) if there is no valid value; ``lo == hi == mean`` for a single value.

    Examples::

        >>> aggregate(torch.tensor([1.0, 2.0, float("nan"), 3.0]))["mean"]
        2.0
    """
    if torch.is_tensor(values):
        values = values.detach().cpu().double().numpy()
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    mean = float(v.mean())
    if n == 1 or n_boot < 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": n}
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_boot))
    chunk = max(1, 2_000_000 // n)
    for s in range(0, int(n_boot), chunk):
        k = min(chunk, int(n_boot) - s)
        means[s : s + k] = v[rng.integers(0, n, size=(k, n))].mean(axis=1)
    alpha = (1.0 - float(ci)) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "n": n}


def aggregate_all(
    per_sample: Mapping[str, ArrayLike], keys: Optional[Sequence[str]] = None, **kw: Any
) -> Dict[str, Dict[str, float]]:
    """:func:`aggregate` every entry of a dict of per-sample values (default: all but ``target``)."""
    keys = list(keys) if keys is not None else [k for k in per_sample if k != "target"]
    return {k: aggregate(per_sample[k], **kw) for k in keys}


__all__ = [
    "FAITHFULNESS_KEYS", "HIGHER_IS_BETTER", "faithfulness", "quantus_explain_func", "quantus_sparseness", "quantus_complexity", "fast_sparseness", "fast_complexity",
    "si_sdr", "oracle_mask", "mask_precision_recall", "aggregate", "aggregate_all",
]
