r"""ROAR — RemOve And Retrain (Hooker et al., NeurIPS 2019; L-MAC paper, Figure 4 left).

For each method, each share k of removed bins and each seed: the k % most salient time-frequency
bins of every training, validation and test clip (ranked by the method's mask explaining the
original classifier) are set to 0 (silence), a classifier is trained from scratch with the suite's
recipe on the modified training clips and its accuracy on the modified test clips is recorded. An
explanation that points at what the data's label depends on makes the accuracy fall faster than
removing as many random bins (the ``random`` baseline, dashed in the plot). Accuracy at k = 0 is the
recipe retrained on the unmodified clips.

The suite lists ``"roar"`` in ``analyses`` (``captum-lmac benchmark <suite> --roar``); its budget is
the ``roar`` section (:class:`~captum_lmac.benchmark.config.RoarConfig`). A waveform classifier is
retrained on ``ISTFT(X_removed · e^{jP})``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.tensors import SpectrogramSet, with_phase
from ..nn.adapters import bound_slice, using_phase
from .classifiers import train_recipe_classifier
from .harness import AnalysisContext
from .registry import AnalysisSpec, Row, register_analysis

RANDOM = "random"


def removal_masks(scores: Tensor, fraction: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Per clip, 0 on the ``fraction`` highest-scoring bins and 1 elsewhere (ties broken at random)."""
    n = scores.shape[0]
    flat = scores.flatten(1).float()
    k = int(round(float(fraction) * flat.shape[1]))
    keep = torch.ones_like(flat)
    if k > 0:
        jitter = torch.rand(flat.shape, generator=generator) * 1e-6  # a random order among equal scores
        idx = (flat + jitter).topk(k, dim=1).indices
        keep.scatter_(1, idx, 0.0)
    return keep.view(n, *scores.shape[1:])


def _masks(row: Row, model: Any, split: SpectrogramSet, batch_size: int) -> Tensor:
    """The row's masks of every clip of ``split`` (its phase bound for waveform classifiers)."""
    out = []
    n = int(split.waveform.shape[-1])
    with using_phase(model, split.phase, n):
        for s in range(0, len(split), batch_size):
            with torch.enable_grad(), bound_slice(model, s, s + batch_size):
                if row.clips is not None:
                    m = row.clips.masks(split.X[s : s + batch_size], split.phase[s : s + batch_size], n)
                else:
                    m = row.attribute(split.X[s : s + batch_size])
            out.append(m.detach().float().cpu().expand_as(split.X[s : s + batch_size]))
    return torch.cat(out)


def _removed(split: SpectrogramSet, keep: Tensor, stft: Any) -> SpectrogramSet:
    X = split.X * keep
    wave = stft.synthesize(X, split.phase, int(split.waveform.shape[-1]))
    return SpectrogramSet(wave, X, split.phase, split.y, {}, list(split.classes))


def _subset(split: SpectrogramSet, n: Optional[int], stft: Any) -> SpectrogramSet:
    """The first ``n`` clips, with their phase (the removed bins' waveforms are synthesised from it)."""
    return with_phase(split if n is None or n >= len(split) else split.subset(list(range(int(n)))), stft)


