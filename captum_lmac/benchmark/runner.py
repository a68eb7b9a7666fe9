r"""The comparative benchmark harness: methods × domains × conditions → metrics, reports, sanity check.

Two entry points:

- :func:`run_benchmark` — the reusable harness: give it a classifier (X → logits
  :class:`~captum_lmac.SpectrogramClassifier`), its :class:`~captum_lmac.STFT`, ``{"train", "val",
  "test"}`` :class:`~captum_lmac.data.SpectrogramSet` splits and a configuration (method names and
  options, conditions, SNR, domains); it returns the results dict and writes ``results.json``,
  ``results.csv``, ``results.md`` and ``report.html`` (with pictures, audio and the sanity plot).
- :func:`run_suite` / :func:`main` — a named suite (``synthetic``, ``esc10``, ``fsdd``, ``esc50``,
  ``us8k`` or a JSON config file): loads data and the cached reference classifier, then runs the harness.
  ``main(argv)`` is the command line ``captum-lmac benchmark <suite> [options]`` /
  ``python -m captum_lmac.benchmark <suite> [options]``.

What is measured, per clip, then aggregated as mean and 95 % bootstrap interval
(:func:`captum_lmac.metrics.aggregate`):

- AI, AD, AG, FF, Fid-In, MM (:func:`captum_lmac.metrics.faithfulness`, c = argmax f(input), on the
  contaminated input for out-of-domain conditions);
- SPS and COMP (the Quantus Sparseness / Complexity formulas, see :func:`~captum_lmac.metrics.fast_sparseness`);
- where the true source is known (SyntheticEvents; any contaminated clip): SI-SDR of the listenable
  explanation ``stft.listen(X, phase, M)`` against the true target waveform (STFT domain only) and
  precision / recall of the mask (≥ 0.5) against the oracle mask ``oracle_mask(X_target, X_rest)``;
- attribution time in ms per clip.

Domains: ``"stft"`` (mask on the linear STFT magnitude; the papers' "STFT→Mel" rows; listenable) and
``"mel"`` (mask on the classifier's own features, ``model.in_feature_domain()`` fed ``model.features(X)``;
the "Mel" rows; learned methods are fitted separately in that domain).

Examples::

    >>> from captum_lmac.benchmark.runner import run_benchmark
    >>> res = run_benchmark(model, stft, {"train": tr, "val": va, "test": te},
    ...                     config={"methods": ["gradcam", "ig", "lmac"], "lmac": {"fit": {"epochs": 5}}},
    ...                     out_dir="bench_out", cache_dir="cache/interpreters")
    >>> print(open("bench_out/results.md").read())
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..audio import STFT, write_wav
from ..data.tensors import SpectrogramSet, to_spectrograms
from ..errors import CheckpointError, DataNotFoundError, InputError
from ..metrics import (
    aggregate,
    fast_complexity,
    fast_sparseness,
    faithfulness,
    mask_precision_recall,
    oracle_mask,
    quantus_complexity,
    quantus_sparseness,
    si_sdr,
)
from ..train import seed_everything
from .conditions import (
    SNR_PRESETS,
    Condition,
    condition_set,
    ground_truth,
    resolve_conditions,
    stratified_indices,
    wham_pairs,
)
from .config import COMMON, load_config, merge
from .methods import InterpreterCache, MethodRow, build_methods, l2i_available
from .report import METRICS, Renderer, write_report
from .sanity import cascading_randomisation, plot_cascading

PathLike = Union[str, Path]

DOMAINS = ("stft", "mel")


def _domain_label(model: nn.Module, domain: str) -> str:
    feats = type(getattr(model, "features", None)).__name__
    is_mel = feats == "LogMel"
    if domain == "stft":
        return "STFT→Mel" if is_mel else "STFT→features"
    return "Mel" if is_mel else "features"


@torch.no_grad()
def to_features(model: nn.Module, X: Tensor, batch_size: int = 64) -> Tensor:
    """``model.features(X)`` in batches (the classifier's own input representation)."""
    return torch.cat([model.features(X[s : s + batch_size]) for s in range(0, X.shape[0], batch_size)])


def _progress_log(progress: bool) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if progress:
            tqdm.write(msg)
        else:
            print(msg, flush=True)
    return log


def _complexity_scores(masks: Tensor, mode: str, log: Callable[[str], None], check: bool = True
                       ) -> Tuple[np.ndarray, np.ndarray]:
    if mode == "quantus":
        return quantus_sparseness(masks), quantus_complexity(masks)
    if mode != "fast":
        raise InputError(f"quantus must be 'fast' or 'quantus', got {mode!r}")
    sps, comp = fast_sparseness(masks), fast_complexity(masks)
    # spot check against Quantus itself on the first sample with a defined score
    ok = np.flatnonzero(np.isfinite(sps))
    if check and len(ok):
        i = int(ok[0])
        ref_s, ref_c = quantus_sparseness(masks[i : i + 1])[0], quantus_complexity(masks[i : i + 1])[0]
        if not (np.isclose(ref_s, sps[i], rtol=1e-6, atol=1e-9) and np.isclose(ref_c, comp[i], rtol=1e-6, atol=1e-9)):
            log(f"[benchmark] WARNING: fast SPS/COMP differ from Quantus ({sps[i]} vs {ref_s}, {comp[i]} vs {ref_c}); "
                "using Quantus")
            return quantus_sparseness(masks), quantus_complexity(masks)
    return sps, comp


def evaluate_masks(
    model: nn.Module,
    X: Tensor,
    masks: Tensor,
    batch_size: int = 32,
    gt: Optional[Dict[str, Tensor]] = None,
    listen: Optional[Callable[[Tensor], Tensor]] = None,
    quantus_mode: str = "fast",
    log: Callable[[str], None] = print,
    quantus_check: bool = True,
) -> Dict[str, np.ndarray]:
    """Per-sample metrics of ``masks`` explaining ``model`` on ``X`` (see the module doc).

    Args:
        gt: ``{"target_wave", "oracle"}`` when the true source is known (oracle in this domain).
        listen: ``masks -> waveforms`` (the listenable explanation); enables SI-SDR.
        quantus_mode: ``"fast"`` (:func:`~captum_lmac.metrics.fast_sparseness` / ``fast_complexity``) or ``"quantus"`` (Quantus on the whole batch).
        quantus_check: In fast mode, recompute one sample with Quantus and fall back to Quantus on a mismatch.
    """
    m = faithfulness(model, X, masks, batch_size=batch_size)
    out = {k: m[k].numpy().astype(np.float64) for k in ("AI", "AD", "AG", "FF", "FidIn", "MM")}
    out["SPS"], out["COMP"] = _complexity_scores(masks, quantus_mode, log, quantus_check)
    if gt is not None:
        pr = mask_precision_recall(masks, gt["oracle"])
        out["precision"], out["recall"] = pr["precision"].numpy(), pr["recall"].numpy()
        if listen is not None:
            est = listen(masks)
            out["SI-SDR"] = si_sdr(est, gt["target_wave"]).numpy()
    return out


def _attribute(row: MethodRow, X: Tensor, chunk: int, desc: str, progress: bool) -> Tuple[Tensor, float]:
    """Masks of ``row`` for X in chunks (with a progress bar) and the time per clip in ms."""
    out = []
    t0 = time.perf_counter()
    for s in tqdm(range(0, X.shape[0], chunk), desc=desc, disable=not progress, leave=False):
        with torch.enable_grad():
            out.append(row.attribute(X[s : s + chunk]).detach().float().cpu())
    ms = 1000.0 * (time.perf_counter() - t0) / max(1, X.shape[0])
    masks = torch.cat(out)
    if masks.shape != X.shape:
        masks = masks.expand_as(X).contiguous()
    return masks.clamp(0.0, 1.0), ms


def _example_indices(y: Tensor, n: int) -> List[int]:
    """The first clip of each of the first ``n`` classes met (distinct classes where possible)."""
    seen, out = set(), []
    for i, c in enumerate(y.tolist()):
        if c not in seen:
            seen.add(c)
            out.append(i)
        if len(out) == n:
            return out
    rest = [i for i in range(len(y)) if i not in out]
    return out + rest[: n - len(out)]


def _resolve_config(config: Optional[Mapping[str, Any]], **overrides: Any) -> Dict[str, Any]:
    cfg = merge(COMMON, config or {})
    for k, v in overrides.items():
        if v is not None:
            cfg[k] = v
    cfg.setdefault("suite", "custom")
    return cfg


def run_benchmark(
    model: nn.Module,
    stft: STFT,
    data: Mapping[str, SpectrogramSet],
    methods: Optional[Sequence[str]] = None,
    config: Optional[Mapping[str, Any]] = None,
    conditions: Optional[Sequence[str]] = None,
    snr: Union[None, float, Mapping[str, float]] = None,
    snr_preset: Optional[str] = None,
    domains: Optional[Sequence[str]] = None,
    n_test: Optional[int] = None,
    seed: Optional[int] = None,
    out_dir: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    data_root: Optional[PathLike] = None,
    classifier_info: Optional[Mapping[str, Any]] = None,
    sanity: Optional[bool] = None,
    refit: bool = False,
    progress: bool = True,
) -> Dict[str, Any]:
    r"""Run the comparative benchmark on one classifier and write the reports.

    Args:
        model (nn.Module): The classifier, X (N, 1, F, T) linear magnitude → logits. For the
            ``"mel"`` domain it must offer ``features`` and ``in_feature_domain()``
            (:class:`~captum_lmac.SpectrogramClassifier`).
        stft (STFT): The analysis of the data (for listening and contamination).
        data (dict): ``{"train", "val", "test"}`` splits (``train``/``val`` are needed only when a
            learned method must be fitted).
        methods (list of str, optional): Method names (overrides ``config["methods"]``): Captum
            baselines, ``"lmac"``, ``"lmac_ft"``, ``"l2i"``, any ``captum.attr`` class name or
            :func:`~captum_lmac.attr.register_baseline` name.
        config (dict, optional): Suite configuration (see :mod:`captum_lmac.benchmark.config`),
            merged over the defaults.
        conditions, snr, snr_preset, domains, n_test, seed: Override the configuration's
            ``conditions``, ``snr_db``, ``snr_preset`` (``"paper"`` 3 dB, ``"released"`` 12/12/6 dB),
            ``domains``, ``n_test``, ``seed``.
        out_dir (path, optional): Where the reports go (None: no files are written).
        cache_dir (path, optional): Folder of fitted interpreters (``<suite>_<method>[_mel].pt``);
            None: interpreters are fitted and not saved.
        data_root (path, optional): Data root for the speech / ambient folders.
        classifier_info (dict, optional): Shown in the reports (e.g. test accuracy).
        sanity (bool, optional): Run the cascading-randomisation check (default: the configuration).
        refit (bool): Ignore cached interpreters.
        progress (bool): tqdm progress bars.

    Returns:
        dict: the results (``rows``, ``conditions``, ``domains``, ``sanity``, ``timing``, ...), as
        written to ``results.json``.
    """
    t_start = time.time()
    cfg = _resolve_config(config, methods=list(methods) if methods is not None else None,
                          conditions=list(conditions) if conditions is not None else None,
                          snr_db=snr, snr_preset=snr_preset, domains=list(domains) if domains is not None else None,
                          n_test=n_test, seed=seed)
    seed = int(cfg["seed"])
    log = _progress_log(progress)
    seed_everything(seed)
    was_training = model.training
    grad_flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grad_flags:  # attributions need input gradients only
        p.requires_grad_(False)
    try:
        return _run(model, stft, data, cfg, seed, log, out_dir, cache_dir, data_root, classifier_info, sanity, refit,
                    progress, t_start)
    finally:
        for p, flag in grad_flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _run(model, stft, data, cfg, seed, log, out_dir, cache_dir, data_root, classifier_info, sanity, refit, progress,
         t_start) -> Dict[str, Any]:
    suite = cfg["suite"]
    bs = int(cfg.get("batch_size", 16))
    out = Path(out_dir) if out_dir is not None else None
    media = out / "media" if out is not None else None
    timing: Dict[str, float] = {}
    skipped: List[str] = []

    if "test" not in data:
        raise InputError("data needs a 'test' split")
    test_full = data["test"]
    idx = stratified_indices(test_full.y, cfg.get("n_test"))
    test = test_full.subset(idx) if len(idx) < len(test_full) else test_full
    names = list(cfg["methods"])
    if "l2i" in names and not l2i_available():
        skipped.append("l2i (captum_lmac.attr.l2i not available)")
        names.remove("l2i")
    doms = list(cfg.get("domains") or ["stft"])
    for d in doms:
        if d not in DOMAINS:
            raise InputError(f"unknown domain {d!r}; choose from {list(DOMAINS)}")
    if "mel" in doms and not (hasattr(model, "in_feature_domain") and hasattr(model, "features")):
        skipped.append("mel domain (the model has no features / in_feature_domain)")
        doms.remove("mel")
    conds = resolve_conditions(cfg["conditions"], cfg.get("snr_db"), cfg.get("snr_preset"))

    # --- condition sets ---------------------------------------------------------------------------
    t0 = time.time()
    sets: Dict[str, SpectrogramSet] = {}
    for cond in conds:
        try:
            sets[cond.name] = condition_set(test, cond, stft, data_root=data_root, speech_dir=cfg.get("speech_dir"),
                                            ambient_dir=cfg.get("ambient_dir"), seed=seed, progress=progress)
        except DataNotFoundError as exc:
            log(f"[benchmark] condition {cond.name!r} skipped: {exc}")
            skipped.append(f"{cond.name} ({exc})")
    conds = [c for c in conds if c.name in sets]
    timing["conditions_seconds"] = time.time() - t0

    cond_info = []
    gts: Dict[str, Optional[Tuple[Tensor, Tensor, str]]] = {}
    for cond in conds:
        s = sets[cond.name]
        with torch.no_grad():
            pred = torch.cat([model(s.X[i : i + 64]) for i in range(0, len(s), 64)]).argmax(1)
        info = cond.to_dict()
        info["n"] = len(s)
        info["accuracy"] = float((pred == s.y).float().mean())
        if cond.contaminated and "snr_db" in s.extra:
            info["snr_db_measured"] = float(s.extra["snr_db"].mean())
        gts[cond.name] = ground_truth(s, cond)
        info["ground_truth"] = gts[cond.name][2] if gts[cond.name] is not None else None
        cond_info.append(info)

    # --- lazy training inputs per domain ------------------------------------------------------------
    memo: Dict[str, Any] = {}

    def train_split(name: str) -> SpectrogramSet:
        if name not in data:
            raise InputError(f"fitting a learned method needs a {name!r} split")
        return data[name]

    def pairs_stft() -> Tuple[Tensor, Tensor, str]:
        if "pairs" not in memo:
            ft = cfg.get("lmac_ft", {})
            noise = ft.get("noise_dir")
            if noise is not None and not Path(noise).is_absolute():
                from ..data.folders import default_data_root

                noise = (Path(data_root) if data_root is not None else default_data_root()) / noise
            tr = train_split("train")
            n = cfg.get("n_train")
            if n is not None and n < len(tr):
                tr = tr.subset(list(range(n)))
            p, what = wham_pairs(tr, stft, noise, float(ft.get("snr_db", 0.0)), seed=seed, mode=ft.get("pairs", "auto"),
                                 progress=progress)
            memo["pairs"] = (p.X, p.extra["clean_X"], what)
        return memo["pairs"]

    def providers(domain: str, m: nn.Module):
        if domain == "stft":
            return (lambda: train_split("train").X, lambda: data["val"].X if "val" in data else None, pairs_stft)

        def tr():
            key = "train_mel"
            if key not in memo:
                memo[key] = to_features(model, train_split("train").X)
            return memo[key]

        def va():
            if "val" not in data:
                return None
            if "val_mel" not in memo:
                memo["val_mel"] = to_features(model, data["val"].X)
            return memo["val_mel"]

        def pr():
            X_mix, X_clean, what = pairs_stft()
            return to_features(model, X_mix), to_features(model, X_clean), what

        return tr, va, pr

    cache = InterpreterCache(Path(cache_dir) if cache_dir is not None else None, suite, refit=refit, log=log)
    n_ex = int((cfg.get("report") or {}).get("n_examples", 3)) if out is not None else 0
    ex_idx = _example_indices(test.y, n_ex) if n_ex else []
    ex_masks: Dict[Tuple[str, str, str], Tensor] = {}
    rows: List[Dict[str, Any]] = []
    per_sample: Dict[str, Dict[str, list]] = {}
    mask_rules: Dict[str, str] = {}
    fits: Dict[str, Any] = {}
    stft_rows: List[MethodRow] = []
    timing["fit_seconds"] = 0.0
    timing["evaluate_seconds"] = 0.0

    def names_for(domain: str) -> List[str]:
        if domain == "mel" and cfg.get("feature_domain_methods") is not None:
            return [n for n in names if n in cfg["feature_domain_methods"]]
        return names

    for di, domain in enumerate(doms):
        m_dom = model if domain == "stft" else model.in_feature_domain()
        m_dom.eval()
        dom_names = names_for(domain)
        if not dom_names:
            continue
        t0 = time.time()
        tr, va, pr = providers(domain, m_dom)
        mrows = build_methods(dom_names, m_dom, domain, cfg, train_X=tr, val_X=va, pairs=pr, cache=cache, seed=seed,
                              progress=progress, log=log)
        if not any(n in ("lmac", "lmac_ft", "l2i") for d in doms[di + 1 :] for n in names_for(d)):
            memo.clear()  # fine-tuning pairs and feature-domain training inputs are no longer needed
        timing["fit_seconds"] += time.time() - t0
        if domain == "stft":
            stft_rows = mrows
        for r in mrows:
            mask_rules.setdefault(r.name, r.mask_rule)
            if r.kind == "learned" and r.info:
                fits[f"{r.base} ({domain})"] = r.info
        t0 = time.time()
        label = _domain_label(model, domain)
        bar = tqdm(total=len(conds) * len(mrows), desc=f"evaluating [{label}]", disable=not progress)
        for ci, cond in enumerate(conds):
            s = sets[cond.name]
            X_dom = s.X if domain == "stft" else to_features(model, s.X)
            gt_info = None
            g = gts[cond.name]
            if g is not None:
                target_w, rest_w, _ = g
                Xt = stft.analyze(target_w, allow_silent=True)[0]
                Xr = stft.analyze(rest_w, allow_silent=True)[0]
                if domain == "mel":
                    Xt, Xr = to_features(model, Xt), to_features(model, Xr)
                gt_info = {"target_wave": target_w, "oracle": oracle_mask(Xt, Xr)}
            listen = None
            if domain == "stft":
                n_samples = s.waveform.shape[-1]
                def listen(M: Tensor, s: SpectrogramSet = s, n: int = n_samples) -> Tensor:
                    return torch.cat([stft.listen(s.X[i : i + 32], s.phase[i : i + 32], M[i : i + 32], length=n)
                                      for i in range(0, M.shape[0], 32)])
            for r in mrows:
                masks, ms = _attribute(r, X_dom, bs, f"{r.name} [{domain}/{cond.name}]", progress)
                per = evaluate_masks(m_dom, X_dom, masks, batch_size=32, gt=gt_info, listen=listen,
                                     quantus_mode=cfg.get("quantus", "fast"), log=log, quantus_check=ci == 0)
                aggs = {k: aggregate(v, seed=seed) for k, v in per.items()}
                rows.append({
                    "suite": suite, "domain": domain, "domain_label": label, "condition": cond.name,
                    "condition_label": cond.label, "snr_db": cond.snr_db, "method": r.name, "base_method": r.base,
                    "kind": r.kind, "n": int(X_dom.shape[0]), "ms_per_clip": ms, "metrics": aggs,
                })
                per_sample[f"{domain}|{cond.name}|{r.name}"] = {k: [round(float(x), 6) for x in v]
                                                                  for k, v in per.items()}
                if ex_idx:
                    ex_masks[(domain, cond.name, r.name)] = masks[ex_idx].clone()
                log(f"[benchmark] {label:>13} | {cond.name:>9} | {r.name:<16} "
                    f"AI {aggs['AI']['mean']:6.2f} AD {aggs['AD']['mean']:6.2f} FF {aggs['FF']['mean']:6.3f} "
                    f"Fid-In {aggs['FidIn']['mean']:5.3f} MM {aggs['MM']['mean']:5.3f} {ms:7.1f} ms/clip")
                del masks
                bar.update(1)
        bar.close()
        timing[f"evaluate_{domain}_seconds"] = time.time() - t0
        timing["evaluate_seconds"] += time.time() - t0

    # --- sanity check ---------------------------------------------------------------------------------
    sanity_res = None
    san_cfg = cfg.get("sanity") or {}
    run_sanity = san_cfg.get("enabled", True) if sanity is None else sanity
    if run_sanity and stft_rows:
        t0 = time.time()
        wanted = list(san_cfg.get("methods") or ["lmac", "gradcam"])
        explainers = {r.name: r.explainer for r in stft_rows if r.name in wanted and r.explainer is not None}
        if explainers:
            Xs = test.X[: int(san_cfg.get("n_clips", 16))]
            sanity_res = cascading_randomisation(model, Xs, explainers, seed=seed, progress=progress)
            if out is not None:
                plot_cascading(sanity_res, out / "sanity_cascading.png",
                               title=f"Cascading randomisation ({suite}, n = {Xs.shape[0]})")
                sanity_res["plot"] = "sanity_cascading.png"
            for name, r in sanity_res["methods"].items():
                log(f"[benchmark] sanity {name}: SSIM " + " ".join(f"{v:.2f}" for v in r["mean"]))
        else:
            skipped.append(f"sanity check (none of {wanted} was run in the STFT domain)")
        timing["sanity_seconds"] = time.time() - t0

    # --- examples (pictures and audio) ----------------------------------------------------------------
    examples = []
    if out is not None and ex_idx:
        t0 = time.time()
        with_mel = bool((cfg.get("report") or {}).get("mel_examples", True))
        examples = _write_examples(out, media, model, stft, test, conds, sets, gts, ex_idx, ex_masks,
                                   with_mel=with_mel, progress=progress)
        timing["examples_seconds"] = time.time() - t0

    timing["total_seconds"] = time.time() - t_start
    snr_used = {c.name: c.snr_db for c in conds if c.contaminated}
    any_gt = any(c.get("ground_truth") for c in cond_info)
    results: Dict[str, Any] = {
        "suite": suite,
        "description": cfg.get("description", ""),
        "notes": cfg.get("notes", ""),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "n_test": len(test),
        "snr_preset": cfg.get("snr_preset") if cfg.get("snr_db") is None else None,
        "snr_db": snr_used,
        "conditions": cond_info,
        "domains": [{"name": d, "label": _domain_label(model, d)} for d in doms],
        "methods": [r.name for r in stft_rows] or sorted({r["method"] for r in rows}),
        "metrics": METRICS,
        "mask_rules": mask_rules,
        "fits": fits,
        "classifier": dict(classifier_info or {}),
        "rows": rows,
        "sanity": sanity_res,
        "examples": examples,
        "timing": {k: round(v, 2) for k, v in timing.items()},
        "skipped": skipped,
        "ground_truth_note": (
            "Ground truth (SI-SDR of the listenable explanation vs the true source; precision/recall of mask ≥ 0.5 "
            "vs the oracle mask where the true source dominates): " +
            "; ".join(f"{c['name']}: {c['ground_truth']}" for c in cond_info if c.get("ground_truth"))
        ) if any_gt else "",
        "config": cfg,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "machine": platform.machine()},
    }
    if out is not None:
        paths = write_report(results, out, per_sample=per_sample)
        log(f"[benchmark] wrote {', '.join(str(p) for p in paths.values())}")
    return results


