r"""Benchmark outputs: ``results.json``, ``results.csv``, ``results.md`` (the papers' table layout),
``report.html`` and its static figures, and the comparison of several classifiers.

The results object is a plain JSON-able dict produced by :func:`captum_lmac.benchmark.harness.run_benchmark`;
its ``rows`` hold one entry per suite / domain / condition / method with ``metrics`` →
``{"mean", "lo", "hi", "median", "n"}`` (95 % bootstrap interval) and ``ms_per_clip``.

``report.html`` is written for a person who reads and listens: a "how to read this" section (what
a mask is; every metric's meaning and better direction, from its declaration in
:mod:`captum_lmac.metrics`), the metrics summary table, a summary plot per domain (each metric per
method with its 95 % interval, every condition side by side), every result table, the per-epoch fit
histories of the learned methods, the randomisation check, the suite's analyses, and per-clip cards
(input spectrogram and player, the true source where known, each method's mask, masked spectrogram
and listenable explanation). Every figure is a static PNG in the results folder, so the page works
offline from the folder (no script, font or style sheet is fetched).

Figures are drawn from the results alone, so :func:`rerender` (``captum-lmac report DIR``) redraws
them from an existing ``results.json`` without recomputing anything; the clips' media already in the
folder are reused. :func:`compare` (``captum-lmac report DIR1 DIR2 ... --out DIR``) puts several
runs whose classifiers differ side by side.

Analyses (``results["analyses"][name]``) appear in the report with their Markdown (if their
:class:`~captum_lmac.benchmark.registry.AnalysisSpec` has one) and their figures, from three hooks:

1. ``result["plots"]``: PNG files the analysis drew while it ran (paths relative to the results
   folder; shown when present);
2. ``result["curves"]``: curves in the shape :func:`captum_lmac.benchmark.plots.curve_plot` takes
   (``{"x", "x_label", "y_label", "series": {name: {"mean", "lo", "hi", "baseline"}}}``, or a list of
   them) — the report draws them itself, e.g. ROAR: accuracy vs share of removed bins, random dashed;
3. :func:`register_analysis_figures` ``(name, draw)``: ``draw(result, out_dir)`` draws figures from
   the JSON result and returns their relative paths — called at every render, so they are redrawn
   by ``captum-lmac report``.
"""

from __future__ import annotations

import copy
import csv
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .._io import atomic_write
from .._utils import to_jsonable
from ..errors import InputError
from ..metrics import METRICS, metric_info
from . import plots
from .media import plot_cascading
from .registry import ANALYSES

PathLike = Union[str, Path]


def direction(metric: str) -> Optional[bool]:
    """True if higher is better, False if lower is better, None if neither (from the declaration)."""
    return metric_info(metric).higher_is_better


def label(metric: str) -> str:
    """The column header of ``metric`` (from its declaration)."""
    return metric_info(metric).label


def summary_value(agg: Mapping[str, Any], metric: str) -> Optional[float]:
    """The value a table shows for ``metric``: its mean, or its median where the metric says so."""
    return agg.get("median" if metric_info(metric).summary == "median" else "mean")


def row_value(row: Mapping[str, Any], metric: str) -> Optional[float]:
    """The value a table shows for ``metric`` in ``row``: the mean over interpreter seeds when the
    row was fitted with several (``row["seeds"]``), else :func:`summary_value` of its clips."""
    seeds = row.get("seeds") or {}
    if metric in (seeds.get("mean") or {}) and metric_info(metric).summary == "mean":
        return seeds["mean"][metric]
    return summary_value(row["metrics"].get(metric, {}) or {}, metric)


def row_text(row: Mapping[str, Any], metric: str) -> str:
    """``row_value`` formatted, with ``± sd`` over interpreter seeds where there are several."""
    text = fmt(row_value(row, metric), metric)
    seeds = row.get("seeds") or {}
    sd = (seeds.get("sd") or {}).get(metric)
    if sd is not None and metric in (seeds.get("mean") or {}) and metric_info(metric).summary == "mean" \
            and isinstance(sd, (int, float)) and math.isfinite(sd):
        text += f" ± {fmt(sd, metric)}"
    return text


def fmt(value: Optional[float], metric: str) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    text = f"{value:.{metric_info(metric).decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.000"


def fmt_ms(ms: Optional[float]) -> str:
    if not _finite(ms):
        return "–"
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


# --- grouping -----------------------------------------------------------------------------------


def table_groups(results: Mapping[str, Any]) -> List[Tuple[Tuple[str, str], List[Dict[str, Any]]]]:
    """Rows grouped by (domain, condition), in the order the domains and conditions were run."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for row in results["rows"]:
        groups.setdefault((row["domain"], row["condition"]), []).append(row)
    dom_order = [d["name"] for d in results.get("domains", [])]
    cond_order = [c["name"] for c in results.get("conditions", [])]

    def key(k):
        d, c = k
        return (dom_order.index(d) if d in dom_order else 99, cond_order.index(c) if c in cond_order else 99)

    return [(k, groups[k]) for k in sorted(groups, key=key)]


def domain_groups(results: Mapping[str, Any]) -> List[Tuple[str, str, List[Dict[str, Any]]]]:
    """``[(domain, domain label, rows), ...]`` in the order the domains were run."""
    out: Dict[str, Tuple[str, List[Dict[str, Any]]]] = {}
    for (domain, _), rows in table_groups(results):
        lab, acc = out.setdefault(domain, (rows[0].get("domain_label", domain), []))
        acc.extend(rows)
    return [(d, lab, rows) for d, (lab, rows) in out.items()]


def result_metrics(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """Every metric name in ``rows``, declared ones first in declaration order."""
    present = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    return [m for m in METRICS if m in present] + [m for m in present if m not in METRICS]


def table_metrics(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """The metric columns with at least one finite value in ``rows``."""
    return [m for m in result_metrics(rows) if any(_finite(r["metrics"].get(m, {}).get("mean")) for r in rows)]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def best_rows(rows: Sequence[Mapping[str, Any]], metric: str) -> set:
    """Indices of the rows holding the best value of ``metric`` (ties at display precision included;
    none when all rows show the same value; reference rows such as the unmasked mixture never count)."""
    higher = direction(metric)
    if higher is None:
        return set()
    vals = []
    for i, r in enumerate(rows):
        if r.get("kind") == "reference":
            continue
        v = row_value(r, metric)
        if _finite(v):
            vals.append((i, round(float(v), metric_info(metric).decimals)))
    if len(vals) < 2 or len({v for _, v in vals}) == 1:
        return set()  # nothing to single out when every row shows the same value
    target = max(v for _, v in vals) if higher else min(v for _, v in vals)
    return {i for i, v in vals if v == target}


def _snr_text(results: Mapping[str, Any]) -> str:
    conds = [c for c in results.get("conditions", []) if c.get("snr_db") is not None]
    if not conds:
        return "no contaminated condition"
    parts = ", ".join(f"{c['name']} {c['snr_db']:g} dB" for c in conds)
    preset = results.get("snr_preset")
    return f"{parts}" + (f" (preset: {preset})" if preset else "")


def _safe(name: str) -> str:
    """A file-name fragment of ``name`` (letters, digits, ``-``; ``+`` → ``p``)."""
    out = "".join(ch if ch.isalnum() or ch == "-" else ("p" if ch == "+" else "_") for ch in str(name))
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_") or "x"


# --- JSON / CSV -----------------------------------------------------------------------------------


def write_json(obj: Any, path: Path) -> Path:
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def csv_rows(results: Mapping[str, Any]) -> Tuple[List[str], List[List[Any]]]:
    """Header and rows of ``results.csv``: one row per suite/domain/condition/method."""
    header = ["suite", "domain", "domain_label", "condition", "condition_label", "snr_db", "method", "n", "ms_per_clip"]
    metrics = result_metrics(results["rows"])
    for m in metrics:
        header += [f"{m}_mean", f"{m}_lo", f"{m}_hi"]
    out = []
    for r in results["rows"]:
        line = [r.get("suite", results.get("suite", "")), r["domain"], r.get("domain_label", ""), r["condition"],
                r.get("condition_label", ""), "" if r.get("snr_db") is None else r["snr_db"], r["method"],
                r.get("n", ""), "" if not _finite(r.get("ms_per_clip")) else round(r["ms_per_clip"], 3)]
        for m in metrics:
            agg = r["metrics"].get(m, {})
            for k in ("mean", "lo", "hi"):
                v = agg.get(k)
                line.append("" if not _finite(v) else round(float(v), 6))
        out.append(line)
    return header, out


def write_csv(results: Mapping[str, Any], path: Path) -> Path:
    header, rows = csv_rows(results)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))


# --- figures --------------------------------------------------------------------------------------

FIGURES_DIR = "figures"
"""Sub-folder of the results folder holding the report's plots (``sanity_cascading.png`` stays at the top)."""