def run_roar(ctx: AnalysisContext) -> Optional[Dict[str, Any]]:
    """The ROAR curves of the methods in ``roar.methods`` (``random`` included as the baseline)."""
    rc = ctx.config.roar
    recipe = dict(ctx.config.classifier.recipe)
    if rc.epochs is not None:
        recipe["epochs"] = int(rc.epochs)
    data = ctx.data or {}
    if "train" not in data or "test" not in data:
        ctx.skipped.append("ROAR (needs the training and test splits)")
        return None
    splits = {"train": _subset(data["train"], rc.n_train, ctx.stft),
              "val": _subset(data["val"], rc.n_train, ctx.stft) if "val" in data else None,
              "test": _subset(data["test"], rc.n_test, ctx.stft)}
    splits = {k: v for k, v in splits.items() if v is not None}
    rows = {r.name: r for r in ctx.rows.get("stft", [])}
    methods = [m for m in rc.methods if m == RANDOM or m in rows]
    missing = [m for m in rc.methods if m not in methods]
    if missing:
        ctx.skipped.append(f"ROAR for {missing} (not run in the STFT domain)")
    t0 = time.time()
    scores: Dict[str, Dict[str, Tensor]] = {}
    for m in methods:
        if m == RANDOM:
            continue
        ctx.log(f"[benchmark] ROAR: masks of {m}")
        scores[m] = {k: _masks(rows[m], ctx.model, v, ctx.config.batch_size) for k, v in splits.items()}
    fractions = [float(f) for f in rc.fractions]
    acc: Dict[str, List[List[float]]] = {m: [[] for _ in fractions] for m in methods}
    base: List[float] = []
    jobs = [(seed, None, 0.0) for seed in rc.seeds] + [(seed, m, f) for seed in rc.seeds for m in methods
                                                        for f in fractions]
    bar = tqdm(jobs, desc="ROAR retraining", disable=not ctx.progress, leave=False)
    for seed, m, f in bar:
        g = torch.Generator().manual_seed(1000 * int(seed) + int(round(f * 100)))
        if m is None:
            modified = splits
        else:
            modified = {}
            for k, v in splits.items():
                s = torch.rand(v.X.shape, generator=g) if m == RANDOM else scores[m][k]
                modified[k] = _removed(v, removal_masks(s, f, g), ctx.stft)
        _, info = train_recipe_classifier(ctx.config.suite, recipe, modified, ctx.stft, seed=int(seed), progress=False)
        if m is None:
            base.append(float(info["test_acc"]))
        else:
            acc[m][fractions.index(f)].append(float(info["test_acc"]))
    x = [0.0] + [100 * f for f in fractions]
    series, result_methods = {}, {}
    for m in methods:
        per_k = [base] + acc[m]
        mean = [float(np.mean(v)) for v in per_k]
        sd = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in per_k]
        result_methods[m] = {"accuracy": per_k, "mean": mean, "sd": sd}
        series[m] = {"mean": mean, "lo": [a - b for a, b in zip(mean, sd)], "hi": [a + b for a, b in zip(mean, sd)],
                     "baseline": m == RANDOM}
    ctx.log("[benchmark] ROAR accuracy vs removed %: " + "; ".join(
        f"{m} " + " ".join(f"{v:.2f}" for v in r["mean"]) for m, r in result_methods.items()))
    return {
        "fractions_percent": x, "seeds": list(rc.seeds), "methods": result_methods,
        "recipe": recipe, "n_train": len(splits["train"]), "n_test": len(splits["test"]),
        "seconds": round(time.time() - t0, 1),
        "curves": {"x": x, "x_label": "removed bins (%)", "y_label": "test accuracy after retraining",
                   "title": f"ROAR ({ctx.config.suite}, {len(rc.seeds)} seeds, mean ± sd)", "series": series},
    }


def roar_markdown(res: Dict[str, Any]) -> str:
    """The ROAR curves as a Markdown table (accuracy mean ± sd per removed share)."""
    x = res["fractions_percent"]
    lines = [f"## ROAR: remove the most salient bins and retrain ({len(res['seeds'])} seeds, "
             f"{res['n_train']} training clips, {res['seconds']:.0f} s)", "",
             "| method | " + " | ".join(f"{v:g} %" for v in x) + " |", "|---|" + "---:|" * len(x)]
    for m, r in res["methods"].items():
        lines.append(f"| {m} | " + " | ".join(f"{a:.3f} ± {b:.3f}" for a, b in zip(r["mean"], r["sd"])) + " |")
    lines += ["", "A method whose curve falls below `random` removed more of what the label depends on."]
    return "\n".join(lines) + "\n"


register_analysis(AnalysisSpec(name="roar", run=run_roar, markdown=roar_markdown,
                               description="ROAR: accuracy of a classifier retrained without the most salient bins"))

__all__ = ["RANDOM", "removal_masks", "run_roar", "roar_markdown"]