def _write_examples(out: Path, media: Path, model: nn.Module, stft: STFT, test: SpectrogramSet, conds: List[Condition],
                    sets: Dict[str, SpectrogramSet], gts, ex_idx: List[int], ex_masks, with_mel: bool,
                    progress: bool) -> List[Dict[str, Any]]:
    render = Renderer(stft.sample_rate, stft.hop_length)
    classes = list(test.classes)
    examples = []
    try:
        jobs = [(cond, k, i) for cond in conds for k, i in enumerate(ex_idx)]
        ex_by_cond: Dict[str, Dict[str, Any]] = {}
        for cond, k, i in tqdm(jobs, desc="report media", disable=not progress, leave=False):
            s = sets[cond.name]
            entry = ex_by_cond.setdefault(cond.name, {"condition": cond.name, "condition_label": cond.label,
                                                      "clips": []})
            base = f"{cond.name}_clip{i}"
            with torch.no_grad():
                pred = int(model(s.X[i : i + 1]).argmax(1))
            lab = int(s.y[i])
            clip: Dict[str, Any] = {
                "index": int(i), "label": lab, "pred": pred,
                "label_name": classes[lab] if lab < len(classes) else lab,
                "pred_name": classes[pred] if pred < len(classes) else pred,
            }
            render.save(s.X[i], media / f"{base}_input.png", kind="db", title="input |X| (dB)")
            write_wav(media / f"{base}_input.wav", s.waveform[i : i + 1], stft.sample_rate)
            clip["input_png"], clip["input_wav"] = f"media/{base}_input.png", f"media/{base}_input.wav"
            g = gts[cond.name]
            if g is not None:
                target_w, rest_w, _ = g
                Xt = stft.analyze(target_w[i : i + 1], allow_silent=True)[0]
                Xr = stft.analyze(rest_w[i : i + 1], allow_silent=True)[0]
                render.save(oracle_mask(Xt, Xr)[0], media / f"{base}_oracle.png", title="oracle mask")
                write_wav(media / f"{base}_target.wav", target_w[i : i + 1], stft.sample_rate)
                clip["oracle_png"], clip["target_wav"] = f"media/{base}_oracle.png", f"media/{base}_target.wav"
            methods = []
            names = [key[2] for key in ex_masks if key[1] == cond.name and key[0] == "stft"]
            names += [key[2] for key in ex_masks if key[1] == cond.name and key[0] == "mel" and key[2] not in names]
            for name in names:
                safe = "".join(ch if ch.isalnum() else ("p" if ch == "+" else "_") for ch in name).strip("_")
                item: Dict[str, Any] = {"name": name}
                M = ex_masks.get(("stft", cond.name, name))
                if M is not None:
                    mk = M[k : k + 1]
                    render.save(mk[0], media / f"{base}_{safe}.png",
                                title=f"{name}: mask (mean {float(mk.mean()):.2f})")
                    wav = stft.listen(s.X[i : i + 1], s.phase[i : i + 1], mk, length=s.waveform.shape[-1])
                    write_wav(media / f"{base}_{safe}.wav", wav, stft.sample_rate)
                    item["png"], item["wav"] = f"media/{base}_{safe}.png", f"media/{base}_{safe}.wav"
                Mm = ex_masks.get(("mel", cond.name, name))
                if with_mel and Mm is not None:
                    render.save(Mm[k], media / f"{base}_{safe}_mel.png",
                                title=f"{name} (Mel): mean {float(Mm[k].mean()):.2f}", ylabel="mel band")
                    item["mel_png"] = f"media/{base}_{safe}_mel.png"
                methods.append(item)
            clip["methods"] = methods
            entry["clips"].append(clip)
        examples = [ex_by_cond[c.name] for c in conds if c.name in ex_by_cond]
    finally:
        render.close()
    return examples