AnalysisFigures = Callable[[Mapping[str, Any], Path], Sequence[str]]
ANALYSIS_FIGURES: Dict[str, AnalysisFigures] = {}
"""Figure drawers of analyses by analysis name (see :func:`register_analysis_figures`)."""


def register_analysis_figures(name: str, draw: AnalysisFigures, overwrite: bool = False) -> AnalysisFigures:
    """Let the report draw the figures of analysis ``name`` from its JSON result.

    ``draw(result, out_dir)`` gets ``results["analyses"][name]`` and the results folder, writes its
    PNGs there (e.g. under ``figures/``) and returns their paths relative to ``out_dir``. It runs at
    every render — :func:`write_report` and ``captum-lmac report`` — so the figures are redrawn from
    ``results.json`` alone.

    Examples::

        >>> def draw_roar(res, out):
        ...     return [str(plots.curve_plot(res["curves"], out / "figures" / "roar.png").relative_to(out))]
        >>> register_analysis_figures("roar", draw_roar)
    """
    if not isinstance(name, str) or not name:
        raise InputError("register_analysis_figures: the analysis name must be a non-empty string")
    if not callable(draw):
        raise InputError(f"register_analysis_figures({name!r}): draw must be callable (result, out_dir) -> paths")
    if name in ANALYSIS_FIGURES and not overwrite:
        raise InputError(f"analysis figures for {name!r} are already registered; pass overwrite=True to replace them")
    ANALYSIS_FIGURES[name] = draw
    return draw


def unregister_analysis_figures(name: str) -> None:
    """Remove the figure drawer of analysis ``name`` (tests and notebooks clean up with it)."""
    ANALYSIS_FIGURES.pop(name, None)


