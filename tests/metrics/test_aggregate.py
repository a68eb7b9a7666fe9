"""Aggregation: mean, median and bootstrap interval, NaN skipped."""

import math

import numpy as np
import pytest
import torch

from captum_lmac.metrics import aggregate, aggregate_all


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

