r"""Aggregation of per-sample metric values: mean (and median) with a bootstrap interval."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray, Sequence[float]]


def aggregate(values: ArrayLike, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> Dict[str, float]:
    r"""Mean of per-sample values with a percentile-bootstrap confidence interval, ignoring NaN.

    Args:
        values: Per-sample values (tensor, array or list); NaN entries (undefined samples) are dropped.
        n_boot (int): Bootstrap resamples. Default 1000.
        seed (int): Seed of the resampling (numpy ``default_rng``), for reproducible reports.
        ci (float): Interval coverage. Default 0.95.

    Returns:
        dict: ``mean``, ``lo``, ``hi`` (the interval of the mean), ``median`` and ``n`` (number of
        non-NaN values). All NaN (and ``n`` 0) if there is no valid value; ``lo == hi == mean`` for a
        single value.

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
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "median": float("nan"), "n": 0}
    mean, median = float(v.mean()), float(np.median(v))
    if n == 1 or n_boot < 1:
        return {"mean": mean, "lo": mean, "hi": mean, "median": median, "n": n}
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_boot))
    chunk = max(1, 2_000_000 // n)
    for s in range(0, int(n_boot), chunk):
        k = min(chunk, int(n_boot) - s)
        means[s : s + k] = v[rng.integers(0, n, size=(k, n))].mean(axis=1)
    alpha = (1.0 - float(ci)) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "median": median, "n": n}


def aggregate_all(
    per_sample: Mapping[str, ArrayLike], keys: Optional[Sequence[str]] = None, **kw: Any
) -> Dict[str, Dict[str, float]]:
    """:func:`aggregate` every entry of a dict of per-sample values (default: all but ``target``)."""
    keys = list(keys) if keys is not None else [k for k in per_sample if k != "target"]
    return {k: aggregate(per_sample[k], **kw) for k in keys}



__all__ = ["aggregate", "aggregate_all"]