def _curve_sets(result: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    curves = result.get("curves") if isinstance(result, Mapping) else None
    if isinstance(curves, Mapping):
        return [curves]
    if isinstance(curves, (list, tuple)):
        return [c for c in curves if isinstance(c, Mapping)]
    return []


def figure_plan(results: Mapping[str, Any]) -> Dict[str, Any]:
    """The figures the report draws from ``results`` (paths relative to the results folder):
    ``summary`` → ``[(domain, label, path)]``, ``fits`` → ``[(fit key, path)]``, ``sanity`` → path or
    None, ``analyses`` → ``{name: [paths]}`` (curves; registered drawers add theirs when drawn)."""
    plan: Dict[str, Any] = {"summary": [], "fits": [], "sanity": None, "analyses": {}}
    for domain, lab, rows in domain_groups(results):
        if plots.summary_metrics(rows):
            plan["summary"].append((domain, lab, f"{FIGURES_DIR}/summary_{_safe(domain)}.png"))
    for key, info in (results.get("fits") or {}).items():
        if isinstance(info, Mapping) and plots.history_terms(info.get("history") or {}):
            plan["fits"].append((key, f"{FIGURES_DIR}/fit_{_safe(key)}.png"))
    san = results.get("sanity")
    if isinstance(san, Mapping) and san.get("methods") and san.get("stages"):
        plan["sanity"] = san.get("plot") or "sanity_cascading.png"
    for name, res in (results.get("analyses") or {}).items():
        sets = _curve_sets(res)
        if sets:
            plan["analyses"][name] = [f"{FIGURES_DIR}/{_safe(name)}_curves{'' if i == 0 else i + 1}.png"
                                      for i in range(len(sets))]
    return plan


def draw_figures(results: Mapping[str, Any], out_dir: PathLike) -> Dict[str, Any]:
    """Draw every figure of :func:`figure_plan` (and the registered analysis drawers) into ``out_dir``.

    Returns the plan, with ``analyses`` extended by the drawers' outputs.
    """
    out = Path(out_dir)
    plan = figure_plan(results)
    suite = results.get("suite", "")
    for domain, lab, rel in plan["summary"]:
        rows = next(r for d, _, r in domain_groups(results) if d == domain)
        conds = list(dict.fromkeys((r["condition"], r.get("condition_label", r["condition"])) for r in rows))
        plots.summary_plot(rows, out / rel, title=f"{suite}: {lab} — each metric per method, mean and 95 % interval",
                           conditions=conds)
    for key, rel in plan["fits"]:
        info = results["fits"][key]
        plots.fit_history_plot(info, out / rel, title=f"{key}: fit history")
    if plan["sanity"]:
        san = results["sanity"]
        plot_cascading(san, out / plan["sanity"], title=f"Cascading randomisation ({suite}, n = {san.get('n')})")
    for name, res in (results.get("analyses") or {}).items():
        for curves, rel in zip(_curve_sets(res), plan["analyses"].get(name, [])):
            plots.curve_plot(curves, out / rel)
        draw = ANALYSIS_FIGURES.get(name)
        if draw is not None and res:
            drawn = [str(p) for p in (draw(res, out) or [])]
            plan["analyses"][name] = list(dict.fromkeys(plan["analyses"].get(name, []) + drawn))
    return plan


def _analysis_images(name: str, res: Mapping[str, Any], figures: Mapping[str, Any]) -> List[str]:
    pre = [p if isinstance(p, str) else p.get("file") for p in (res.get("plots") or []) if p]
    return list(dict.fromkeys([p for p in pre if isinstance(p, str)] + list(figures["analyses"].get(name, []))))


# --- missing media ----------------------------------------------------------------------------------

_MEDIA_KEYS = ("input_png", "input_wav", "oracle_png", "target_wav", "png", "masked_png", "wav", "mel_png")


def prune_missing_media(results: Mapping[str, Any], out_dir: PathLike) -> Tuple[Dict[str, Any], List[str]]:
    """A copy of ``results`` without references to media files that are not in ``out_dir`` (the clips'
    pictures and WAVs, analysis plots drawn at run time), and the list of those missing files — so a
    page never shows a broken picture or a silent player. Figures the report draws itself are not
    checked: they are redrawn at every render."""
    out = Path(out_dir)
    res = copy.deepcopy(dict(results))
    missing: List[str] = []

    def keep(path: Any) -> bool:
        if not isinstance(path, str) or not path:
            return False
        if (out / path).is_file():
            return True
        missing.append(path)
        return False

    for ex in res.get("examples") or []:
        for clip in ex.get("clips", []):
            for k in _MEDIA_KEYS:
                if k in clip and not keep(clip[k]):
                    clip.pop(k)
            for m in clip.get("methods", []):
                for k in _MEDIA_KEYS:
                    if k in m and not keep(m[k]):
                        m.pop(k)
    for a in (res.get("analyses") or {}).values():
        if isinstance(a, dict) and a.get("plots"):
            a["plots"] = [p for p in a["plots"] if keep(p if isinstance(p, str) else (p or {}).get("file"))]
    return res, missing


# --- Markdown -----------------------------------------------------------------------------------


def _arrow(m: str) -> str:
    d = direction(m)
    return " ↑" if d else (" ↓" if d is False else "")


def fit_rows(results: Mapping[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    """``[(fit key, info)]`` of the learned methods' fits, in the order they ran."""
    return [(k, dict(v)) for k, v in (results.get("fits") or {}).items() if isinstance(v, Mapping)]


def _fit_cells(info: Mapping[str, Any]) -> List[str]:
    best = info.get("best_epoch")
    vals = ", ".join(f"{k[4:]} {v:.3g}" for k, v in info.items() if k.startswith("val_") and _finite(v))
    return [
        "–" if not isinstance(best, int) else str(best + 1),
        str(info.get("epochs_run", "–")),
        "–" if not _finite(info.get("seconds")) else f"{info['seconds']:.0f}",
        "–" if not isinstance(info.get("decoder_parameters"), int) else f"{info['decoder_parameters']:,}",
        vals or "–",
        _fit_check(info),
    ]


_SANITY_NOTE = ("Gradient methods are recomputed on the randomised classifier; a learned method keeps its fitted "
                "decoder (reading the randomised classifier's layers) at every stage, and its '(refit)' row is fitted "
                "again on the randomised classifier with the suite's fit settings (the like-with-like comparison; "
                "– = stage not refitted). 'another clip': SSIM between a clip's explanation and another clip's — "
                "what an unrelated explanation of the same sparsity scores.")

_FIT_HEAD = ["Fit", "kept epoch", "epochs", "seconds", "parameters", "validation at the kept epoch", "fit check"]

FLAG = "⚠"
"""Marks a row whose fit warned that it did not learn (near-constant masks, mask mean stuck near 0.5)."""


def method_label(row: Mapping[str, Any]) -> str:
    """The method name of a result row, with :data:`FLAG` when its fit did not learn (``fit_warnings``)."""
    return f"{row['method']} {FLAG}" if row.get("fit_warnings") else str(row["method"])


def _fit_check(info: Mapping[str, Any]) -> str:
    if "warnings" not in info:
        return "–"
    return f"{FLAG} did not learn: " + "; ".join(info["warnings"]) if info["warnings"] else "ok"


def _flag_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line naming the flagged rows and why (empty when none is)."""
    seen = {}
    for r in rows:
        if r.get("fit_warnings"):
            seen.setdefault(str(r["method"]), "; ".join(r["fit_warnings"]))
    return " · ".join(f"{FLAG} {name}: the fit did not learn ({why})" for name, why in seen.items())


def markdown(results: Mapping[str, Any], figures: Optional[Mapping[str, Any]] = None) -> str:
    """The results as Markdown: a header, then one methods × metrics table per domain and condition,
    the summary plots, the fits of the learned methods, the sanity check and the analyses.

    The best value of each metric column is bold (ties at display precision all bold), using the
    metric's declared direction (:func:`captum_lmac.metrics.metric_info`); the SNR of every
    out-of-domain condition is stated; the last column is the attribution time in ms per clip.
    ``figures``: what :func:`draw_figures` returned (default: :func:`figure_plan`).
    """
    figures = figures if figures is not None else figure_plan(results)
    lines = [f"# Benchmark `{results.get('suite', '')}`", ""]
    if results.get("description"):
        lines += [results["description"], ""]
    if results.get("notes"):
        lines += [results["notes"], ""]
    clf = results.get("classifier", {}) or {}
    acc = clf.get("test_acc")
    facts = [
        f"- Test clips per condition: {results.get('n_test')} (seed {results.get('seed')})",
        f"- Out-of-domain SNR: {_snr_text(results)}",
    ]
    if acc is not None:
        facts.append(f"- Classifier: {clf.get('description', 'reference classifier')}, test accuracy {100 * acc:.1f} %")
    facts.append("- Metrics: mean over clips; 95 % bootstrap intervals in `results.csv` / `report.html`; "
                 "c = argmax f(input) (the contaminated input for out-of-domain conditions); "
                 "best value per column in **bold** (↑ higher / ↓ lower is better); learned methods fitted with "
                 "several interpreter seeds show the mean over seeds ± its sd (per-seed values in `results.json`)")
    if results.get("ground_truth_note"):
        facts.append(f"- {results['ground_truth_note']}")
    lines += facts + [""]
    for (domain, cond), rows in table_groups(results):
        first = rows[0]
        n = first.get("n")
        lines.append(f"## {first.get('domain_label', domain)} — {first.get('condition_label', cond)} (n = {n})")
        lines.append("")
        metrics = table_metrics(rows)
        head = ["Method"] + [label(m) + _arrow(m) for m in metrics] + ["ms/clip"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
        bold = {m: best_rows(rows, m) for m in metrics}
        for i, r in enumerate(rows):
            cells = [method_label(r)]
            for m in metrics:
                txt = row_text(r, m)
                cells.append(f"**{txt}**" if i in bold[m] else txt)
            cells.append(fmt_ms(r.get("ms_per_clip")))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        note = _flag_note(rows)
        if note:
            lines += [note, ""]
    if figures["summary"]:
        lines += ["## Summary plots", "", "Each metric per method with its 95 % interval, every condition side by side.", ""]
        for _, lab, rel in figures["summary"]:
            lines += [f"![summary: {lab}]({rel})", ""]
    fits = fit_rows(results)
    if fits:
        lines += ["## Fits of the learned methods", ""]
        lines.append("| " + " | ".join(_FIT_HEAD) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(_FIT_HEAD) - 2) + [":---"]) + "|")
        for key, info in fits:
            lines.append("| " + " | ".join([key] + _fit_cells(info)) + " |")
        lines.append("")
        for key, rel in figures["fits"]:
            lines += [f"![fit history: {key}]({rel})", ""]
    san = results.get("sanity")
    if san and san.get("methods"):
        lines.append(f"## Sanity check: cascading model randomisation (n = {san.get('n')})")
        lines.append("")
        lines.append("SSIM between the original explanation and the explanation of the classifier randomised "
                     "from the logits down (1 = unchanged; a method that depends on the classifier should fall). "
                     + _SANITY_NOTE)
        lines.append("")
        stages = san["stages"]
        lines.append("| Method | " + " | ".join(stages) + " | another clip |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(stages) + 1)) + "|")
        for name, r in san["methods"].items():
            lines.append(f"| {name} | " + " | ".join(fmt(v, "FF") for v in r["mean"]) + f" | {fmt(r.get('chance'), 'FF')} |")
        if san.get("decision_unchanged"):
            lines.append("| (decision unchanged) | " + " | ".join(f"{v:.2f}" for v in san["decision_unchanged"]) + " | |")
        lines.append("")
        plot = figures.get("sanity") or san.get("plot")
        if plot:
            lines.append(f"![cascading randomisation]({plot})")
            lines.append("")
    for name, res in (results.get("analyses") or {}).items():
        if not res:
            continue
        spec = ANALYSES.get(name)
        if spec is not None and spec.markdown is not None:
            text = spec.markdown(res)
            lines += [text, ""]
        else:
            text = ""
            lines += [f"## {spec.description if spec is not None and spec.description else name}", ""]
        for rel in _analysis_images(name, res, figures):
            if f"]({rel})" not in text:
                lines += [f"![{name}]({rel})", ""]
    if results.get("skipped"):
        lines.append("Skipped: " + "; ".join(results["skipped"]))
        lines.append("")
    return "\n".join(lines)


# --- HTML building blocks (shared with the demo page) ---------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:1.5em auto;color:#222;
max-width:1500px;padding:0 1em;line-height:1.4}
h1{margin-bottom:0.2em} h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:1.6em}
nav{font-size:13px;margin:0.6em 0 1em 0} nav a{margin-right:1em}
table.res{border-collapse:collapse;margin:0.5em 0 1.5em 0;font-size:13px}
table.res th,table.res td{border:1px solid #ccc;padding:3px 7px;text-align:right}
table.res th:first-child,table.res td:first-child{text-align:left}
table.res td.best{font-weight:bold;background:#eef6ee}
table.res tr.flagged td:first-child{color:#a15c00}
.flag{color:#a15c00}
table.res caption{text-align:left;font-size:13px;color:#555;padding-bottom:4px;caption-side:top}
.ci{color:#888;font-size:10px;display:block}
.meta{color:#555;font-size:13px}
.howto{background:#f7f7fa;border:1px solid #e2e2ea;border-radius:6px;padding:0.6em 1.2em;font-size:14px}
.howto dl{display:grid;grid-template-columns:max-content auto;column-gap:1em;row-gap:0.25em;margin:0.5em 0}
.howto dt{font-weight:bold} .howto dd{margin:0}
img.plot{max-width:100%;height:auto;display:block;margin:0.5em 0 1em 0;border:1px solid #eee}
.card{border:1px solid #ddd;border-radius:6px;padding:0.5em 0.8em;margin:0.8em 0;background:#fcfcfc}
.card h4{margin:0.2em 0 0.5em 0}
.tiles{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
figure.tile{margin:0;width:266px;border:1px solid #e5e5e5;border-radius:4px;padding:4px;background:#fff}
figure.tile figcaption{font-size:12px;margin-bottom:3px}
figure.tile img{width:260px;height:150px;display:block}
figure.tile img.spec{height:auto}
figure.tile .lab{font-size:11px;color:#666;margin-top:3px}
audio{width:260px;height:30px;margin-top:4px;display:block}
pre{background:#f6f6f6;padding:0.6em;overflow-x:auto;font-size:12px}
"""


def img_html(src: Optional[str], alt: str, cls: str = "", lazy: bool = False) -> str:
    """An ``<img>`` of a file inside the page's folder ('' when there is none)."""
    if not src:
        return ""
    c = f" class='{cls}'" if cls else ""
    lz = " loading='lazy'" if lazy else ""
    return f"<img{c} src='{html.escape(src)}' alt='{html.escape(alt)}'{lz}>"


def audio_html(src: Optional[str], title: str = "") -> str:
    """A player for a WAV file inside the page's folder ('' when there is none)."""
    if not src:
        return ""
    t = f" title='{html.escape(title)}'" if title else ""
    return f"<audio controls preload='metadata' src='{html.escape(src)}'{t}></audio>"


def _direction_text(m: str) -> str:
    return {True: "higher is better", False: "lower is better", None: "reported, not ranked"}[direction(m)]


HOW_TO_READ_BASICS = (
    "<b>Mask.</b> An explanation is a mask M with the size of the input spectrogram |X| (frequency "
    "upwards, time to the right): 1 keeps a time-frequency bin, 0 removes it. In the mask pictures "
    "yellow is kept and dark blue removed.",
    "<b>Masked spectrogram.</b> M ⊙ X is what the mask keeps of the input, drawn on the input's own dB "
    "scale, so removed parts turn black.",
    "<b>Listening.</b> The listenable explanation is ISTFT((M ⊙ X)·e<sup>jP</sup>) with the input's "
    "phase P: it should sound like the part of the clip the classifier relied on. Where the true "
    "source is known (a sound event added to a background), its player lets you compare.",
    "<b>Whose decision.</b> Every method explains c = argmax f(X), the classifier's own decision on "
    "the input — not the ground-truth label. Faithfulness metrics ask whether the masked-in input "
    "M ⊙ X keeps the probability of c and whether the masked-out input (1 − M) ⊙ X loses it.",
    "<b>Numbers.</b> Tables give the mean over clips with the 95 % bootstrap interval of that mean "
    "below it in grey; the best value of each column is highlighted following the metric's direction. "
    "Overlapping intervals mean the difference is not established with this many clips.",
)


def how_to_read_html(metrics: Sequence[str], extra: Sequence[str] = (), title: str = "How to read this") -> str:
    """The "how to read this" box: what a mask is, how to listen, and every metric of ``metrics`` with
    its meaning and better direction (from the metric declarations)."""
    items = "".join(f"<li>{t}</li>" for t in list(HOW_TO_READ_BASICS) + list(extra))
    dl = []
    for m in metrics:
        info = metric_info(m)
        desc = html.escape(info.description) if info.description else "(no description declared)"
        dl.append(f"<dt>{html.escape(info.label + info.arrow)}</dt><dd>{desc} — <i>{_direction_text(m)}</i>.</dd>")
    return (f"<section class='howto' id='how-to-read'><h2>{html.escape(title)}</h2><ul>{items}</ul>"
            f"<p><b>Metrics</b> (↑ higher is better, ↓ lower is better):</p><dl>{''.join(dl)}</dl></section>")


def metrics_table_html(rows: Sequence[Mapping[str, Any]], table_id: Optional[str] = None,
                       caption: Optional[str] = None, metrics: Optional[Sequence[str]] = None) -> str:
    """A methods × metrics table: mean (or median) with its 95 % interval, best value per column
    highlighted, attribution time in ms per clip when the rows have it.

    ``rows``: ``[{"method", "metrics": {name: {"mean", "lo", "hi", "n"}}, "ms_per_clip"}, ...]``.
    """
    metrics = list(metrics) if metrics is not None else table_metrics(rows)
    bold = {m: best_rows(rows, m) for m in metrics}
    with_ms = any(_finite(r.get("ms_per_clip")) for r in rows)
    tid = f" id='{html.escape(table_id)}'" if table_id else ""
    out = [f"<table class='res'{tid}>"]
    if caption:
        out.append(f"<caption>{caption}</caption>")
    out.append("<tr><th>Method</th>")
    out += [f"<th title='{html.escape(metric_info(m).description)}'>{html.escape(label(m) + _arrow(m))}</th>"
            for m in metrics]
    out.append("<th>ms/clip</th></tr>" if with_ms else "</tr>")
    for i, r in enumerate(rows):
        if r.get("fit_warnings"):
            why = "the fit did not learn: " + "; ".join(r["fit_warnings"])
            out.append(f"<tr class='flagged'><td title='{html.escape(why)}'>{html.escape(method_label(r))}</td>")
        else:
            out.append(f"<tr><td>{html.escape(str(r['method']))}</td>")
        for m in metrics:
            agg = r["metrics"].get(m, {}) or {}
            cls = " class='best'" if i in bold[m] else ""
            ci = ""
            if _finite(agg.get("lo")) and _finite(agg.get("hi")):
                ci = f"<span class='ci'>[{fmt(agg['lo'], m)}, {fmt(agg['hi'], m)}]</span>"
            if r.get("seeds"):
                ci = f"<span class='ci'>seeds {', '.join(str(v) for v in r['seeds']['seeds'])}</span>"
            out.append(f"<td{cls} title='n = {agg.get('n', '')}'>{row_text(r, m)}{ci}</td>")
        out.append(f"<td>{fmt_ms(r.get('ms_per_clip'))}</td></tr>" if with_ms else "</tr>")
    out.append("</table>")
    note = _flag_note(rows)
    if note:
        out.append(f"<p class='meta flag'>{html.escape(note)}</p>")
    return "".join(out)


def best_text(rows: Sequence[Mapping[str, Any]], metrics: Optional[Sequence[str]] = None) -> str:
    """One line naming the best method(s) of every ranked metric in ``rows``."""
    parts = []
    for m in (metrics if metrics is not None else table_metrics(rows)):
        best = best_rows(rows, m)
        if best:
            names = ", ".join(str(rows[i]["method"]) for i in sorted(best))
            parts.append(f"{html.escape(label(m) + _arrow(m))} {html.escape(names)}")
    return " · ".join(parts)


def clip_card_html(clip: Mapping[str, Any], heading: str = "") -> str:
    """The card of one clip: input spectrogram and player, the true source where known, and per
    method its mask, masked spectrogram and listenable explanation (Mel-domain mask when present).

    ``clip``: an entry of ``results["examples"][k]["clips"]`` (``input_png``, ``input_wav``,
    ``oracle_png``, ``target_wav``, ``methods`` → ``[{"name", "png", "masked_png", "wav", "mel_png",
    "mask_mean"}]``; paths relative to the page).
    """
    e = html.escape
    title = heading or (f"clip {clip.get('index', '')} · true class: {clip.get('label_name', '')} · "
                        f"predicted: {clip.get('pred_name', '')}")
    tiles = ["<figure class='tile'><figcaption><b>input</b> |X| (dB)</figcaption>"
             f"{img_html(clip.get('input_png'), 'input spectrogram', 'spec', lazy=True)}"
             f"{audio_html(clip.get('input_wav'), 'input')}</figure>"]
    if clip.get("oracle_png") or clip.get("target_wav"):
        tiles.append("<figure class='tile'><figcaption><b>true source</b> (where it dominates: oracle mask)"
                     f"</figcaption>{img_html(clip.get('oracle_png'), 'oracle mask', lazy=True)}"
                     f"{audio_html(clip.get('target_wav'), 'true source')}</figure>")
    for m in clip.get("methods", []):
        if not any(m.get(k) for k in ("png", "masked_png", "wav", "mel_png")):
            continue  # nothing left to show (media missing from the folder)
        name = str(m.get("name", ""))
        mm = f" <span class='meta'>mask mean {m['mask_mean']:.2f}</span>" if _finite(m.get("mask_mean")) else ""
        parts = [f"<figure class='tile'><figcaption><b>{e(name)}</b>{mm}</figcaption>"]
        if m.get("png"):
            parts.append(f"<div class='lab'>mask M</div>{img_html(m['png'], name + ' mask', lazy=True)}")
        if m.get("masked_png"):
            parts.append(f"<div class='lab'>M ⊙ X (dB)</div>{img_html(m['masked_png'], name + ' masked', lazy=True)}")
        if m.get("wav"):
            parts.append(f"<div class='lab'>listenable explanation</div>{audio_html(m['wav'], name)}")
        if m.get("mel_png"):
            mmm = f" (mean {m['mel_mask_mean']:.2f})" if _finite(m.get("mel_mask_mean")) else ""
            parts.append(f"<div class='lab'>Mel-domain mask{mmm}, not listenable</div>"
                         f"{img_html(m['mel_png'], name + ' Mel mask', lazy=True)}")
        parts.append("</figure>")
        tiles.append("".join(parts))
    return f"<article class='card'><h4>{e(title)}</h4><div class='tiles'>{''.join(tiles)}</div></article>"


def _has_media(clip: Mapping[str, Any]) -> bool:
    keys = ("input_png", "input_wav", "oracle_png", "target_wav")
    return any(clip.get(k) for k in keys) or any(m.get(k) for m in clip.get("methods", []) for k in _MEDIA_KEYS)


def page_html(title: str, body: Sequence[str], nav: Sequence[Tuple[str, str]] = ()) -> str:
    """A self-contained HTML page (inline style, no script, nothing fetched from outside its folder)."""
    links = "".join(f"<a href='#{html.escape(a)}'>{html.escape(t)}</a>" for a, t in nav)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + (f"<nav>{links}</nav>" if links else "") + "".join(body) + "</body></html>")


# --- the benchmark report -----------------------------------------------------------------------------


def _benchmark_howto_extra(results: Mapping[str, Any]) -> List[str]:
    extra = []
    doms = [d.get("label", d.get("name")) for d in results.get("domains", [])]
    if len(doms) > 1 or (doms and doms[0] != "STFT→Mel"):
        extra.append("<b>Domains.</b> STFT→Mel rows mask the linear STFT magnitude (listenable); Mel (feature) "
                     "rows mask the classifier's own input features (the papers' \"Mel\" rows; not listenable).")
    conds = [c for c in results.get("conditions", []) if c.get("snr_db") is not None]
    if conds:
        extra.append("<b>Conditions.</b> Out-of-domain conditions add another sound to each test clip "
                     f"({html.escape(_snr_text(results))}); c is the decision on the contaminated clip, and a good "
                     "mask ignores what was added.")
    if results.get("sanity"):
        extra.append("<b>Randomisation check.</b> An explanation of what the classifier learnt must change when "
                     "the classifier's weights are randomised: SSIM with the original explanation should fall.")
    return extra


def peak_rss_text(results: Mapping[str, Any]) -> str:
    """``"peak RSS 3.39 GB"`` from a run's ``memory.peak_rss_mb`` (the high-water mark after each phase), or ``""``."""
    peaks = [v for v in ((results.get("memory") or {}).get("peak_rss_mb") or {}).values() if v is not None]
    return f"peak RSS {max(peaks) / 1000:.2f} GB" if peaks else ""


def html_report(results: Mapping[str, Any], figures: Optional[Mapping[str, Any]] = None,
                missing: Sequence[str] = ()) -> str:
    """The HTML report (media and figures referenced by relative paths inside the results folder).

    Args:
        figures: What :func:`draw_figures` returned (default: :func:`figure_plan`).
        missing: Media files referenced by the results but absent (listed on the page).
    """
    e = html.escape
    figures = figures if figures is not None else figure_plan(results)
    groups = table_groups(results)
    all_rows = [r for _, rows in groups for r in rows]
    body: List[str] = []
    nav: List[Tuple[str, str]] = [("how-to-read", "How to read this"), ("summary", "Summary")]
    body.append(f"<h1>Benchmark <code>{e(str(results.get('suite', '')))}</code></h1>")
    if results.get("description"):
        body.append(f"<p>{e(results['description'])}</p>")
    if results.get("notes"):
        body.append(f"<p class='meta'>{e(results['notes'])}</p>")
    clf = results.get("classifier", {}) or {}
    meta = [f"test clips per condition: {results.get('n_test')}", f"seed {results.get('seed')}",
            f"out-of-domain SNR: {e(_snr_text(results))}"]
    if clf.get("description"):
        meta.insert(0, f"classifier: {e(str(clf['description']))}")
    if clf.get("test_acc") is not None:
        meta.append(f"classifier test accuracy {100 * clf['test_acc']:.1f} %")
    if (results.get("timing") or {}).get("total_seconds") is not None:
        meta.append(f"wall time {results['timing']['total_seconds']:.0f} s")
    peak = peak_rss_text(results)
    if peak:
        meta.append(peak)
    if results.get("created"):
        meta.append(f"created {e(str(results['created']))}")
    body.append(f"<p class='meta'>{' · '.join(meta)}</p>")
    body.append(how_to_read_html(result_metrics(all_rows), _benchmark_howto_extra(results)))

    # summary: the headline table (first domain, first condition) and the summary plots
    body.append("<section id='summary'><h2>Summary</h2>")
    if groups:
        (domain, cond), rows = groups[0]
        first = rows[0]
        cap = (f"{e(first.get('domain_label', domain))} — {e(first.get('condition_label', cond))}, n = {first.get('n')}: "
               "every method on every metric. All conditions: the plot below and the tables under Results.")
        body.append(metrics_table_html(rows, table_id="summary-table", caption=cap))
        bt = best_text(rows)
        if bt:
            body.append(f"<p class='meta'>Best here: {bt}</p>")
    for domain, lab, rel in figures["summary"]:
        body.append(f"<h3>{e(lab)}: each metric per method, every condition</h3>"
                    f"<p class='meta'>Dot: mean over clips; bar: its 95 % bootstrap interval; one colour per "
                    f"condition. Each panel says which direction is better.</p>"
                    f"{img_html(rel, f'summary plot, {lab}', 'plot')}")
    body.append("</section>")

    nav.append(("results", "Results"))
    body.append("<section id='results'><h2>Results</h2><p class='meta'>Mean over clips with its 95 % bootstrap "
                "interval; best value per column highlighted (↑ higher / ↓ lower is better). c = argmax f(input), on "
                "the contaminated input for out-of-domain conditions.</p>")
    for k, ((domain, cond), rows) in enumerate(groups):
        first = rows[0]
        body.append(f"<h3 id='t-{e(_safe(domain))}-{e(_safe(cond))}'>{e(first.get('domain_label', domain))} — "
                    f"{e(first.get('condition_label', cond))} <span class='meta'>(n = {first.get('n')})</span></h3>")
        body.append(metrics_table_html(rows))
    body.append("</section>")

    fits = fit_rows(results)
    if fits:
        nav.append(("fits", "Fits"))
        body.append("<section id='fits'><h2>Fits of the learned methods</h2><p class='meta'>Per epoch: every "
                    "training loss term (solid) and its validation value (dashed), validation Fid-In and mask mean; "
                    "the dotted line marks the epoch whose weights were kept (lowest validation loss). Terms that "
                    "stayed 0 are left out.</p><table class='res'><tr>"
                    + "".join(f"<th>{e(h)}</th>" for h in _FIT_HEAD) + "</tr>")
        for key, info in fits:
            body.append(f"<tr><td>{e(key)}</td>" + "".join(f"<td>{e(c)}</td>" for c in _fit_cells(info)) + "</tr>")
        body.append("</table>")
        for key, rel in figures["fits"]:
            body.append(f"<h3>{e(key)}</h3>{img_html(rel, f'fit history of {key}', 'plot')}")
        body.append("</section>")

    san = results.get("sanity")
    if san and san.get("methods"):
        nav.append(("sanity", "Randomisation check"))
        body.append("<section id='sanity'><h2>Sanity check: cascading model randomisation</h2>")
        body.append("<p class='meta'>SSIM between each method's explanation of the original classifier and of the "
                    "classifier with its stages re-initialised from the logits down. An explanation that depends on "
                    f"what the classifier learnt must fall. {e(_SANITY_NOTE)} n = {san.get('n')} clips.</p>")
        plot = figures.get("sanity")
        if plot:
            body.append(img_html(plot, "SSIM vs randomisation depth", "plot"))
        stages = san.get("stages", [])
        body.append("<table class='res'><tr><th>Method</th>" + "".join(f"<th>{e(str(s))}</th>" for s in stages)
                    + "<th title='SSIM between a clip&#39;s explanation and another clip&#39;s (same method)'>"
                      "another clip</th></tr>")
        for name, r in san["methods"].items():
            body.append(f"<tr><td>{e(name)}</td>" + "".join(f"<td>{fmt(v, 'FF')}</td>" for v in r.get("mean", []))
                        + f"<td>{fmt(r.get('chance'), 'FF')}</td></tr>")
        body.append("</table></section>")

    analyses = [(n, r) for n, r in (results.get("analyses") or {}).items() if r]
    if analyses:
        nav.append(("analyses", "Analyses"))
        body.append("<section id='analyses'>")
        for name, res in analyses:
            spec = ANALYSES.get(name)
            title = spec.description if spec is not None and spec.description else name
            body.append(f"<h2 id='a-{e(_safe(name))}'>{e(title)}</h2>")
            if spec is not None and spec.markdown is not None:
                body.append(f"<pre>{e(spec.markdown(res))}</pre>")
            for rel in _analysis_images(name, res, figures):
                body.append(img_html(rel, f"{name}: {rel}", "plot"))
        body.append("</section>")

    examples = results.get("examples") or []
    if examples:
        nav.append(("examples", "Example clips"))
        body.append("<section id='examples'><h2>Example clips</h2><p class='meta'>Per clip: the input spectrogram "
                    "and its sound, the true source where known, and for each method its mask, the masked "
                    "spectrogram M ⊙ X and the listenable explanation ISTFT((M ⊙ X) e<sup>jP</sup>) with the input's "
                    "phase. Mel-domain masks are shown where run; they are not listenable.</p>")
        for ex in examples:
            body.append(f"<h3>{e(str(ex.get('condition_label', ex.get('condition', ''))))}</h3>")
            for clip in ex.get("clips", []):
                if _has_media(clip):
                    body.append(clip_card_html(clip))
        body.append("</section>")

    nav.append(("details", "Details"))
    body.append("<section id='details'><h2>Details</h2>")
    rules = results.get("mask_rules") or {}
    if rules:
        body.append("<h3>Mask rules</h3><ul>" + "".join(f"<li><b>{e(n)}</b>: {e(str(r))}</li>" for n, r in rules.items())
                    + "</ul>")
    caches = [(k, v.get("cache")) for k, v in fits if v.get("cache")]
    if caches:
        body.append("<h3>Fitted interpreters</h3><ul>" + "".join(f"<li><b>{e(k)}</b>: <code>{e(str(c))}</code></li>"
                                                               for k, c in caches) + "</ul>")
    if results.get("ground_truth_note"):
        body.append(f"<p class='meta'>{e(results['ground_truth_note'])}</p>")
    if results.get("skipped"):
        body.append(f"<p class='meta'>Skipped: {e('; '.join(results['skipped']))}</p>")
    if missing:
        body.append(f"<p class='meta'>{len(missing)} media file(s) named in results.json are not in this folder and "
                    f"are left out: {e(', '.join(missing[:20]))}{' …' if len(missing) > 20 else ''}</p>")
    for key, what in (("config", "Configuration"), ("environment", "Environment"), ("timing", "Timing (s)"),
                      ("memory", "Memory (peak RSS in MB after each phase)")):
        if results.get(key):
            body.append(f"<details><summary>{what}</summary><pre>{e(json.dumps(to_jsonable(results[key]), indent=1))}"
                        "</pre></details>")
    body.append("</section>")
    return page_html(f"captum_lmac benchmark: {results.get('suite', '')}", body, nav)


def _render(results: Mapping[str, Any], out_dir: Path) -> Dict[str, Path]:
    """Draw the figures and write ``results.csv``, ``results.md`` and ``report.html`` into ``out_dir``."""
    figures = draw_figures(results, out_dir)
    pruned, missing = prune_missing_media(results, out_dir)
    paths = {"csv": write_csv(results, out_dir / "results.csv")}
    md = markdown(results, figures)
    paths["md"] = atomic_write(out_dir / "results.md", lambda tmp: Path(tmp).write_text(md))
    page = html_report(pruned, figures, missing)
    paths["html"] = atomic_write(out_dir / "report.html", lambda tmp: Path(tmp).write_text(page))
    return paths


def write_report(results: Mapping[str, Any], out_dir: PathLike,
                 per_sample: Optional[Mapping[str, Any]] = None) -> Dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md``, ``report.html`` with its figures
    (``figures/``, ``sanity_cascading.png``) and ``per_sample.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(results, out_dir / "results.json")}
    paths.update(_render(results, out_dir))
    if per_sample is not None:
        paths["per_sample"] = write_json(per_sample, out_dir / "per_sample.json")
    return paths


# --- re-rendering and comparing existing results ----------------------------------------------------------


def load_results(path: PathLike) -> Dict[str, Any]:
    """Read and check a ``results.json`` (a results folder or the file itself).

    Raises:
        InputError: naming the problem — no such folder, no ``results.json``, not valid JSON, or not
        a benchmark results object (no ``rows``, a row without its keys).
    """
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    if not p.exists():
        raise InputError(f"{p}: no such results folder")
    if not f.is_file():
        raise InputError(f"{p}: no results.json in this folder (write one with `captum-lmac benchmark`)")
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{f}: cannot be read ({exc})") from None
    try:
        res = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{f}: corrupt results.json ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(res, dict):
        raise InputError(f"{f}: not a benchmark results object (a JSON {type(res).__name__}, expected an object)")
    rows = res.get("rows")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{f}: not a benchmark results object (no result 'rows')")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise InputError(f"{f}: row {i} is not an object")
        lacking = [k for k in ("method", "domain", "condition", "metrics") if k not in r]
        if lacking:
            raise InputError(f"{f}: row {i} lacks {', '.join(repr(k) for k in lacking)}")
        if not isinstance(r["metrics"], dict) or not all(isinstance(v, dict) for v in r["metrics"].values()):
            raise InputError(f"{f}: row {i} ('{r['method']}'): 'metrics' must map each metric to "
                             "{mean, lo, hi, n}")
    for key, kind in (("conditions", list), ("domains", list), ("fits", dict), ("analyses", dict),
                      ("examples", list), ("classifier", dict)):
        if res.get(key) is not None and not isinstance(res[key], kind):
            raise InputError(f"{f}: {key!r} must be a JSON {'array' if kind is list else 'object'}")
    res.setdefault("suite", f.parent.name)
    return res


def rerender(results_dir: PathLike, log: Callable[[str], None] = print) -> Dict[str, Path]:
    """Re-render a results folder from its ``results.json`` without recomputing anything.

    Redraws every figure from the JSON (summary plots, fit histories, the randomisation plot,
    analysis curves and registered drawers) and rewrites ``results.csv``, ``results.md`` and
    ``report.html``; the clips' pictures and WAVs already in the folder are reused (references to
    missing ones are left out of the page and listed). ``results.json`` itself is not rewritten.

    Raises:
        InputError: for a missing or corrupt ``results.json`` (see :func:`load_results`).
    """
    p = Path(results_dir)
    out = p if p.is_dir() else p.parent
    results = load_results(p)
    paths = _render(results, out)
    _, missing = prune_missing_media(results, out)
    if missing:
        log(f"[report] {len(missing)} media file(s) named in results.json are missing from {out}; left out of the page")
    return paths


def _run_labels(runs: Sequence[Tuple[Path, Mapping[str, Any]]]) -> List[str]:
    labels = []
    for folder, res in runs:
        clf = res.get("classifier") or {}
        labels.append(str(clf.get("description") or folder.name))
    for i, lab in enumerate(labels):
        if labels.count(lab) > 1:
            labels[i] = f"{lab} [{runs[i][0].name}]"
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    return labels


def comparison_groups(runs: Sequence[Tuple[str, Mapping[str, Any]]]
                      ) -> List[Tuple[Tuple[str, str], str, List[Tuple[str, List[Dict[str, Any]]]]]]:
    """``[((domain, condition), title, [(run label, rows), ...])]`` over every (domain, condition) of
    the runs, in the first run's order."""
    keys: Dict[Tuple[str, str], str] = {}
    for _, res in runs:
        for (d, c), rows in table_groups(res):
            keys.setdefault((d, c), f"{rows[0].get('domain_label', d)} — {rows[0].get('condition_label', c)}")
    out = []
    for key, title in keys.items():
        per = []
        for lab, res in runs:
            rows = [r for r in res["rows"] if (r["domain"], r["condition"]) == key]
            per.append((lab, rows))
        out.append((key, title, per))
    return out


def _comparison_table_html(per: Sequence[Tuple[str, List[Dict[str, Any]]]], metrics: Sequence[str],
                           short: Sequence[str], table_id: Optional[str] = None, caption: str = "") -> str:
    e = html.escape
    methods = list(dict.fromkeys(r["method"] for _, rows in per for r in rows))
    by = [{r["method"]: r for r in rows} for _, rows in per]
    tid = f" id='{e(table_id)}'" if table_id else ""
    out = [f"<table class='res'{tid}>"]
    if caption:
        out.append(f"<caption>{caption}</caption>")
    out.append("<tr><th rowspan='2'>Method</th>" + "".join(
        f"<th colspan='{len(per)}' title='{e(metric_info(m).description)}'>{e(label(m) + _arrow(m))}</th>"
        for m in metrics) + "</tr><tr>" + "".join(f"<th>{e(s)}</th>" for _ in metrics for s in short) + "</tr>")
    for name in methods:
        out.append(f"<tr><td>{e(str(name))}</td>")
        for m in metrics:
            cells = [(b.get(name) or {}).get("metrics", {}).get(m, {}) or {} for b in by]
            pseudo = [{"method": name, "metrics": {m: c}} for c in cells]
            best = best_rows(pseudo, m)
            for j, agg in enumerate(cells):
                ci = ""
                if _finite(agg.get("lo")) and _finite(agg.get("hi")):
                    ci = f"<span class='ci'>[{fmt(agg['lo'], m)}, {fmt(agg['hi'], m)}]</span>"
                cls = " class='best'" if j in best else ""
                out.append(f"<td{cls}>{fmt(summary_value(agg, m), m)}{ci}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def compare(results_dirs: Sequence[PathLike], out_dir: PathLike) -> Dict[str, Path]:
    """One comparison page and its plots across results folders whose classifiers differ.

    For every (domain, condition) of the runs: a plot of each metric per method with its 95 %
    interval, one colour per classifier (``results["classifier"]["description"]``), and a table with
    the classifiers side by side per metric (the best classifier for each method and metric
    highlighted). Writes ``comparison.html``, ``comparison.md`` and ``figures/compare_*.png`` into
    ``out_dir``; each run's own report is linked.

    Raises:
        InputError: fewer than two folders, or a folder without a valid ``results.json``.
    """
    dirs = [Path(d) for d in results_dirs]
    if len(dirs) < 2:
        raise InputError(f"a comparison needs at least two results folders, got {len(dirs)}")
    runs_raw = [((d if d.is_dir() else d.parent), load_results(d)) for d in dirs]
    resolved = [p.resolve() for p, _ in runs_raw]
    if len(set(resolved)) < len(resolved):
        raise InputError("the same results folder is named twice: " + ", ".join(str(p) for p, _ in runs_raw))
    labels = _run_labels(runs_raw)
    short = [chr(ord("A") + i) if i < 26 else str(i + 1) for i in range(len(labels))]
    runs = [(lab, res) for lab, (_, res) in zip(labels, runs_raw)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    body = [f"<h1>Comparison of {len(runs)} classifiers</h1>"]
    head = ["<table class='res' id='classifiers'><tr><th>key</th><th>classifier</th><th>suite</th><th>test accuracy</th>"
            "<th>clips per condition</th><th>report</th></tr>"]
    md = [f"# Comparison of {len(runs)} classifiers", "", "| key | classifier | suite | test accuracy | report |",
          "|---|---|---|---|---|"]
    for s, lab, (folder, res) in zip(short, labels, runs_raw):
        acc = (res.get("classifier") or {}).get("test_acc")
        acc_txt = f"{100 * acc:.1f} %" if _finite(acc) else "–"
        rel = os.path.relpath(folder / "report.html", out)
        link = f"<a href='{e(rel)}'>report.html</a>" if (folder / "report.html").is_file() else "–"
        head.append(f"<tr><td>{e(s)}</td><td>{e(lab)}</td><td>{e(str(res.get('suite', '')))}</td><td>{acc_txt}</td>"
                    f"<td>{e(str(res.get('n_test', '')))}</td><td>{link}</td></tr>")
        md.append(f"| {s} | {lab} | {res.get('suite', '')} | {acc_txt} | {rel} |")
    head.append("</table>")
    md.append("")
    metrics_all = plots.summary_metrics([r for _, res in runs for r in res["rows"]])
    body.append(how_to_read_html(metrics_all, ["<b>Comparison.</b> The same methods explain different classifiers. "
                                               "Columns A, B, … are the classifiers listed below; in each metric the "
                                               "best classifier for a method is highlighted, and the plots give one "
                                               "colour per classifier."]))
    body.append("<section id='classifiers-sec'><h2>Classifiers</h2>" + "".join(head) + "</section>")
    nav = [("how-to-read", "How to read this"), ("classifiers-sec", "Classifiers"), ("summary", "Summary")]
    body.append("<section id='summary'><h2>Per domain and condition</h2>")
    shared = [g for g in comparison_groups(runs) if sum(1 for _, rows in g[2] if rows) >= 2]
    alone = [(title, [s for s, (_, rows) in zip(short, per) if rows]) for _, title, per in comparison_groups(runs)
             if sum(1 for _, rows in per if rows) < 2]
    if not shared:
        have = "; ".join(f"{lab}: {', '.join(t for _, t, _ in comparison_groups([(lab, res)]))}" for lab, res in runs)
        raise InputError(f"the results folders share no domain and condition to compare ({have})")
    if alone:
        note = "; ".join(f"{t} (only {', '.join(k)})" for t, k in alone)
        body.append(f"<p class='meta'>Run by one classifier only, so not compared: {e(note)}.</p>")
        md += [f"Run by one classifier only, so not compared: {note}.", ""]
    k = 0
    for (domain, cond), title, per in shared:
        rows_here = [r for _, rows in per for r in rows]
        metrics = plots.summary_metrics(rows_here)
        if not metrics:
            continue
        rel = f"{FIGURES_DIR}/compare_{_safe(domain)}_{_safe(cond)}.png"
        drawn = plots.comparison_plot([(f"{s}: {lab}", rows) for s, (lab, rows) in zip(short, per)], out / rel,
                                      title=f"{title}: each metric per method and classifier (95 % intervals)")
        body.append(f"<h3>{e(title)}</h3>")
        cap = "Mean over clips with its 95 % interval; per method and metric the best classifier is highlighted."
        body.append(_comparison_table_html(per, metrics, short, table_id="summary-table" if k == 0 else None,
                                           caption=cap))
        k += 1
        if drawn is not None:
            body.append(img_html(rel, f"comparison plot, {title}", "plot"))
        md += [f"## {title}", "", "| Method | " + " | ".join(f"{label(m)}{_arrow(m)} {s}" for m in metrics for s in short)
               + " |", "|" + "|".join([":---"] + ["---:"] * (len(metrics) * len(short))) + "|"]
        for name in dict.fromkeys(r["method"] for r in rows_here):
            cells = []
            for m in metrics:
                for _, rows in per:
                    r = next((r for r in rows if r["method"] == name), None)
                    cells.append(fmt(summary_value((r or {}).get("metrics", {}).get(m, {}) or {}, m), m))
            md.append(f"| {name} | " + " | ".join(cells) + " |")
        md.append("")
        if drawn is not None:
            md += [f"![{title}]({rel})", ""]
    body.append("</section>")
    page = page_html(f"captum_lmac comparison of {len(runs)} classifiers", body, nav)
    text = "\n".join(md)
    return {
        "html": atomic_write(out / "comparison.html", lambda tmp: Path(tmp).write_text(page)),
        "md": atomic_write(out / "comparison.md", lambda tmp: Path(tmp).write_text(text)),
    }


__all__ = ["markdown", "peak_rss_text", "html_report", "write_report", "write_json", "write_csv", "csv_rows", "best_rows",
           "table_groups", "domain_groups", "table_metrics", "result_metrics", "direction", "label", "fmt",
           "figure_plan", "draw_figures", "register_analysis_figures", "unregister_analysis_figures",
           "ANALYSIS_FIGURES", "prune_missing_media", "load_results", "rerender", "compare", "comparison_groups",
           "how_to_read_html", "metrics_table_html", "clip_card_html", "page_html", "img_html", "audio_html",
           "best_text", "FIGURES_DIR"]
