r"""Static plots of the reports, drawn from the JSON results alone (so ``captum-lmac report`` redraws them):

- :func:`interval_plot` — each metric per method with its 95 % interval, several series (the
  conditions of one domain, or the classifiers of a comparison) side by side; :func:`summary_plot`
  and :func:`comparison_plot` call it;
- :func:`fit_history_plot` — the per-epoch history of a learned method's fit (every loss term,
  the validation scores, the mask mean) with the kept (best) epoch marked;
- :func:`curve_plot` — y vs x curves with intervals, baselines dashed (e.g. ROAR: accuracy vs the
  share of removed bins, random removal dashed).

Every function writes one PNG atomically and returns its path. Labels, directions and number
formats come from the metric declarations (:func:`captum_lmac.metrics.metric_info`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from .._io import atomic_write  # noqa: E402
from ..errors import InputError  # noqa: E402
from ..metrics import METRICS, metric_info  # noqa: E402

PathLike = Union[str, Path]

SUMMARY_CATEGORIES = ("faithfulness", "complexity", "ground truth")
"""Metric categories the summary and comparison plots show (method-specific ones stay in the tables)."""

_DIRECTION = {True: "higher is better", False: "lower is better", None: "neither direction is better"}


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else float("nan")


def _save(fig: Any, path: PathLike, dpi: int = 100) -> Path:
    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


# --- metrics per method with intervals --------------------------------------------------------------


def interval_plot(
    series: Sequence[Tuple[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]],
    metrics: Sequence[str],
    path: PathLike,
    title: str = "",
    methods: Optional[Sequence[str]] = None,
    ncols: int = 4,
) -> Path:
    """Dot-and-interval panels: one panel per metric, methods down the side, one colour per series.

    Args:
        series: ``[(series label, {method: {metric: {"mean", "lo", "hi", ...}}}), ...]`` — e.g. one
            series per condition (the summary plot) or per classifier (the comparison plot).
        metrics: Metric names, one panel each (label, direction from their declarations).
        path: PNG path.
        title: Figure title.
        methods: Method order (default: first appearance over the series).
        ncols: Panels per row.

    Returns:
        Path: ``path``.
    """
    if not series:
        raise InputError("interval_plot needs at least one series")
    if not metrics:
        raise InputError("interval_plot needs at least one metric")
    if methods is None:
        methods = list(dict.fromkeys(m for _, by_method in series for m in by_method))
    methods = list(methods)
    n_m, n_s = len(methods), len(series)
    ncols = max(1, min(int(ncols), len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    axes_h = 0.2 * n_m * (1 + 0.25 * (n_s - 1)) + 0.1
    axes_w, gap_w, gap_h = 2.9, 0.2, 0.85  # inches: panel, between panels, between rows (titles, ticks)
    left = 0.25 + 0.058 * max(len(str(m)) for m in methods)
    top = 0.05 + (0.3 if title else 0.0) + 0.3 + 0.45  # figure title, legend, panel titles
    bottom = 0.35
    width = left + ncols * axes_w + (ncols - 1) * gap_w + 0.2
    height = top + nrows * axes_h + (nrows - 1) * gap_h + bottom
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, sharey=True)
    fig.subplots_adjust(left=left / width, right=1 - 0.2 / width, top=1 - top / height, bottom=bottom / height,
                        wspace=gap_w / axes_w, hspace=gap_h / axes_h)
    colours = plt.get_cmap("tab10")
    y = np.arange(n_m)[::-1].astype(float)  # first method on top
    band = 0.75
    for k, metric in enumerate(metrics):
        ax = axes[k // ncols][k % ncols]
        info = metric_info(metric)
        for j, (slabel, by_method) in enumerate(series):
            off = (j - (n_s - 1) / 2) * (band / max(n_s, 1)) if n_s > 1 else 0.0
            mean, lo, hi, pos = [], [], [], []
            for i, name in enumerate(methods):
                agg = (by_method.get(name) or {}).get(metric) or {}
                v = _num(agg.get("median" if info.summary == "median" else "mean"))
                if not math.isfinite(v):
                    continue
                lo_v, hi_v = _num(agg.get("lo")), _num(agg.get("hi"))
                lo_v = v if not math.isfinite(lo_v) else min(lo_v, v)
                hi_v = v if not math.isfinite(hi_v) else max(hi_v, v)
                mean.append(v)
                lo.append(v - lo_v)
                hi.append(hi_v - v)
                pos.append(y[i] - off)
            if pos:
                ax.errorbar(mean, pos, xerr=[lo, hi], fmt="o", ms=3.5, lw=1.2, capsize=2, color=colours(j % 10),
                            label=slabel if k == 0 else None)
        ax.set_title(f"{info.label}{info.arrow}\n({_DIRECTION[info.higher_is_better]})", fontsize=8.5)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
        for b in y[:-1]:
            ax.axhline(b - 0.5, color="#ddd", lw=0.6)
    for k in range(len(metrics), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    for row in axes:
        row[0].set_yticks(y)
        row[0].set_yticklabels(methods, fontsize=7.5)
        row[0].set_ylim(-0.6, n_m - 0.4)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.05 / height, va="top")
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 5), fontsize=7.5, frameon=False,
                   bbox_to_anchor=(0.5, 1 - (0.05 + (0.3 if title else 0.0)) / height))
    return _save(fig, path)


def summary_metrics(rows: Sequence[Mapping[str, Any]], categories: Sequence[str] = SUMMARY_CATEGORIES) -> List[str]:
    """The metrics of ``rows`` a summary plot shows: declared in ``categories``, with a finite value
    in at least one row, in declaration order."""
    from_rows = list(dict.fromkeys(m for r in rows for m in r.get("metrics", {})))
    ordered = [m for m in METRICS if m in from_rows] + [m for m in from_rows if m not in METRICS]
    keep = []
    for m in ordered:
        if metric_info(m).category not in categories:
            continue
        if any(math.isfinite(_num((r.get("metrics", {}).get(m) or {}).get("mean"))) for r in rows):
            keep.append(m)
    return keep


def summary_plot(rows: Sequence[Mapping[str, Any]], path: PathLike, title: str = "",
                 conditions: Optional[Sequence[Tuple[str, str]]] = None) -> Optional[Path]:
    """The summary plot of one domain: each metric per method with its 95 % interval, every
    condition side by side (``rows``: the result rows of that domain).

    Args:
        conditions: ``[(name, label), ...]`` in display order (default: order of appearance).

    Returns:
        The PNG path, or None when the rows have no metric to show.
    """
    if conditions is None:
        conditions = list(dict.fromkeys((r["condition"], r.get("condition_label", r["condition"])) for r in rows))
    metrics = summary_metrics(rows)
    if not metrics or not rows:
        return None
    series = []
    for name, lab in conditions:
        by_method = {r["method"]: r["metrics"] for r in rows if r["condition"] == name}
        if by_method:
            series.append((lab, by_method))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return interval_plot(series, metrics, path, title=title, methods=methods)


def comparison_plot(runs: Sequence[Tuple[str, Sequence[Mapping[str, Any]]]], path: PathLike,
                    title: str = "") -> Optional[Path]:
    """Each metric per method with its 95 % interval, one series per classifier.

    Args:
        runs: ``[(classifier label, rows of one domain and condition), ...]``.
    """
    all_rows = [r for _, rows in runs for r in rows]
    metrics = summary_metrics(all_rows)
    if not metrics:
        return None
    series = [(lab, {r["method"]: r["metrics"] for r in rows}) for lab, rows in runs if rows]
    methods = list(dict.fromkeys(r["method"] for r in all_rows))
    return interval_plot(series, metrics, path, title=title, methods=methods)


# --- fit histories ----------------------------------------------------------------------------------

TERM_LABELS: Dict[str, str] = {
    "loss": "total loss",
    "in": "masked-in CE: CE(f(M·X), ŷ)",
    "out": "masked-out CE: CE(f((1−M)·X), ŷ)",
    "l1": "sparsity: mean |M|",
    "guidance": "guidance towards the clean source",
    "guided_fraction": "share of guided samples",
    "mask_mean": "mask mean",
    "fid_in": "Fid-In",
    "ai": "AI (%)",
    "fidelity": "fidelity CE(Θ(H), f(x))",
    "nmf": "NMF reconstruction",
    "fid_acc": "top-1 fidelity of Θ",
    "fid_top3": "top-3 fidelity of Θ",
    "sim": "similarity term",
    "div": "diversity term",
    "mm_own": "mask mean, own prompt",
    "mm_other": "mask mean, other prompts",
}
"""Panel titles of known history series (others are titled by their key)."""


def history_terms(history: Mapping[str, Sequence[Any]]) -> List[str]:
    """The terms of a fit history that a plot shows: each training series and each ``val_*`` series
    by its base name (``val_fid_in`` → ``fid_in``), ``loss`` first, series that stayed 0 left out."""
    terms: List[str] = []
    for k in history:
        base = k[4:] if k.startswith("val_") else k
        if base not in terms:
            terms.append(base)
    if "loss" in terms:
        terms.remove("loss")
        terms.insert(0, "loss")

    def informative(t: str) -> bool:
        vals = [_num(v) for key in (t, f"val_{t}") for v in (history.get(key) or [])]
        return any(math.isfinite(v) and v != 0.0 for v in vals)

    return [t for t in terms if informative(t)]


def fit_history_plot(info: Mapping[str, Any], path: PathLike, title: str = "", ncols: int = 4) -> Optional[Path]:
    """The per-epoch history of one fit: a panel per term, training solid, validation dashed, the
    kept (best) epoch marked.

    Args:
        info: A fit entry of ``results["fits"]`` (:func:`~captum_lmac.benchmark.registry.history_summary`):
            ``history`` → ``{series: [value per epoch]}``, optional ``best_epoch`` (0-based).

    Returns:
        The PNG path, or None when ``info`` has no history.
    """
    history = info.get("history") or {}
    terms = history_terms(history)
    if not terms:
        return None
    ncols = max(1, min(int(ncols), len(terms)))
    nrows = math.ceil(len(terms) / ncols)
    axes_w, axes_h, gap_w, gap_h = 2.4, 1.6, 0.6, 0.75  # inches
    left, right, top, bottom = 0.6, 0.15, 0.35 + (0.3 if title else 0.0), 0.75
    width = left + ncols * axes_w + (ncols - 1) * gap_w + right
    height = top + nrows * axes_h + (nrows - 1) * gap_h + bottom
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=gap_w / axes_w, hspace=gap_h / axes_h)
    best = info.get("best_epoch")
    for k, t in enumerate(terms):
        ax = axes[k // ncols][k % ncols]
        for key, style, colour, lab in ((t, "-", "C0", "train"), (f"val_{t}", "--", "C1", "validation")):
            vals = history.get(key)
            if not vals:
                continue
            v = np.array([_num(x) for x in vals])
            ax.plot(np.arange(1, len(v) + 1), v, style, color=colour, marker="o", ms=3, lw=1.3, label=lab)
        if isinstance(best, int):
            ax.axvline(best + 1, color="#888", ls=":", lw=1, label="kept epoch")
        ax.set_title(TERM_LABELS.get(t, t), fontsize=8.5)
        ax.set_xlabel("epoch", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        n_ep = max(len(history.get(key) or []) for key in (t, f"val_{t}"))
        ax.set_xlim(0.5, n_ep + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    handles: Dict[str, Any] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=7.5,
                   frameon=False, bbox_to_anchor=(0.5, 0.02 / height))
    for k in range(len(terms), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.05 / height, va="top")
    return _save(fig, path)


# --- curves (ROAR and other analyses) ---------------------------------------------------------------


def curve_plot(curves: Mapping[str, Any], path: PathLike, title: str = "") -> Path:
    """y vs x for several series, with interval bands; baseline series dashed.

    Args:
        curves: ``{"x": [...], "x_label": str, "y_label": str, "title": str (optional),
            "series": {name: {"mean": [...], "lo": [...] (optional), "hi": [...] (optional),
            "baseline": bool (optional)}}}`` — e.g. ROAR: x the share of removed bins (%), y the
            retrained classifier's accuracy, ``"random"`` a baseline.

    Raises:
        InputError: when ``x`` or ``series`` is missing or a series does not match ``x``.
    """
    x = curves.get("x")
    series = curves.get("series")
    if not isinstance(x, (list, tuple)) or not x or not isinstance(series, Mapping) or not series:
        raise InputError("a curves entry needs a non-empty 'x' list and a 'series' mapping")
    xs = np.array([_num(v) for v in x])
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for name, s in series.items():
        mean = s.get("mean") if isinstance(s, Mapping) else s
        if not isinstance(mean, (list, tuple)) or len(mean) != len(xs):
            raise InputError(f"curve {name!r}: 'mean' must list one value per x ({len(xs)})")
        m = np.array([_num(v) for v in mean])
        style = "--" if isinstance(s, Mapping) and s.get("baseline") else "-"
        line, = ax.plot(xs, m, style, marker="o", ms=3.5, label=str(name))
        if isinstance(s, Mapping) and s.get("lo") is not None and s.get("hi") is not None:
            lo = np.array([_num(v) for v in s["lo"]])
            hi = np.array([_num(v) for v in s["hi"]])
            if lo.shape == m.shape and hi.shape == m.shape:
                ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
    ax.set_xlabel(str(curves.get("x_label", "x")))
    ax.set_ylabel(str(curves.get("y_label", "y")))
    ax.set_title(title or str(curves.get("title", "")), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["interval_plot", "summary_plot", "comparison_plot", "summary_metrics", "fit_history_plot",
           "history_terms", "curve_plot", "SUMMARY_CATEGORIES", "TERM_LABELS"]
