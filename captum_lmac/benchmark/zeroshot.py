r"""Zero-shot benchmark: LMAC-ZS vs Captum baselines on a CLAP-style classifier (ESC-10 fold 5).

The classifier is :class:`~captum_lmac.nn.zeroshot.ZeroShotClassifier` over the prompts
``"this is the sound of <label>"`` built on the small CLAP of :mod:`captum_lmac.benchmark.clap`.
Its output is ``logit_scale · t_j·a`` so the class probabilities the metrics use are
``p(c = j) = softmax_j(logit_scale · t_j·a)`` (the CLAP decision rule); the explained class is the
zero-shot decision ``c = argmax_j t_j·a`` on the (possibly contaminated) input.

Rows: LMAC-ZS (decoder fitted on ESC-10 folds 1-3 with varied captions, plus a few FSDD and
ambient clips for caption variety; fold 4 picks the epoch), GradCAM, GradCAM++ (layer: the last
CompactCNN block of the audio encoder), SmoothGrad, Integrated Gradients — all via
:func:`~captum_lmac.attr.make_baseline` on the zero-shot model with ``target`` = prompt index.
Baseline attributions become masks by the library's one rule (|a| or ReLU for CAMs, upsampled,
divided by the per-sample max).

Metrics per sample, aggregated with a bootstrap 95 % interval: AI, AD, AG, FF, Fid-In, MM
(:func:`~captum_lmac.metrics.faithfulness`), SPS and COMP (Quantus Sparseness / Complexity).
Conditions: in-domain, and the papers' three contaminations (another ESC-10 test clip of a
different class, white noise, LJSpeech speech) at an SNR of 3 dB by default (a parameter).

Behaviour checks from the LMAC-ZS paper:

- mask mean vs prompt–audio similarity over every (clip, prompt) pair with all 10 class prompts
  (Pearson and Spearman correlation; LMAC-ZS vs GradCAM++), with a scatter plot;
- prompts unrelated to every class ("this is the sound of a violin", "a person typing on a
  keyboard", ...) should give (near) empty LMAC-ZS masks: mean MM for the true-class prompt, the
  decided prompt and the unrelated prompts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._io import atomic_write
from ..attr.baselines import make_baseline
from ..attr.lmac_zs import LMACZS
from ..audio import STFT
from ..data.contamination import PAPER_SNR_DB, ContaminatedDataset
from ..data.folders import ESC50, default_data_root
from ..errors import CheckpointError, InputError
from ..metrics import FAITHFULNESS_KEYS, aggregate, faithfulness, quantus_complexity, quantus_sparseness
from ..nn.zeroshot import ZeroShotClassifier
from .clap import (
    DURATION,
    UNRELATED_PROMPTS,
    ZS_STFT,
    build_training_set,
    class_prompts,
    esc10_captions,
    esc10_split,
    get_clap,
    magnitudes,
)

PathLike = Union[str, Path]

#: Methods of the zero-shot table, in report order.
ZS_METHODS = ("lmac_zs", "gradcam", "gradcam++", "smoothgrad", "ig")

#: Conditions: in-domain and the papers' three contaminations.
ZS_CONDITIONS = ("in-domain", "clip", "white", "speech")

#: Metric columns of the tables, in order.
METRIC_COLUMNS = ("AI", "AD", "AG", "FF", "FidIn", "SPS", "COMP", "MM")

_HIGHER = {"AI": True, "AD": False, "AG": True, "FF": True, "FidIn": True, "SPS": True, "COMP": False, "MM": None}

#: LMAC-ZS recipe of the benchmark (decoder + :meth:`LMACZS.fit` settings + extra caption data).
LMACZS_CONFIG: Dict[str, Any] = dict(
    layers=("net.block2", "net.block3", "net.block4"), hidden=32, use_input=True,
    epochs=12, batch_size=8, lr=3e-3, weight_decay=2e-6,
    lambda_sim=1.0, lambda_l1=0.25, lambda_div=1.0, texts_per_audio=None,
    fsdd_per_digit=3, ambient_segments_per_file=1, val_clips=40, max_train_clips=None,
)

_FIT_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "lambda_sim", "lambda_l1", "lambda_div", "texts_per_audio")

#: Method options (fast enough for the shared CPU; see the baselines' docs).
BASELINE_OPTIONS: Dict[str, Dict[str, Any]] = {
    "gradcam": {}, "gradcam++": {}, "smoothgrad": dict(nt_samples=10, noise_level=0.15),
    "ig": dict(n_steps=32, internal_batch_size=32),
}


# ------------------------------------------------------------------------------------------ data


def test_conditions(
    data_root: Optional[PathLike] = None,
    conditions: Sequence[str] = ZS_CONDITIONS,
    snr_db: float = PAPER_SNR_DB,
    seed: int = 0,
    limit: Optional[int] = None,
    progress: bool = False,
) -> Dict[str, Dict[str, Any]]:
    """ESC-10 fold 5 waveforms per condition: ``{cond: {"waveform", "y", "snr_db", "classes"}}``.

    Contaminations (:class:`~captum_lmac.data.ContaminatedDataset`, item i depends on (seed, i)):
    ``"clip"`` another fold-5 clip of a different class, ``"white"`` white noise, ``"speech"``
    LJSpeech excerpts from ``<data root>/ljspeech32`` (22.05 kHz, resampled), at ``snr_db``.
    """
    root = Path(data_root) if data_root is not None else default_data_root()
    base = ESC50(root / "esc10", folds=5, sample_rate=ZS_STFT["sample_rate"], duration=DURATION)
    n = len(base) if limit is None else min(int(limit), len(base))
    out: Dict[str, Dict[str, Any]] = {}
    for cond in conditions:
        if cond == "in-domain":
            ds, snr = base, None
        elif cond in ("clip", "white", "speech", "ambient"):
            source = {"speech": root / "ljspeech32", "ambient": root / "ambient"}.get(cond)
            ds, snr = ContaminatedDataset(base, cond, snr_db=snr_db, source=source, seed=seed), float(snr_db)
        else:
            raise InputError(f"unknown condition {cond!r}; choose from {list(ZS_CONDITIONS) + ['ambient']}")
        waves, ys = [], []
        for i in tqdm(range(n), desc=f"reading fold 5 ({cond})", disable=not progress, leave=False):
            w, y, _ = ds[i]
            waves.append(w)
            ys.append(int(y))
        out[cond] = {"waveform": torch.stack(waves), "y": torch.tensor(ys), "snr_db": snr, "classes": list(base.classes)}
    return out


def lmac_zs_training_data(
    stft: STFT, data_root: Optional[PathLike], cfg: Dict[str, Any], seed: int = 0, progress: bool = False
) -> Tuple[Tuple[Tensor, List[List[str]]], Tuple[Tensor, List[List[str]]]]:
    """``(X, captions)`` for fitting LMAC-ZS (ESC-10 folds 1-3 + a few FSDD / ambient clips) and
    ``(X, captions)`` for validation (``val_clips`` clips of fold 4, first caption = "the sound of ...")."""
    data = build_training_set(data_root, cfg["fsdd_per_digit"], cfg["ambient_segments_per_file"], seed, progress)
    keep = torch.arange(len(data))
    if cfg.get("max_train_clips") and int(cfg["max_train_clips"]) < len(data):  # quick runs: evenly spaced subset
        keep = torch.linspace(0, len(data) - 1, int(cfg["max_train_clips"])).long()
    X, _ = magnitudes(stft, data.waveform[keep])
    captions = [data.captions[int(i)] for i in keep]
    w_val, y_val, classes = esc10_split(data_root, 4, progress)
    k = min(int(cfg["val_clips"]), w_val.shape[0])
    idx = torch.linspace(0, w_val.shape[0] - 1, k).long()  # spread over the classes
    X_val, _ = magnitudes(stft, w_val[idx])
    caps_val = [esc10_captions(classes[int(y_val[i])]) for i in idx]
    return (X, captions), (X_val, caps_val)


# ------------------------------------------------------------------------------------------ LMAC-ZS


def fit_or_load_lmac_zs(
    zs: ZeroShotClassifier,
    train: Tuple[Tensor, List[List[str]]],
    val: Tuple[Tensor, List[List[str]]],
    cfg: Dict[str, Any],
    cache_file: Optional[PathLike] = None,
    seed: int = 0,
    progress: bool = True,
    refit: bool = False,
) -> Tuple[LMACZS, Dict[str, Any]]:
    """Fit LMAC-ZS on the zero-shot model (or reuse ``cache_file`` if fitted with the same settings).

    Returns ``(lmac_zs, info)`` with the fit history summary and whether the cache was used.
    """
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    settings["seed"] = seed
    if cache_file is not None and Path(cache_file).is_file() and not refit:
        try:
            obj = LMACZS.load(cache_file, zs)
            if obj.history.get("benchmark") == settings:
                return obj, {"cached": True, **_history_summary(obj.history)}
        except CheckpointError:
            pass
    obj = LMACZS(zs, layers=list(cfg["layers"]), hidden=cfg["hidden"], use_input=cfg["use_input"])
    hist = obj.fit(train, val=val, seed=seed, progress=progress, **{k: cfg[k] for k in _FIT_KEYS})
    hist["benchmark"] = settings
    obj.history = hist
    if cache_file is not None:
        obj.save(cache_file)
    return obj, {"cached": False, **_history_summary(hist)}


def _history_summary(hist: Dict[str, Any]) -> Dict[str, Any]:
    keep = ("loss", "sim", "l1", "div", "mm_own", "mm_other", "val_loss", "val_sim", "val_div", "val_mm_own",
            "val_mm_other")
    out = {k: hist[k] for k in keep if k in hist}
    for k in ("best_epoch", "seconds", "decoder_parameters"):
        if k in hist:
            out[k] = hist[k]
    return out


# ------------------------------------------------------------------------------------------ explaining


def build_explainers(zs: ZeroShotClassifier, lmac_zs: Optional[LMACZS], methods: Sequence[str] = ZS_METHODS,
                     cam_layer: Optional[torch.nn.Module] = None, options: Optional[Dict[str, Dict[str, Any]]] = None
                     ) -> Dict[str, Callable[..., Tensor]]:
    """``{name: explain(X, target=None) -> mask}``; targets are prompt indices (None = zero-shot decision)."""
    layer = cam_layer if cam_layer is not None else zs.audio_encoder.net.blocks[-1]
    opts = {**BASELINE_OPTIONS, **(options or {})}
    out: Dict[str, Callable[..., Tensor]] = {}
    for name in methods:
        if name == "lmac_zs":
            if lmac_zs is None:
                raise InputError("the lmac_zs row needs a fitted LMACZS")
            out[name] = lambda X, target=None, _m=lmac_zs: _m.attribute(X, target=target)
        else:
            base = make_baseline(name, zs, layer=layer if name in ("gradcam", "gradcam++") else None,
                                 **opts.get(name, {}))
            out[name] = lambda X, target=None, _b=base: _b.attribute(X, target=target)
    return out


def condition_metrics(zs: ZeroShotClassifier, X: Tensor, mask: Tensor) -> Dict[str, np.ndarray]:
    """Per-sample AI, AD, AG, FF, Fid-In, MM (p = softmax of the scaled prompt similarities), SPS, COMP."""
    m = faithfulness(zs, X, mask)
    out = {k: m[k].numpy() for k in FAITHFULNESS_KEYS}
    out["SPS"] = quantus_sparseness(mask)
    out["COMP"] = quantus_complexity(mask)
    out["p_X"] = m["p_X"].numpy()
    return out


def run_condition(
    zs: ZeroShotClassifier, X: Tensor, y: Tensor, explainers: Dict[str, Callable[..., Tensor]],
    progress: bool = False,
) -> Dict[str, Any]:
    """Every method on one condition: aggregated metrics, seconds, zero-shot accuracy."""
    with torch.no_grad():
        pred = zs.predict(X)
    res: Dict[str, Any] = {"n": int(X.shape[0]), "zs_accuracy": float((pred.cpu() == y).float().mean()), "methods": {}}
    for name, explain in tqdm(explainers.items(), desc="methods", disable=not progress, leave=False):
        t0 = time.time()
        mask = explain(X)
        secs = time.time() - t0
        per = condition_metrics(zs, X, mask)
        res["methods"][name] = {
            "metrics": {k: aggregate(per[k]) for k in METRIC_COLUMNS},
            "seconds": secs, "seconds_per_clip": secs / X.shape[0],
        }
    return res


# ------------------------------------------------------------------------------------------ behaviour checks


def _pearson_spearman(x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
    from scipy import stats  # noqa: PLC0415

    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": float("nan"), "pearson_p": float("nan"), "spearman": float("nan"), "spearman_p": float("nan"), "n": int(x.size)}
    pr = stats.pearsonr(x, y)
    sr = stats.spearmanr(x, y)
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
    zs: ZeroShotClassifier, lmac_zs: LMACZS, X: Tensor, y: Tensor, unrelated: Sequence[str] = UNRELATED_PROMPTS,
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
        res[name] = {
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


def scatter_plot(corr: Dict[str, Any], path: PathLike, title: str = "") -> Path:
    """Scatter plots of mask mean vs prompt–audio similarity, one panel per method (PNG)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(corr["methods"])
    sims = np.asarray(corr["similarity"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        m = corr["methods"][name]
        ax.scatter(sims, np.asarray(m["mask_mean"]), s=6, alpha=0.5)
        ax.set_xlabel("prompt–audio similarity t·a")
        ax.set_ylabel("mask mean")
        ax.set_title(f"{name}: Pearson {m['pearson']:.2f}, Spearman {m['spearman']:.2f}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def example_plot(
    zs: ZeroShotClassifier, lmac_zs: LMACZS, X: Tensor, y: Tensor, path: PathLike, n: int = 4,
    unrelated: Sequence[str] = UNRELATED_PROMPTS[:2],
) -> Path:
    """Log spectrograms and LMAC-ZS masks for the true-class prompt and unrelated prompts (PNG).

    Clips are evenly spaced over ``X`` (fold 5 is ordered by class, so several classes appear).
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    idx = torch.linspace(0, X.shape[0] - 1, n).long()
    Xs, ys = X[idx], y[idx]
    prompts = zs.prompts + list(unrelated)
    k = len(zs.prompts)
    masks = [lmac_zs.attribute(Xs, target=ys.tolist(), prompts=prompts)]
    masks += [lmac_zs.attribute(Xs, target=k + i, prompts=prompts) for i in range(len(unrelated))]
    fig, axes = plt.subplots(n, 2 + len(unrelated), figsize=(3.6 * (2 + len(unrelated)), 2.4 * n), squeeze=False)
    for r in range(n):
        panels = [(torch.log1p(Xs[r, 0]), "log(1+|X|)"), (masks[0][r, 0], prompts[int(ys[r])])]
        panels += [(masks[1 + i][r, 0], u) for i, u in enumerate(unrelated)]
        for c, (img, ttl) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img.numpy(), origin="lower", aspect="auto", vmin=0 if c else None, vmax=1 if c else None)
            ax.set_title(f"'{ttl}' MM {float(img.mean()):.2f}" if c else ttl, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ report


def _fmt(stat: Dict[str, float], key: str) -> str:
    mean = stat.get("mean", float("nan"))
    if mean != mean:
        return "n/a"
    if key in ("AI", "AD", "AG"):
        return f"{mean:.1f}"
    return f"{mean:.3f}"


def markdown_report(result: Dict[str, Any]) -> str:
    """The results as Markdown: one table per condition, then the behaviour checks."""
    lines = ["# Zero-shot benchmark: LMAC-ZS on a small CLAP (ESC-10 fold 5)", ""]
    cfg = result.get("config", {})
    clap = result.get("clap", {})
    lines.append(
        f"Classifier: small CLAP trained here (CompactCNN + MiniLM, {clap.get('n_train', '?')} captioned clips); "
        f"prompts \"this is the sound of <label>\"; p = softmax over the scaled prompt similarities "
        f"(logit scale {clap.get('logit_scale', float('nan')):.1f}). "
        f"Contaminations at {cfg.get('snr_db')} dB SNR. Means over {result.get('n_test', '?')} clips "
        "(95 % bootstrap intervals in the JSON)."
    )
    accs = clap.get("acc", {})
    if accs:
        lines += ["", "| CLAP zero-shot accuracy | fold 4 (val) | fold 5 (test) |", "|---|---|---|"]
        for name, a in accs.items():
            lines.append(f"| {name} | {a['val_fold4']:.3f} | {a['test_fold5']:.3f} |")
    arrows = {k: (" ↑" if v else " ↓") if v is not None else "" for k, v in _HIGHER.items()}
    for cond, res in result.get("conditions", {}).items():
        snr = res.get("snr_db")
        head = cond if snr is None else f"{cond} ({snr:g} dB)"
        lines += ["", f"## {head} — zero-shot accuracy {res['zs_accuracy']:.3f}", "",
                  "| method | " + " | ".join(k + arrows[k] for k in METRIC_COLUMNS) + " | s/clip |",
                  "|---|" + "---|" * (len(METRIC_COLUMNS) + 1)]
        for name, r in res["methods"].items():
            cells = [_fmt(r["metrics"][k], k) for k in METRIC_COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds_per_clip']:.2f} |")
    corr = result.get("correlation")
    if corr:
        lines += ["", "## Mask mean vs prompt–audio similarity", "",
                  f"{corr['n_clips']} clips × {corr['n_prompts']} prompts = {corr['n_clips'] * corr['n_prompts']} pairs.", "",
                  "| method | Pearson r | Spearman ρ |", "|---|---|---|"]
        for name, m in corr["methods"].items():
            lines.append(f"| {name} | {m['pearson']:.3f} | {m['spearman']:.3f} |")
    unrel = result.get("unrelated")
    if unrel:
        lines += ["", "## Unrelated prompts", "",
                  f"Mean cosine similarity: true-class prompt {unrel['similarity_true_class_mean']:.3f}, "
                  f"unrelated prompts {unrel['similarity_unrelated_mean']:.3f}.", "",
                  "| method | MM true-class prompt | MM decided prompt | MM unrelated (mean) | "
                  + " | ".join(f"'{u}'" for u in unrel["unrelated_prompts"]) + " |",
                  "|---|---|---|---|" + "---|" * len(unrel["unrelated_prompts"])]
        for name in ("lmac_zs", "gradcam++"):
            u = unrel[name]
            lines.append(f"| {name} | {u['mm_true_class_prompt']:.3f} | {u['mm_decided_prompt']:.3f} | "
                         f"{u['mm_unrelated_mean']:.3f} | "
                         + " | ".join(f"{u['mm_unrelated'][p]:.3f}" for p in unrel["unrelated_prompts"]) + " |")
    fit = result.get("lmac_zs_fit")
    if fit:
        lz = cfg.get("lmac_zs", {})
        lines += ["", f"LMAC-ZS decoder: {fit.get('decoder_parameters', '?')} parameters, fitted in "
                      f"{fit.get('seconds', float('nan')):.0f} s (best epoch {fit.get('best_epoch')}"
                      f"{', loaded from the cache' if fit.get('cached') else ''}); λ_sim {lz.get('lambda_sim')}, "
                      f"λ_1 {lz.get('lambda_l1')}, λ_div {lz.get('lambda_div')}, {lz.get('epochs')} epochs, "
                      f"batch {lz.get('batch_size')}, lr {lz.get('lr')}, layers {lz.get('layers')}."]
    t = result.get("seconds", {})
    if t:
        lines += ["", "Times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()) + "."]
    return "\n".join(lines) + "\n"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def run_zeroshot_benchmark(
    out_dir: PathLike = "benchmarks/results",
    cache_dir: PathLike = "cache/clap",
    data_root: Optional[PathLike] = None,
    methods: Sequence[str] = ZS_METHODS,
    conditions: Sequence[str] = ZS_CONDITIONS,
    snr_db: float = PAPER_SNR_DB,
    limit: Optional[int] = None,
    lmac_zs_overrides: Optional[Dict[str, Any]] = None,
    baseline_options: Optional[Dict[str, Dict[str, Any]]] = None,
    behaviour_checks: bool = True,
    seed: int = 0,
    refit: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    lmac_zs_cache: Optional[PathLike] = None,
) -> Dict[str, Any]:
    """Run the whole zero-shot benchmark; write ``zeroshot_esc10.json``/``.md`` and the plots to ``out_dir``.

    The fitted LMAC-ZS is cached in ``lmac_zs_cache`` (default ``<cache_dir>/lmac_zs.pt``) and reused
    when it was fitted with the same settings for the same audio encoder.
    """
    t_all = time.time()
    times: Dict[str, float] = {}
    out_dir = Path(out_dir)
    t0 = time.time()
    clap, stft, clap_info = get_clap(cache_dir, data_root=data_root, seed=seed, progress=progress)
    times["clap_load_or_train"] = time.time() - t0
    classes = clap_info.get("classes") or esc10_split(data_root, 5)[2]
    zs = clap.zero_shot(class_prompts(classes))
    cfg = {**LMACZS_CONFIG, **(lmac_zs_overrides or {})}
    lmac_zs = None
    fit_info: Dict[str, Any] = {}
    if "lmac_zs" in methods or behaviour_checks:
        t0 = time.time()
        log("building LMAC-ZS training data")
        train, val = lmac_zs_training_data(stft, data_root, cfg, seed, progress)
        log(f"fitting LMAC-ZS on {train[0].shape[0]} clips ({cfg['epochs']} epochs)")
        cache_file = Path(lmac_zs_cache) if lmac_zs_cache is not None else Path(cache_dir) / "lmac_zs.pt"
        lmac_zs, fit_info = fit_or_load_lmac_zs(zs, train, val, cfg, cache_file, seed, progress, refit)
        del train
        times["lmac_zs_fit"] = time.time() - t0
    explainers = build_explainers(zs, lmac_zs, methods, options=baseline_options)
    t0 = time.time()
    data = test_conditions(data_root, conditions, snr_db, seed, limit, progress)
    times["data"] = time.time() - t0
    result: Dict[str, Any] = {
        "config": {"snr_db": snr_db, "methods": list(methods), "conditions": list(conditions), "seed": seed,
                   "stft": dict(ZS_STFT), "duration_s": DURATION, "lmac_zs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                   "baseline_options": {**BASELINE_OPTIONS, **(baseline_options or {})},
                   "prompts": zs.prompts, "probabilities": "softmax_j(logit_scale * t_j . a)",
                   "mask_rule_baselines": "|a| (ReLU for CAMs, bilinear upsampling) divided by the per-sample max"},
        "clap": {k: clap_info.get(k) for k in ("n_train", "n_train_by_source", "acc", "logit_scale", "train_seconds",
                                               "data_seconds", "recipe")},
        "lmac_zs_fit": fit_info,
        "n_test": int(next(iter(data.values()))["waveform"].shape[0]),
        "conditions": {},
    }
    for cond, d in data.items():
        t0 = time.time()
        X, _ = magnitudes(stft, d["waveform"])
        log(f"condition {cond}: {X.shape[0]} clips")
        res = run_condition(zs, X, d["y"], explainers, progress)
        res["snr_db"] = d["snr_db"]
        result["conditions"][cond] = res
        times[f"condition_{cond}"] = time.time() - t0
        _write(result, out_dir, times, t_all)  # partial results survive an interruption
    if behaviour_checks and lmac_zs is not None and "in-domain" in data:
        X, _ = magnitudes(stft, data["in-domain"]["waveform"])
        y = data["in-domain"]["y"]
        t0 = time.time()
        log("behaviour check: mask mean vs similarity")
        sub = {k: v for k, v in explainers.items() if k in ("lmac_zs", "gradcam++")}
        if "gradcam++" not in sub:
            sub["gradcam++"] = build_explainers(zs, None, ["gradcam++"])["gradcam++"]
        corr = similarity_vs_mask_mean(zs, X, sub, progress)
        result["correlation"] = corr
        scatter_plot(corr, out_dir / "zeroshot_esc10_mm_vs_similarity.png",
                     "ESC-10 fold 5, every (clip, class prompt) pair")
        times["check_correlation"] = time.time() - t0
        t0 = time.time()
        log("behaviour check: unrelated prompts")
        result["unrelated"] = unrelated_prompt_check(zs, lmac_zs, X, y)
        example_plot(zs, lmac_zs, X, y, out_dir / "zeroshot_esc10_examples.png")
        times["check_unrelated"] = time.time() - t0
    _write(result, out_dir, times, t_all)
    return result


def _write(result: Dict[str, Any], out_dir: Path, times: Dict[str, float], t_all: float) -> None:
    result["seconds"] = {**times, "total": time.time() - t_all}
    js = json.dumps(_jsonable(result), indent=1, sort_keys=False)
    atomic_write(out_dir / "zeroshot_esc10.json", lambda tmp: Path(tmp).write_text(js))
    md = markdown_report(result)
    atomic_write(out_dir / "zeroshot_esc10.md", lambda tmp: Path(tmp).write_text(md))


__all__ = [
    "ZS_METHODS", "ZS_CONDITIONS", "METRIC_COLUMNS", "LMACZS_CONFIG", "BASELINE_OPTIONS", "test_conditions",
    "lmac_zs_training_data", "fit_or_load_lmac_zs", "build_explainers", "condition_metrics", "run_condition",
    "similarity_vs_mask_mean", "unrelated_prompt_check", "scatter_plot", "example_plot", "markdown_report",
    "run_zeroshot_benchmark",
]
