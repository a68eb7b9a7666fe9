r"""Benchmark outputs: ``results.json``, ``results.csv``, ``results.md`` (the papers' table layout) and
``report.html`` (tables, spectrogram / mask pictures, audio players for the input and every listenable
explanation, the sanity-check plot).

The results object is a plain JSON-able dict produced by :func:`captum_lmac.benchmark.harness.run_benchmark`;
its ``rows`` hold one entry per suite / domain / condition / method with ``metrics`` →
``{"mean", "lo", "hi", "n"}`` (95 % bootstrap interval) and ``ms_per_clip``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


from .._io import atomic_write
from .._utils import to_jsonable
from ..metrics import METRICS, metric_info
from .registry import ANALYSES


def direction(metric: str) -> Optional[bool]:
    """True if higher is better, False if lower is better, None if neither (from the declaration)."""
    return metric_info(metric).higher_is_better


def label(metric: str) -> str:
    """The column header of ``metric`` (from its declaration)."""
    return metric_info(metric).label


def summary_value(agg: Mapping[str, Any], metric: str) -> Optional[float]:
    """The value a table shows for ``metric``: its mean, or its median where the metric says so."""
    return agg.get("median" if metric_info(metric).summary == "median" else "mean")


def fmt(value: Optional[float], metric: str) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    text = f"{value:.{metric_info(metric).decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.000"


def fmt_ms(ms: Optional[float]) -> str:
    if ms is None or not math.isfinite(ms):
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


def result_metrics(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """Every metric name in ``rows``, declared ones first in declaration order."""
    present = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    return [m for m in METRICS if m in present] + [m for m in present if m not in METRICS]


def table_metrics(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """The metric columns with at least one finite value in ``rows``."""
    return [m for m in result_metrics(rows) if any(_finite(r["metrics"].get(m, {}).get("mean")) for r in rows)]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def best_rows(rows: Sequence[Mapping[str, Any]], metric: str) -> set:
    """Indices of the rows holding the best value of ``metric`` (ties at display precision included;
    none when all rows show the same value)."""
    higher = direction(metric)
    if higher is None:
        return set()
    vals = []
    for i, r in enumerate(rows):
        v = summary_value(r["metrics"].get(metric, {}), metric)
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
        line = [r["suite"], r["domain"], r.get("domain_label", ""), r["condition"], r.get("condition_label", ""),
                "" if r.get("snr_db") is None else r["snr_db"], r["method"], r["n"],
                "" if not _finite(r.get("ms_per_clip")) else round(r["ms_per_clip"], 3)]
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


# --- Markdown -----------------------------------------------------------------------------------


def _arrow(m: str) -> str:
    d = direction(m)
    return " ↑" if d else (" ↓" if d is False else "")


def markdown(results: Mapping[str, Any]) -> str:
    """The results as Markdown: a header, then one methods × metrics table per domain and condition.

    The best value of each metric column is bold (ties at display precision all bold), using the
    metric's declared direction (:func:`captum_lmac.metrics.metric_info`); the SNR of every
    out-of-domain condition is stated; the last column is the attribution time in ms per clip.
    """
    lines = [f"# Benchmark `{results['suite']}`", ""]
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
                 "best value per column in **bold** (↑ higher / ↓ lower is better)")
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
            cells = [r["method"]]
            for m in metrics:
                txt = fmt(summary_value(r["metrics"].get(m, {}), m), m)
                cells.append(f"**{txt}**" if i in bold[m] else txt)
            cells.append(fmt_ms(r.get("ms_per_clip")))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    san = results.get("sanity")
    if san and san.get("methods"):
        lines.append(f"## Sanity check: cascading model randomisation (n = {san.get('n')})")
        lines.append("")
        lines.append("SSIM between the original explanation and the explanation of the classifier randomised "
                     "from the logits down (1 = unchanged; a method that depends on the classifier should fall).")
        lines.append("")
        stages = san["stages"]
        lines.append("| Method | " + " | ".join(stages) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * len(stages)) + "|")
        for name, r in san["methods"].items():
            lines.append(f"| {name} | " + " | ".join(fmt(v, "FF") for v in r["mean"]) + " |")
        if san.get("decision_unchanged"):
            lines.append("| (decision unchanged) | " + " | ".join(f"{v:.2f}" for v in san["decision_unchanged"]) + " |")
        lines.append("")
        if san.get("plot"):
            lines.append(f"![cascading randomisation]({san['plot']})")
            lines.append("")
    for name, res in (results.get("analyses") or {}).items():
        spec = ANALYSES.get(name)
        if spec is not None and spec.markdown is not None and res:
            lines += [spec.markdown(res), ""]
    if results.get("skipped"):
        lines.append("Skipped: " + "; ".join(results["skipped"]))
        lines.append("")
    return "\n".join(lines)



# --- HTML -----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;max-width:1500px}
table.res{border-collapse:collapse;margin:0.5em 0 1.5em 0;font-size:13px}
table.res th,table.res td{border:1px solid #ccc;padding:3px 7px;text-align:right}
table.res th:first-child,table.res td:first-child{text-align:left}
table.res td.best{font-weight:bold;background:#eef6ee}
.ci{color:#888;font-size:10px;display:block}
.ex{overflow-x:auto} table.ex{border-collapse:collapse;font-size:12px}
table.ex td,table.ex th{border:1px solid #ddd;padding:4px;vertical-align:top;text-align:center}
table.ex img{width:260px;height:150px;display:block;image-rendering:auto}
audio{width:260px;height:28px}
.meta{color:#555;font-size:13px}
"""


