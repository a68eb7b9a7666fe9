"""Metric declarations and scorers: a metric registered from outside shows up in every report."""

import numpy as np
import pytest

from captum_lmac.benchmark import run_benchmark
from captum_lmac.benchmark.report import fmt, label
from captum_lmac.errors import InputError
from captum_lmac.metrics import METRICS, SCORERS, Metric, Scorer, higher_is_better, metric_info, register_scorer


class PeakScorer(Scorer):
    name = "peak"
    metrics = (Metric("PEAK", "Peak ▲", False, 1, "complexity", "largest mask value"),)

    def compute(self, ctx):
        return {"PEAK": ctx.masks.flatten(1).amax(1).double().numpy()}


@pytest.fixture
def peak():
    yield register_scorer(PeakScorer())
    SCORERS.pop("peak")
    METRICS.pop("PEAK")


def test_declarations_are_read_by_reports():
    assert metric_info("FidIn").label == "Fid-In" and higher_is_better("AD") is False
    assert higher_is_better("MM") is False and metric_info("n_comp").higher_is_better is None
    assert metric_info("unknown").higher_is_better is None
    assert label("SI-SDR") == "SI-SDR (dB)" and fmt(1.23456, "AI") == "1.23" and fmt(1.23456, "FF") == "1.235"
    assert list(METRICS)[:6] == ["AI", "AD", "AG", "FF", "FidIn", "MM"]
    for m in METRICS.values():
        assert m.description, m.name
    with pytest.raises(InputError, match="category"):
        Metric("X", "X", True, category="nonsense")
    with pytest.raises(InputError, match="already declared differently"):
        register_scorer(type("Bad", (Scorer,), {"name": "bad", "metrics": (Metric("AI", "ai", False),)})())


def test_a_registered_scorer_appears_in_the_report(peak, tiny, make_config, tmp_path):
    model, stft, data = tiny
    cfg = make_config(methods=["gradcam", "saliency"], conditions=["in-domain"], domains=["stft"],
                      sanity={"enabled": False}, report={"n_examples": 0})
    res = run_benchmark(model, stft, data, config=cfg, out_dir=tmp_path, progress=False)
    vals = {r["method"]: r["metrics"]["PEAK"]["mean"] for r in res["rows"]}
    assert vals["gradcam"] == pytest.approx(1.0) and vals["saliency"] == pytest.approx(1.0)  # / per-sample max
    md = (tmp_path / "results.md").read_text()
    assert "Peak ▲ ↓" in md
    assert "PEAK_mean" in (tmp_path / "results.csv").read_text().splitlines()[0]
    assert np.isfinite(vals["gradcam"])