# --- suites -------------------------------------------------------------------------------------------


def _reader(name: str):
    from ..data import folders
    from ..data.synthetic import SyntheticEvents

    readers = {"ESC50": folders.ESC50, "UrbanSound8K": folders.UrbanSound8K, "FSDD": folders.FSDD,
               "SyntheticEvents": SyntheticEvents}
    if name not in readers:
        raise InputError(f"unknown data reader {name!r}; choose from {sorted(readers)}")
    return readers[name]


class _Subset(torch.utils.data.Dataset):
    def __init__(self, base, index: Sequence[int]) -> None:
        self.base, self.index = base, list(index)
        self.classes = list(getattr(base, "classes", []))
        self.sample_rate = getattr(base, "sample_rate", None)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.base[self.index[i]]


def _labels(ds) -> Tensor:
    from ..data.contamination import dataset_labels

    return torch.tensor(dataset_labels(ds))


def suite_datasets_for(cfg: Mapping[str, Any], sample_rate: int, data_root: Optional[PathLike]) -> Dict[str, Any]:
    """The waveform data sets ``{"train", "val", "test"}`` described by a configuration's ``data`` entry."""
    from ..data.folders import default_data_root

    d = cfg.get("data") or {"loader": "suite"}
    root = Path(data_root) if data_root is not None else default_data_root()
    if "reader" not in d:
        from .suites import suite_datasets

        return suite_datasets(cfg["suite"], root, sample_rate=sample_rate)
    cls = _reader(d["reader"])
    kwargs = dict(d.get("kwargs") or {})
    if d["reader"] == "SyntheticEvents":  # generated, no folder: splits give n_items / seed
        return {split: cls(sample_rate=sample_rate, **kwargs, **(spec or {})) for split, spec in d["splits"].items()}
    folder = Path(d["root"])
    folder = folder if folder.is_absolute() else root / folder
    return {split: cls(folder, sample_rate=sample_rate, **kwargs, **(spec or {}))
            for split, spec in d["splits"].items()}


