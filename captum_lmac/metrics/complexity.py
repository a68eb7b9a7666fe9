r"""Complexity of mask explanations: Quantus Sparseness (Gini index) and Complexity (entropy).

:func:`quantus_sparseness` / :func:`quantus_complexity` call Quantus 0.6 itself, wrapped once so its
traps are handled; :func:`fast_sparseness` / :func:`fast_complexity` compute the same formulas
vectorised (Quantus' input checks take ~0.15 s per mask). The benchmark uses the fast ones and
re-checks one sample against Quantus in each run (:class:`ComplexityScorer`).
:func:`quantus_explain_func` turns any method here into a Quantus ``explain_func``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple, Union, Sequence

import numpy as np
import quantus
import torch
from torch import Tensor

from ..errors import InputError
from .base import EvalContext, Metric, Scorer, register_scorer

ArrayLike = Union[Tensor, np.ndarray, Sequence[float]]

COMPLEXITY = (
    Metric("SPS", "SPS", True, 3, "complexity", "Quantus Sparseness: Gini index of the mask (higher = sparser)"),
    Metric("COMP", "COMP", False, 2, "complexity", "Quantus Complexity: entropy of the normalised mask (lower = simpler)"),
)


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


class _Prepared:
    """|M| per sample (N, D) in its own precision, which samples have a score, and their max."""

    def __init__(self, mask: ArrayLike) -> None:
        a = torch.as_tensor(mask).detach().cpu()
        if a.dtype not in (torch.float32, torch.float64):
            a = a.double()
        n = a.shape[0]
        self.flat = a.reshape(n, -1).abs()
        self.scores = torch.full((n,), float("nan"), dtype=torch.float64)
        self.ok = None
        if self.flat.shape[1] < 2:
            return
        finite = torch.isfinite(self.flat).all(dim=1)
        peak = torch.where(finite[:, None], self.flat, torch.zeros_like(self.flat)).amax(dim=1).double()
        self.ok = finite & (peak > 0)
        self.peak = peak[self.ok, None]

    def normalised(self, values: Tensor) -> Tensor:
        """``values`` (rows of the scored samples, any order) as float64 divided by their sample's max."""
        return values.double() / self.peak


def _row_sums(t: Tensor) -> Tensor:
    """``t.sum(dim=1)`` of a 2-D tensor, each row summed in the same order however many rows there are:
    torch splits the sum of a lone row over its threads (another order, other last bits), so a lone row
    is summed as one of two."""
    if t.shape[0] == 1:
        return torch.cat([t, t]).sum(dim=1)[:1]
    return t.sum(dim=1)


def _gini(prep: _Prepared) -> np.ndarray:
    scores = prep.scores.clone()
    if prep.ok is None or not bool(prep.ok.any()):
        return scores.numpy()
    # Sorting |M| sorts |M| / max + 1e-7 too (a monotone map sends equal values to equal values), so the
    # float64 values come out in the very order Quantus sorts them in; numpy's SIMD sort of the input's own
    # precision is ~3x faster than sorting the float64 copy with torch.
    a = prep.normalised(torch.from_numpy(np.sort(prep.flat[prep.ok].numpy(), axis=1))) + 1e-7
    d = a.shape[1]
    w = 2 * torch.arange(1, d + 1, dtype=torch.float64) - d - 1
    scores[prep.ok] = _row_sums(a * w) / (d * _row_sums(a))
    return scores.numpy()


def _entropy(prep: _Prepared) -> np.ndarray:
    scores = prep.scores.clone()
    if prep.ok is None or not bool(prep.ok.any()):
        return scores.numpy()
    valid = prep.normalised(prep.flat[prep.ok])
    p = valid / _row_sums(valid)[:, None]
    scores[prep.ok] = -_row_sums(p * torch.log(p + 1e-12))
    return scores.numpy()


