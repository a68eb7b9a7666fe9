r"""Fast, vectorised equivalents of the Quantus Sparseness / Complexity scores used by the harness.

:func:`captum_lmac.metrics.quantus_sparseness` and :func:`~captum_lmac.metrics.quantus_complexity`
call ``quantus.Sparseness`` / ``quantus.Complexity`` (Quantus 0.6). Their input checks build a
Python ``set`` of every attribution value of the batch (``quantus.helpers.asserts.assert_attributions``),
which costs ~0.1-0.2 s per 513×130 mask on these CPUs — longer than most attribution methods. The
benchmark scores thousands of masks, so it computes the *same formulas* here:

- SPS (Gini index, Chalasani et al. 2020, Quantus ``Sparseness.evaluate_batch``): with
  a = |M| / max|M| + 1e-7 sorted ascending over its D elements,
  SPS = Σ_i (2i − D − 1) a_i / (D Σ_i a_i).
- COMP (Bhatt et al. 2020, Quantus ``Complexity.evaluate_batch``): with p = a / Σ a (a = |M| / max|M|),
  COMP = −Σ p log(p + 1e-12).

Same per-sample conventions as the Quantus wrappers: each sample is divided by its own maximum,
an all-zero or non-finite sample (or one with fewer than 2 elements) scores NaN. The tests check
equality with the Quantus wrappers, and the harness re-checks one sample per batch against Quantus
at run time (``quantus_check``).
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]


def _prepare(mask: ArrayLike):
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


def sparseness(mask: ArrayLike) -> np.ndarray:
    """Per-sample Gini index of |M| (Quantus ``Sparseness`` formula): (N,) float64, NaN if undefined."""
    ok, valid, scores = _prepare(mask)
    if ok is None or not bool(ok.any()):
        return scores.numpy()
    d = valid.shape[1]
    a = torch.sort(valid + 1e-7, dim=1).values
    w = 2 * torch.arange(1, d + 1, dtype=torch.float64) - d - 1
    scores[ok] = (a * w).sum(dim=1) / (d * a.sum(dim=1))
    return scores.numpy()


def complexity(mask: ArrayLike) -> np.ndarray:
    """Per-sample entropy of |M| / Σ|M| (Quantus ``Complexity`` formula): (N,) float64, NaN if undefined."""
    ok, valid, scores = _prepare(mask)
    if ok is None or not bool(ok.any()):
        return scores.numpy()
    p = valid / valid.sum(dim=1, keepdim=True)
    scores[ok] = -(p * torch.log(p + 1e-12)).sum(dim=1)
    return scores.numpy()


__all__ = ["sparseness", "complexity"]
