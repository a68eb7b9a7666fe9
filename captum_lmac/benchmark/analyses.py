r"""Suite-level analyses run after the per-clip metrics, registered in
:mod:`captum_lmac.benchmark.registry` (a suite lists them in ``analyses``; ``sanity`` runs when
``sanity.enabled``):

- ``sanity`` — cascading model randomisation (Adebayo et al., 2018): SSIM between each method's
  explanation of the original classifier and of copies randomised from the logits down
  (:func:`captum_lmac.metrics.cascading_randomisation`), with its plot and each method's chance
  level (SSIM with another clip's explanation). Gradient methods are recomputed on the randomised
  classifier. A learned method is reported twice: ``lmac`` keeps its fitted decoder at every stage
  (does the fitted explainer read what the classifier learnt?), ``lmac (refit)`` is fitted again on
  the randomised classifier with the suite's fit settings (``sanity.refit``: ``"last"`` — the
  default, one extra fit with everything randomised —, ``"all"`` or ``"none"``; ``sanity.refit_epochs``).
  The refitted row is the like-with-like comparison with the recomputed baselines — the same
  procedure, fit included, on the randomised classifier — and the one the L-MAC goal (SSIM ≤ 0.3
  after all blocks, issue 14) is measured on; the fixed-decoder cascade shows how the explanation
  degrades block by block;
- ``zeroshot_behaviour`` — the LMAC-ZS paper's checks on a zero-shot classifier: mask mean vs
  prompt–audio similarity over every (clip, class prompt) pair (Pearson / Spearman, LMAC-ZS vs
  GradCAM++) and the mask of prompts unrelated to every class (should be (near) empty).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy import stats as scipy_stats
from torch import Tensor
from tqdm.auto import tqdm

from ..attr.baselines import make_baseline
from ..data.captions import UNRELATED_PROMPTS
from ..metrics import cascading_randomisation, randomisation_stages
from ..nn.adapters import using_phase
from ..nn.zeroshot import ZeroShotClassifier
from .harness import AnalysisContext
from .media import plot_cascading, similarity_scatter_plot, zeroshot_example_plot
from .registry import AnalysisSpec, register_analysis


# --- cascading randomisation -----------------------------------------------------------------------


def run_sanity(ctx: AnalysisContext) -> Optional[Dict[str, Any]]:
    """The cascading-randomisation check on the first ``sanity.n_clips`` test clips (STFT domain)."""
    rows = ctx.rows.get("stft", [])
    if not rows:
        return None
    wanted = list(ctx.config.sanity.methods)
    n = int(ctx.config.sanity.n_clips)
    phase, length = ctx.test.phase[:n], int(ctx.test.waveform.shape[-1])
    explainers = {r.name: r.explainer for r in rows if r.name in wanted and r.explainer is not None}
    for r in rows:  # methods that explain the clips: their fitted networks on the randomised classifier
        if r.name in wanted and r.clips is not None and hasattr(r.clips, "on"):
            explainers[r.name] = lambda m, X, t, r=r: r.clips.on(m).masks(X, phase, length)
    if not explainers:
        ctx.skipped.append(f"sanity check (none of {wanted} was run in the STFT domain)")
        return None
    stages = randomisation_stages(ctx.model)
    refit_mode, refit_epochs = ctx.config.sanity.refit, ctx.config.sanity.refit_epochs
    only: Dict[str, List[int]] = {}
    refits: Dict[str, Any] = {}
    if refit_mode != "none":
        for r in rows:
            if r.name in wanted and r.refit is not None:
                name = f"{r.name} (refit)"
                explainers[name] = r.refit(refit_epochs)
                only[name] = [len(stages)] if refit_mode == "last" else list(range(1, len(stages) + 1))
                refits[name] = r.refit
    Xs = ctx.test.X[:n]
    with using_phase(ctx.model, ctx.test.phase[:n], ctx.test.waveform.shape[-1]):  # waveform models
        res = cascading_randomisation(ctx.model, Xs, explainers, seed=ctx.seed, stages=stages,
                                      progress=ctx.progress, only=only)
    res["decoder"] = {name: ("refitted on the randomised classifier" if name in refits else
                             "fitted decoder kept, reading the randomised classifier") for name in res["methods"]
                      if name in refits or any(r.name == name and r.kind == "learned" for r in rows)}
    if refits:
        res["refit"] = {"mode": refit_mode, "epochs": refit_epochs,
                        "fits": {name: list(getattr(fn, "fits", [])) for name, fn in refits.items()}}
    if ctx.out_dir is not None:
        plot_cascading(res, ctx.out_dir / "sanity_cascading.png",
                       title=f"Cascading randomisation ({ctx.config.suite}, n = {Xs.shape[0]})")
        res["plot"] = "sanity_cascading.png"
    for name, r in res["methods"].items():
        ctx.log(f"[benchmark] sanity {name}: SSIM " + " ".join("–" if v is None else f"{v:.2f}" for v in r["mean"])
                + ("" if r.get("chance") is None else f" (another clip's explanation: {r['chance']:.2f})"))
    return res


register_analysis(AnalysisSpec(name="sanity", run=run_sanity,
                               description="cascading model randomisation (SSIM vs randomisation depth)"))


# --- zero-shot behaviour ---------------------------------------------------------------------------

Explain = Callable[..., Tensor]


def _pearson_spearman(x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": float("nan"), "pearson_p": float("nan"), "spearman": float("nan"), "spearman_p": float("nan"), "n": int(x.size)}
    pr = scipy_stats.pearsonr(x, y)
    sr = scipy_stats.spearmanr(x, y)
    return {"pearson": float(pr[0]), "pearson_p": float(pr[1]), "spearman": float(sr[0]), "spearman_p": float(sr[1]),
            "n": int(x.size)}


def similarity_vs_mask_mean(
    zs: ZeroShotClassifier, X: Tensor, explainers: Dict[str, Callable[..., Tensor]], progress: bool = False
) -> Dict[str, Any]:
    """Mask mean vs prompt–audio similarity t_j·a over every (clip, prompt j) pair.

    Returns per method the correlations and the raw pairs (``similarity``, ``mask_mean``).
    """
    with torch.no_grad():
        sims = zs.similarity(X).cpu()  # (N, P), unscaled cosine similarities
    n, p = sims.shape
    out: Dict[str, Any] = {"n_clips": n, "n_prompts": p, "similarity": sims.flatten().tolist(), "methods": {}}
    for name, explain in explainers.items():
        mm = torch.zeros(n, p)
        for j in tqdm(range(p), desc=f"{name}: every prompt", disable=not progress, leave=False):
            mm[:, j] = explain(X, target=j).flatten(1).mean(1).cpu()
        stats = _pearson_spearman(sims.flatten().numpy(), mm.flatten().numpy())
        out["methods"][name] = {**stats, "mask_mean": mm.flatten().tolist()}
    return out


def unrelated_prompt_check(
    zs: ZeroShotClassifier, lmac_zs: Any, X: Tensor, y: Tensor, unrelated: Sequence[str] = UNRELATED_PROMPTS,
    gradcampp_layer: Optional[torch.nn.Module] = None,
) -> Dict[str, Any]:
    """Mean mask (MM) for the true-class prompt, the decided prompt and prompts unrelated to every class.

    LMAC-ZS gets the extended prompt list directly (any prompt works); GradCAM++ runs on a
    zero-shot model over the extended list (same encoders) for comparison.
    """
    prompts = zs.prompts + list(unrelated)
    k = len(zs.prompts)
    with torch.no_grad():
        pred = zs.predict(X)
    ext = ZeroShotClassifier(zs.audio_encoder, zs.text_encoder, prompts, logit_scale=zs.logit_scale).eval()
    gcpp = make_baseline("gradcam++", ext, layer=gradcampp_layer or zs.audio_encoder.net.blocks[-1])
    runs = {
        "lmac_zs": lambda t: lmac_zs.attribute(X, target=t, prompts=prompts),
        "gradcam++": lambda t: gcpp.attribute(X, target=t),
    }
    res: Dict[str, Any] = {"unrelated_prompts": list(unrelated)}
    for name, fn in runs.items():
        mm_true = fn(y.tolist()).flatten(1).mean(1)
        mm_pred = fn(pred.tolist()).flatten(1).mean(1)
        per = {u: float(fn(k + i).flatten(1).mean(1).mean()) for i, u in enumerate(unrelated)}
        right = (pred.cpu() == y.cpu()).view(-1)
        own = mm_true.cpu()[right]
        res[name] = {
            # the mask of a clip's own class where the model is right: it should never be (near) empty
            "own_class_when_right": {"n": int(right.sum()), "mm_min": float(own.min()) if own.numel() else float("nan"),
                                     "n_below_0.01": int((own < 0.01).sum())},
            "mm_true_class_prompt": float(mm_true.mean()),
            "mm_decided_prompt": float(mm_pred.mean()),
            "mm_unrelated": per,
            "mm_unrelated_mean": float(np.mean(list(per.values()))),
        }
    with torch.no_grad():
        sims = ext.similarity(X).cpu()
    res["similarity_true_class_mean"] = float(sims.gather(1, y.view(-1, 1)).mean())
    res["similarity_unrelated_mean"] = float(sims[:, k:].mean())
    return res



def run_zeroshot_behaviour(ctx: AnalysisContext) -> Optional[Dict[str, Any]]:
    """Mask mean vs similarity and the unrelated-prompt check for the ``lmac_zs`` row against GradCAM++."""
    zs = ctx.model
    if not isinstance(zs, ZeroShotClassifier):
        ctx.skipped.append("zero-shot behaviour checks (the classifier is not a ZeroShotClassifier)")
        return None
    rows = {r.base: r for r in ctx.rows.get("stft", [])}
    if "lmac_zs" not in rows:
        ctx.skipped.append("zero-shot behaviour checks (no lmac_zs row)")
        return None
    lmac_zs = rows["lmac_zs"].method
    layer = zs.get_submodule(ctx.config.cam_layer) if ctx.config.cam_layer else zs.audio_encoder.net.blocks[-1]
    gcpp = make_baseline("gradcam++", zs, layer=layer)
    explainers: Dict[str, Explain] = {
        "lmac_zs": lambda X, target=None: lmac_zs.attribute(X, target=target),
        "gradcam++": lambda X, target=None: gcpp.attribute(X, target=target),
    }
    X, y = ctx.test.X, ctx.test.y
    ctx.log("[benchmark] zero-shot behaviour: mask mean vs similarity")
    corr = similarity_vs_mask_mean(zs, X, explainers, ctx.progress)
    ctx.log("[benchmark] zero-shot behaviour: unrelated prompts")
    unrel = unrelated_prompt_check(zs, lmac_zs, X, y, gradcampp_layer=layer)
    out: Dict[str, Any] = {"correlation": corr, "unrelated": unrel}
    if ctx.out_dir is not None:
        similarity_scatter_plot(corr, ctx.out_dir / "zeroshot_mm_vs_similarity.png",
                                f"{ctx.config.suite}: every (clip, class prompt) pair")
        zeroshot_example_plot(zs, lmac_zs, X, y, ctx.out_dir / "zeroshot_examples.png")
        out["plots"] = ["zeroshot_mm_vs_similarity.png", "zeroshot_examples.png"]
    return out


def zeroshot_markdown(res: Dict[str, Any]) -> str:
    """The behaviour checks as Markdown (correlations, unrelated-prompt mask means)."""
    lines: List[str] = []
    corr = res.get("correlation")
    if corr:
        lines += ["## Mask mean vs prompt–audio similarity", "",
                  f"{corr['n_clips']} clips × {corr['n_prompts']} prompts = {corr['n_clips'] * corr['n_prompts']} pairs.",
                  "", "| method | Pearson r | Spearman ρ |", "|---|---|---|"]
        for name, m in corr["methods"].items():
            lines.append(f"| {name} | {m['pearson']:.3f} | {m['spearman']:.3f} |")
    unrel = res.get("unrelated")
    if unrel:
        prompts = unrel["unrelated_prompts"]
        lines += ["", "## Unrelated prompts", "",
                  f"Mean cosine similarity: true-class prompt {unrel['similarity_true_class_mean']:.3f}, "
                  f"unrelated prompts {unrel['similarity_unrelated_mean']:.3f}.", "",
                  "| method | MM true-class prompt | MM decided prompt | MM unrelated (mean) | "
                  + " | ".join(f"'{u}'" for u in prompts) + " |",
                  "|---|---|---|---|" + "---|" * len(prompts)]
        for name in ("lmac_zs", "gradcam++"):
            u = unrel[name]
            lines.append(f"| {name} | {u['mm_true_class_prompt']:.3f} | {u['mm_decided_prompt']:.3f} | "
                         f"{u['mm_unrelated_mean']:.3f} | " + " | ".join(f"{u['mm_unrelated'][p]:.3f}" for p in prompts) + " |")
        own = {name: unrel[name].get("own_class_when_right") for name in ("lmac_zs", "gradcam++")}
        if all(own.values()):
            lines += ["", f"Clips the model gets right: {own['lmac_zs']['n']}. Their true-class masks:", "",
                      "| method | min MM | clips with MM < 0.01 |", "|---|---|---|"]
            for name, o in own.items():
                lines.append(f"| {name} | {o['mm_min']:.3f} | {o['n_below_0.01']} |")
    for p in res.get("plots", []):
        lines += ["", f"![{p}]({p})"]
    return "\n".join(lines) + "\n"


register_analysis(AnalysisSpec(name="zeroshot_behaviour", run=run_zeroshot_behaviour, markdown=zeroshot_markdown,
                               description="LMAC-ZS behaviour checks: mask mean vs similarity, unrelated prompts"))

__all__ = ["run_sanity", "run_zeroshot_behaviour", "similarity_vs_mask_mean", "unrelated_prompt_check",
           "zeroshot_markdown"]