def fast_sparseness(mask: ArrayLike) -> np.ndarray:
    """Per-sample Gini index of |M| (Quantus ``Sparseness`` formula): (N,) float64, NaN if undefined."""
    return _gini(_Prepared(mask))


def fast_complexity(mask: ArrayLike) -> np.ndarray:
    """Per-sample entropy of |M| / Σ|M| (Quantus ``Complexity`` formula): (N,) float64, NaN if undefined."""
    return _entropy(_Prepared(mask))


#: Elements of |M| scored at a time by :func:`complexity_scores` (float64 temporaries of a few such
#: chunks, ~8 MB each, instead of ~8 copies of the whole batch: +0.6 GB for 80 five-second masks, ~+0.1 GB so).
CHUNK_ELEMENTS = 1 << 20


def _chunked_scores(masks: ArrayLike, chunk_elements: int = CHUNK_ELEMENTS) -> Tuple[np.ndarray, np.ndarray]:
    """(Sparseness, Complexity) of ``masks``, a few samples at a time, each chunk's two scores from one
    preparation. Every score is a reduction over its own sample, summed in one order whatever the
    batch (:func:`_row_sums`), so the scores are bit for bit those of the whole batch at once."""
    if not (torch.is_tensor(masks) or isinstance(masks, np.ndarray)):
        masks = np.asarray(masks)  # nested sequences, as _Prepared takes them
    n = int(masks.shape[0])
    d = max(1, int(np.prod(masks.shape[1:])))
    rows = max(1, int(chunk_elements) // d)
    sps, comp = [], []
    for s in range(0, n, rows):
        prep = _Prepared(masks[s : s + rows])
        sps.append(_gini(prep))
        comp.append(_entropy(prep))
    return np.concatenate(sps), np.concatenate(comp)


def complexity_scores(masks: ArrayLike, mode: str = "fast", check: bool = True,
                      log: Callable[[str], None] = print) -> Tuple[np.ndarray, np.ndarray]:
    """Per-sample (Sparseness, Complexity) of ``masks``.

    ``mode="quantus"`` calls Quantus on the whole batch; ``"fast"`` uses the vectorised formulas and,
    with ``check``, recomputes the first sample with a defined score with Quantus itself, falling
    back to Quantus (and logging a warning) if they differ.
    """
    if mode == "quantus":
        return quantus_sparseness(masks), quantus_complexity(masks)
    if mode != "fast":
        raise InputError(f"quantus must be 'fast' or 'quantus', got {mode!r}")
    sps, comp = _chunked_scores(masks)
    ok = np.flatnonzero(np.isfinite(sps))
    if check and len(ok):
        i = int(ok[0])
        ref_s, ref_c = quantus_sparseness(masks[i : i + 1])[0], quantus_complexity(masks[i : i + 1])[0]
        if not (np.isclose(ref_s, sps[i], rtol=1e-6, atol=1e-9) and np.isclose(ref_c, comp[i], rtol=1e-6, atol=1e-9)):
            log(f"[benchmark] WARNING: fast SPS/COMP differ from Quantus ({sps[i]} vs {ref_s}, {comp[i]} vs {ref_c}); "
                "using Quantus")
            return quantus_sparseness(masks), quantus_complexity(masks)
    return sps, comp


class ComplexityScorer(Scorer):
    """Quantus Sparseness and Complexity of every row (:func:`complexity_scores`)."""

    name = "complexity"
    metrics = COMPLEXITY

    def compute(self, ctx: EvalContext) -> Dict[str, np.ndarray]:
        sps, comp = complexity_scores(ctx.masks, ctx.quantus_mode, ctx.quantus_check, ctx.log)
        return {"SPS": sps, "COMP": comp}


register_scorer(ComplexityScorer())

__all__ = ["COMPLEXITY", "quantus_explain_func", "quantus_sparseness", "quantus_complexity", "fast_sparseness",
           "fast_complexity", "complexity_scores", "ComplexityScorer"]