def _rel(path: Optional[str]) -> str:
    return html.escape(path or "")


def _results_table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    metrics = table_metrics(rows)
    bold = {m: best_rows(rows, m) for m in metrics}
    out = ["<table class='res'><tr><th>Method</th>"]
    out += [f"<th>{html.escape(label(m) + _arrow(m))}</th>" for m in metrics]
    out.append("<th>ms/clip</th></tr>")
    for i, r in enumerate(rows):
        out.append(f"<tr><td>{html.escape(r['method'])}</td>")
        for m in metrics:
            agg = r["metrics"].get(m, {})
            cls = " class='best'" if i in bold[m] else ""
            ci = ""
            if _finite(agg.get("lo")) and _finite(agg.get("hi")):
                ci = f"<span class='ci'>[{fmt(agg['lo'], m)}, {fmt(agg['hi'], m)}]</span>"
            out.append(f"<td{cls} title='n = {agg.get('n', '')}'>{fmt(summary_value(agg, m), m)}{ci}</td>")
        out.append(f"<td>{fmt_ms(r.get('ms_per_clip'))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _audio(src: Optional[str]) -> str:
    if not src:
        return ""
    return f"<audio controls preload='none' src='{_rel(src)}'></audio>"


def _img(src: Optional[str], alt: str) -> str:
    if not src:
        return ""
    return f"<img src='{_rel(src)}' alt='{html.escape(alt)}' loading='lazy'>"


def html_report(results: Mapping[str, Any]) -> str:
    """The HTML report (media referenced by relative paths inside the output folder)."""
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<title>captum_lmac benchmark: {e(results['suite'])}</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>Benchmark <code>{e(results['suite'])}</code></h1>")
    if results.get("description"):
        parts.append(f"<p>{e(results['description'])}</p>")
    if results.get("notes"):
        parts.append(f"<p class='meta'>{e(results['notes'])}</p>")
    clf = results.get("classifier", {}) or {}
    meta = [f"Test clips per condition: {results.get('n_test')}", f"seed {results.get('seed')}",
            f"out-of-domain SNR: {e(_snr_text(results))}"]
    if clf.get("test_acc") is not None:
        meta.append(f"classifier test accuracy {100 * clf['test_acc']:.1f} %")
    if results.get("timing", {}).get("total_seconds") is not None:
        meta.append(f"wall time {results['timing']['total_seconds']:.0f} s")
    parts.append(f"<p class='meta'>{' · '.join(meta)}</p>")
    parts.append("<p class='meta'>Mean over clips with 95 % bootstrap interval; best value per column highlighted "
                 "(↑ higher / ↓ lower is better). c = argmax f(input), on the contaminated input for out-of-domain "
                 "conditions. STFT→Mel rows: mask on the linear STFT magnitude (listenable); Mel rows: mask on the "
                 "classifier's own features.</p>")
    rules = results.get("mask_rules") or {}
    if rules:
        parts.append("<details><summary>Mask rules and fit details</summary><ul>")
        for name, rule in rules.items():
            parts.append(f"<li><b>{e(name)}</b>: {e(str(rule))}</li>")
        for key, info in (results.get("fits") or {}).items():
            parts.append(f"<li><b>{e(key)}</b> fit: {e(json.dumps(to_jsonable(info)))}</li>")
        parts.append("</ul></details>")
    parts.append("<h2>Results</h2>")
    for (domain, cond), rows in table_groups(results):
        first = rows[0]
        parts.append(f"<h3>{e(first.get('domain_label', domain))} — {e(first.get('condition_label', cond))} "
                     f"<span class='meta'>(n = {first.get('n')})</span></h3>")
        parts.append(_results_table_html(rows))
    san = results.get("sanity")
    if san and san.get("methods"):
        parts.append("<h2>Sanity check: cascading model randomisation</h2>")
        parts.append("<p class='meta'>SSIM between each method's explanation of the original classifier and of the "
                     "classifier with its stages re-initialised from the logits down (L-MAC keeps its fitted decoder, "
                     "reading the randomised classifier's layers). An explanation that depends on what the classifier "
                     f"learnt must fall. n = {san.get('n')} clips.</p>")
        if san.get("plot"):
            parts.append(f"<img src='{_rel(san['plot'])}' alt='SSIM vs randomisation depth' style='max-width:700px'>")
    examples = results.get("examples") or []
    if examples:
        parts.append("<h2>Examples</h2><p class='meta'>Input spectrogram (dB) and each method's mask; the players "
                     "play the input and each listenable explanation ISTFT((M ⊙ X) e<sup>jP</sup>) with the input's "
                     "phase. Mel-domain masks are not listenable.</p>")
    for ex in examples:
        parts.append(f"<h3>{e(ex['condition_label'])}</h3><div class='ex'><table class='ex'><tr><th></th>")
        for clip in ex["clips"]:
            parts.append(f"<th>clip {clip['index']}: {e(str(clip.get('label_name', '')))}"
                         f"<br><span class='meta'>predicted: {e(str(clip.get('pred_name', '')))}</span></th>")
        parts.append("</tr><tr><th>input</th>")
        for clip in ex["clips"]:
            parts.append(f"<td>{_img(clip.get('input_png'), 'input')}{_audio(clip.get('input_wav'))}</td>")
        parts.append("</tr>")
        if any(clip.get("oracle_png") for clip in ex["clips"]):
            parts.append("<tr><th>ground truth<br><span class='meta'>oracle mask / true source</span></th>")
            for clip in ex["clips"]:
                parts.append(f"<td>{_img(clip.get('oracle_png'), 'oracle')}{_audio(clip.get('target_wav'))}</td>")
            parts.append("</tr>")
        names = []
        for clip in ex["clips"]:
            for m in clip["methods"]:
                if m["name"] not in names:
                    names.append(m["name"])
        for name in names:
            parts.append(f"<tr><th>{e(name)}</th>")
            for clip in ex["clips"]:
                m = next((m for m in clip["methods"] if m["name"] == name), {})
                cell = _img(m.get("png"), name) + _audio(m.get("wav"))
                if m.get("mel_png"):
                    cell += f"<div class='meta'>Mel domain</div>{_img(m['mel_png'], name + ' (Mel)')}"
                parts.append(f"<td>{cell}</td>")
            parts.append("</tr>")
        parts.append("</table></div>")
    for name, res in (results.get("analyses") or {}).items():
        spec = ANALYSES.get(name)
        if spec is not None and spec.markdown is not None and res:
            parts.append(f"<h2>{e(spec.description or name)}</h2><pre>{e(spec.markdown(res))}</pre>")
            for p in res.get("plots", []):
                parts.append(f"<img src='{_rel(p)}' alt='{e(p)}' style='max-width:900px'>")
    if results.get("skipped"):
        parts.append(f"<p class='meta'>Skipped: {e('; '.join(results['skipped']))}</p>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(results: Mapping[str, Any], out_dir: Path,
                 per_sample: Optional[Mapping[str, Any]] = None) -> Dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md``, ``report.html`` (and ``per_sample.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": write_json(results, out_dir / "results.json"),
        "csv": write_csv(results, out_dir / "results.csv"),
    }
    md = markdown(results)
    paths["md"] = atomic_write(out_dir / "results.md", lambda tmp: Path(tmp).write_text(md))
    page = html_report(results)
    paths["html"] = atomic_write(out_dir / "report.html", lambda tmp: Path(tmp).write_text(page))
    if per_sample is not None:
        paths["per_sample"] = write_json(per_sample, out_dir / "per_sample.json")
    return paths


__all__ = ["markdown", "html_report", "write_report", "write_json", "write_csv", "csv_rows", "best_rows",
           "table_groups", "table_metrics", "result_metrics", "direction", "label", "fmt"]