def load_data(cfg: Mapping[str, Any], stft: STFT, data_root: Optional[PathLike] = None,
              progress: bool = True, full: bool = False) -> Dict[str, SpectrogramSet]:
    """Read a configuration's splits as spectrograms: the stratified ``n_test`` test clips, the first
    ``n_train`` training clips and ``n_val`` validation clips (all of them when ``full``)."""
    sets = suite_datasets_for(cfg, stft.sample_rate, data_root)
    out = {}
    limits = {"train": cfg.get("n_train"), "val": cfg.get("n_val"), "test": cfg.get("n_test")}
    keep = {"train": ("clean",), "val": (), "test": ("clean", "background", "interferer")}
    for split in ("train", "val", "test"):
        if split not in sets:
            continue
        ds = sets[split]
        n = None if full and split != "test" else limits[split]
        if n is not None and n < len(ds):
            index = stratified_indices(_labels(ds), n) if split == "test" else list(range(n))
            ds = _Subset(ds, index)
        out[split] = to_spectrograms(ds, stft, keep=keep[split], progress=progress)
        out[split].classes = list(getattr(sets[split], "classes", []))
    return out


def get_suite_classifier(cfg: Mapping[str, Any], cache_dir: PathLike, data_root: Optional[PathLike] = None,
                         classifier_path: Optional[PathLike] = None, progress: bool = True,
                         log: Callable[[str], None] = print):
    """``(model, stft, classes, info)`` of a suite: a given file, the suite's cached classifier, or one
    trained from the configuration's recipe and cached."""
    from ..train import build_classifier, load_classifier, save_classifier, train_classifier
    from .suites import STFT_DEFAULTS, SUITES, get_classifier

    if classifier_path is not None:
        model, stft, classes, info = load_classifier(classifier_path)
        return model, stft, classes, dict(info, checkpoint=str(classifier_path))
    clf_dir = Path(cache_dir) / "classifiers"
    suite = cfg["suite"]
    source = (cfg.get("classifier") or {}).get("source", "suite")
    if source == "suite" and suite in SUITES and "recipe" not in (cfg.get("classifier") or {}):
        pt = clf_dir / f"{suite}.pt"
        if not pt.is_file():
            log(f"[benchmark] no cached classifier at {pt}: training the {suite} reference classifier")
        model, stft, classes, info = get_classifier(suite, clf_dir, data_root=data_root, progress=progress)
        return model, stft, classes, dict(info, checkpoint=str(pt))
    recipe = dict((cfg.get("classifier") or {}).get("recipe") or {})
    pt = clf_dir / f"{suite}.pt"
    if pt.is_file():
        model, stft, classes, info = load_classifier(pt)
        return model, stft, classes, dict(info, checkpoint=str(pt))
    log(f"[benchmark] training the {suite} classifier ({recipe}); cached at {pt}")
    stft = STFT(**STFT_DEFAULTS)
    data = load_data(cfg, stft, data_root, progress=progress, full=True)
    net_kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in recipe.items() if k in ("channels", "dropout")}
    train_keys = ("epochs", "batch_size", "lr", "weight_decay", "patience", "mixup", "augment")
    train_kw = {k: v for k, v in recipe.items() if k in train_keys}
    classes = list(data["train"].classes)
    torch.manual_seed(int(cfg.get("seed", 0)))
    model = build_classifier(len(classes), stft, n_mels=int(recipe.get("n_mels", 80)), **net_kw)
    t0 = time.time()
    train_classifier(model, data["train"].X, data["train"].y, data["val"].X, data["val"].y,
                     seed=int(cfg.get("seed", 0)), progress=progress, **train_kw)
    from ..train import accuracy

    info = {"suite": suite, "recipe": recipe, "train_seconds": round(time.time() - t0, 1),
            "val_acc": accuracy(model, data["val"].X, data["val"].y),
            "test_acc": accuracy(model, data["test"].X, data["test"].y) if "test" in data else None}
    save_classifier(pt, model, stft, classes, info)
    return model, stft, classes, dict(info, checkpoint=str(pt))


