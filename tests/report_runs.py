"""Runs the report tests share (each built once per test process, on first use):

- :func:`crnn_run` — a tiny benchmark of a second classifier (a CRNN from the zoo) with a toy
  suite-level analysis ``deletion_curve`` that returns curves and a plot of its own (the report's
  analysis hooks);
- :func:`demo_run` — ``captum-lmac demo --tiny``;
- :func:`rerendered_run` — a copy of a results folder re-rendered by ``captum-lmac report`` after its
  page, tables, figures and two of its clips' media files were deleted.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from captum_lmac.benchmark import run_benchmark
from captum_lmac.benchmark.plots import curve_plot
from captum_lmac.benchmark.registry import ANALYSES, AnalysisSpec, register_analysis
from captum_lmac.cli import main as cli_main
from captum_lmac.nn.zoo import build_architecture
from captum_lmac.training import accuracy, train_classifier

DELETION = "deletion_curve"
CRNN_DESCRIPTION = "CRNN (width 4) on LogMel"
_BUILT: Dict[str, Any] = {}


def deletion_curve(ctx) -> Optional[Dict[str, Any]]:
    """Accuracy of the classifier when the top-k % of each method's mask is zeroed (no retraining),
    against zeroing k % of the bins at random: a deletion curve, in the shape the report draws."""
    X, y = ctx.test.X, ctx.test.y
    ks = [0, 25, 50, 75]
    g = torch.Generator().manual_seed(ctx.seed)
    rand = torch.rand(X.shape, generator=g)
    series = {}
    with torch.no_grad():
        def acc_removed(score):
            out = []
            for k in ks:
                flat = score.flatten(1)
                n = int(round(flat.shape[1] * k / 100))
                keep = torch.ones_like(flat)
                if n:
                    keep.scatter_(1, flat.topk(n, dim=1).indices, 0.0)
                out.append(accuracy(ctx.model, X * keep.view_as(X), y))
            return out

        for row in ctx.rows.get("stft", []):
            with torch.enable_grad():
                masks = row.attribute(X).detach()
            series[row.name] = {"mean": acc_removed(masks)}
        series["random"] = {"mean": acc_removed(rand), "baseline": True}
    curves = {"x": ks, "x_label": "bins removed (%)", "y_label": "accuracy", "series": series,
              "title": "deletion curve (no retraining)"}
    out: Dict[str, Any] = {"curves": curves}
    if ctx.out_dir is not None:
        curve_plot(curves, ctx.out_dir / "deletion_predrawn.png", title="drawn while the analysis ran")
        out["plots"] = ["deletion_predrawn.png"]
    return out


def crnn_run(root: Path, tiny: Tuple[Any, Any, Any]) -> Tuple[Dict[str, Any], Path]:
    """``(results, out_dir)`` of a tiny benchmark on a CRNN (GradCAM, Saliency; in-domain and white
    noise; STFT domain) with the ``deletion_curve`` analysis."""
    if "crnn" not in _BUILT:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # torch.gru on 2 threads shared with other jobs is ~20x slower than on one
        try:
            _BUILT["crnn"] = _crnn_run(Path(root), tiny)
        finally:
            torch.set_num_threads(threads)
    return _BUILT["crnn"]


def _crnn_run(root: Path, tiny: Tuple[Any, Any, Any]) -> Tuple[Dict[str, Any], Path]:
    _, stft, data = tiny
    torch.manual_seed(1)
    model, info = build_architecture("crnn", 3, stft, width=4, n_mels=16)
    tr, va, te = data["train"], data["val"], data["test"]
    train_classifier(model, tr.X, tr.y, va.X, va.y, epochs=2, progress=False)
    model.eval()
    out = Path(root) / "crnn_out"
    register_analysis(AnalysisSpec(name=DELETION, run=deletion_curve,
                                   description="toy deletion curve (report hook test)"), overwrite=True)
    try:
        cfg = {"suite": "tiny-crnn", "methods": ["gradcam", "saliency"], "conditions": ["in-domain", "white"],
               "domains": ["stft"], "n_test": 6, "cam_layer": info["cam_layer"], "sanity": {"enabled": False},
               "analyses": [DELETION], "report": {"n_examples": 1}}
        res = run_benchmark(model, stft, data, config=cfg, snr=3.0, out_dir=out, progress=False,
                            classifier_info={"description": CRNN_DESCRIPTION,
                                             "test_acc": accuracy(model, te.X, te.y)})
    finally:
        ANALYSES.pop(DELETION, None)  # the results keep the analysis; the registry is left as it was
    return res, out


def demo_run(root: Path) -> Path:
    """The output folder of ``captum-lmac demo --tiny``."""
    if "demo" not in _BUILT:
        out = Path(root) / "demo_out"
        rc = cli_main(["demo", "--tiny", "--out", str(out), "--cache", str(Path(root) / "demo_cache")])
        assert rc == 0
        _BUILT["demo"] = out
    return _BUILT["demo"]


RERENDER_GONE = ("media/white_clip0_lmac.wav", "media/white_clip0_lmac_masked.png")
"""The media files :func:`rerendered_run` deletes before re-rendering."""


def rerendered_run(root: Path, out: Path) -> Tuple[Path, Dict[str, Any]]:
    """``(folder, info)``: a copy of ``out`` without ``report.html``, ``results.md``, ``results.csv``,
    ``sanity_cascading.png``, ``figures/`` and :data:`RERENDER_GONE`, re-rendered by ``captum-lmac report``.
    ``info``: exit status, stdout and stderr of the command, and the media files' modification times
    before it ran."""
    if "rerendered" not in _BUILT:
        dst = Path(root) / "rerendered"
        shutil.copytree(out, dst)
        for name in ("report.html", "results.md", "results.csv", "sanity_cascading.png") + RERENDER_GONE:
            (dst / name).unlink()
        shutil.rmtree(dst / "figures")
        media = {p.name: p.stat().st_mtime_ns for p in (dst / "media").iterdir()}
        json_bytes = (dst / "results.json").read_bytes()
        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            rc = cli_main(["report", str(dst)])
        _BUILT["rerendered"] = (dst, {"rc": rc, "stdout": so.getvalue(), "stderr": se.getvalue(), "media": media,
                                      "results_json": json_bytes})
    return _BUILT["rerendered"]