def run_suite(
    suite: Union[str, PathLike],
    out_dir: Optional[PathLike] = None,
    cache_dir: PathLike = "cache",
    data_root: Optional[PathLike] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    classifier_path: Optional[PathLike] = None,
    sanity: Optional[bool] = None,
    refit: bool = False,
    progress: bool = True,
) -> Dict[str, Any]:
    """Run a named suite (or JSON config file) end to end.

    Loads the configuration (:func:`~captum_lmac.benchmark.config.load_config`), applies
    ``overrides`` (merged), gets the classifier (``<cache_dir>/classifiers/<suite>.pt``, trained if
    missing), loads the data with the classifier's STFT and calls :func:`run_benchmark` with
    interpreters cached in ``<cache_dir>/interpreters``. Reports go to ``out_dir`` (default
    ``benchmark_out/<suite>``).
    """
    t0 = time.time()
    log = _progress_log(progress)
    cfg = load_config(suite)
    if overrides:
        cfg = merge(cfg, overrides)
    name = cfg["suite"]
    out_dir = Path(out_dir) if out_dir is not None else Path("benchmark_out") / name
    model, stft, classes, info = get_suite_classifier(cfg, cache_dir, data_root, classifier_path, progress, log)
    t_clf = time.time() - t0
    t1 = time.time()
    data = load_data(cfg, stft, data_root, progress=progress)
    t_data = time.time() - t1
    clf_info = {k: info.get(k) for k in ("test_acc", "val_acc", "checkpoint", "train_seconds") if k in info}
    net, feats = type(model.net).__name__, type(model.features).__name__
    clf_info["description"] = f"{net} {getattr(model.net, 'channels', '')} on {feats}"
    clf_info["classes"] = list(classes)
    res = run_benchmark(model, stft, data, config=cfg, out_dir=out_dir, cache_dir=Path(cache_dir) / "interpreters",
                        data_root=data_root, classifier_info=clf_info, sanity=sanity, refit=refit, progress=progress)
    res["timing"]["classifier_seconds"] = round(t_clf, 2)
    res["timing"]["data_seconds"] = round(t_data, 2)
    res["timing"]["suite_total_seconds"] = round(time.time() - t0, 2)
    from .report import write_json

    write_json(res, out_dir / "results.json")
    return res


# --- command line --------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_dotted(d: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value


def build_parser(prog: str = "captum-lmac benchmark") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a comparative benchmark suite: Captum baselines, L-MAC (+ fine-tuned) and L2I, "
                    "in- and out-of-domain, STFT→Mel and Mel domains; writes results.json/csv/md and report.html.",
    )
    p.add_argument("suite", help="suite name (synthetic, esc10, fsdd, esc50, us8k) or a JSON config file")
    p.add_argument("--out", default=None, help="output folder (default: benchmark_out/<suite>)")
    p.add_argument("--cache", default="cache",
                   help="cache folder: classifiers/<suite>.pt and interpreters/ (default: cache)")
    p.add_argument("--data-root", default=None, help="data root (default: $CAPTUM_LMAC_DATA or ../shared/data)")
    snr = p.add_mutually_exclusive_group()
    snr.add_argument("--snr", type=float, default=None,
                     help="SNR in dB of every out-of-domain condition (default 3, the papers)")
    snr.add_argument("--snr-preset", choices=sorted(SNR_PRESETS), default=None,
                     help="paper: 3 dB everywhere; released: the reference code's 12 dB clip/speech, 6 dB white noise")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods, e.g. gradcam,ig,lmac (default: the suite's)")
    p.add_argument("--conditions", default=None, help="comma-separated: in-domain,clip,white,speech,ambient")
    p.add_argument("--domains", default=None, help="comma-separated: stft,mel")
    p.add_argument("--n-test", type=int, default=None, help="test clips per condition (stratified over classes)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--classifier", default=None,
                   help="a classifier saved with captum_lmac.save_classifier (instead of the suite's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config entry (dotted key, JSON value), e.g. --set lmac.fit.epochs=15")
    p.add_argument("--no-sanity", action="store_true", help="skip the cascading-randomisation sanity check")
    p.add_argument("--refit", action="store_true", help="refit interpreters even if cached")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``captum-lmac benchmark <suite> [--out DIR] [--cache DIR] [--data-root DIR]
    [--snr DB | --snr-preset paper|released] [--methods a,b,c] [--n-test N] [--seed S] ...``.

    ``argv`` excludes the program name (a leading ``"benchmark"`` is accepted and skipped).
    Returns the exit status (0 on success, 2 on a data / input problem).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "benchmark":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: Dict[str, Any] = {}
    if args.snr is not None:
        overrides["snr_db"] = args.snr
    if args.snr_preset is not None:
        overrides["snr_preset"] = args.snr_preset
        overrides["snr_db"] = None
    if args.methods:
        overrides["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.conditions:
        overrides["conditions"] = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if args.domains:
        overrides["domains"] = [d.strip() for d in args.domains.split(",") if d.strip()]
    if args.n_test is not None:
        overrides["n_test"] = args.n_test
    if args.seed is not None:
        overrides["seed"] = args.seed
    for item in args.set:
        if "=" not in item:
            print(f"error: --set wants KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        _set_dotted(overrides, k.strip(), _parse_value(v.strip()))
    try:
        res = run_suite(args.suite, out_dir=args.out, cache_dir=args.cache, data_root=args.data_root,
                        overrides=overrides, classifier_path=args.classifier,
                        sanity=False if args.no_sanity else None, refit=args.refit, progress=not args.quiet)
    except (InputError, DataNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("benchmark_out") / res["suite"]
    print((out / "results.md").read_text())
    print(f"reports in {out}/ (report.html, results.json, results.csv, results.md); "
          f"total {res['timing'].get('suite_total_seconds', res['timing']['total_seconds']):.0f} s")
    return 0


__all__ = ["run_benchmark", "run_suite", "evaluate_masks", "load_data", "get_suite_classifier", "build_parser", "main",
           "to_features", "DOMAINS"]
