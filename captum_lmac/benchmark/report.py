r"""Benchmark outputs: ``results.json``, ``results.csv``, ``results.md`` (the papers' table layout) and
``report.html`` (tables, spectrogram / mask pictures, audio players for the input and every listenable
explanation, the sanity-check plot).

The results object is a plain JSON-able dict produced by :func:`captum_lmac.benchmark.runner.run_benchmark`;
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

import numpy as np
import torch
from torch import Tensor

from .._io import atomic_write
from ..metrics import HIGHER_IS_BETTER

#: Metric columns, in table order.
METRICS = ["AI", "AD", "AG", "FF", "FidIn", "MM", "SPS", "COMP", "SI-SDR", "precision", "recall"]
#: Ground-truth metrics (only where the true source is known).
GT_METRICS = ["SI-SDR", "precision", "recall"]

LABELS = {"AI": "AI", "AD": "AD", "AG": "AG", "FF": "FF", "FidIn": "Fid-In", "MM": "MM", "SPS": "SPS",
          "COMP": "COMP", "SI-SDR": "SI-SDR (dB)", "precision": "Prec", "recall": "Rec"}
DECIMALS = {"AI": 2, "AD": 2, "AG": 2, "FF": 3, "FidIn": 3, "MM": 3, "SPS": 3, "COMP": 2, "SI-SDR": 2,
            "precision": 3, "recall": 3}


def direction(metric: str) -> Optional[bool]:
    """True if higher is better, False if lower is better, None if neither."""
    return HIGHER_IS_BETTER.get(metric)


def fmt(value: Optional[float], metric: str) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    text = f"{value:.{DECIMALS.get(metric, 3)}f}"
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


def table_metrics(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """The metric columns with at least one finite value in ``rows``."""
    out = []
    for m in METRICS:
        if any(_finite(r["metrics"].get(m, {}).get("mean")) for r in rows):
            out.append(m)
    return out


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
        v = r["metrics"].get(metric, {}).get("mean")
        if _finite(v):
            vals.append((i, round(float(v), DECIMALS.get(metric, 3))))
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


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, tensors/arrays → lists, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if torch.is_tensor(obj):
        return _clean(obj.tolist())
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(obj: Any, path: Path) -> Path:
    text = json.dumps(_clean(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def csv_rows(results: Mapping[str, Any]) -> Tuple[List[str], List[List[Any]]]:
    """Header and rows of ``results.csv``: one row per suite/domain/condition/method."""
    header = ["suite", "domain", "domain_label", "condition", "condition_label", "snr_db", "method", "n", "ms_per_clip"]
    for m in METRICS:
        header += [f"{m}_mean", f"{m}_lo", f"{m}_hi"]
    out = []
    for r in results["rows"]:
        line = [r["suite"], r["domain"], r.get("domain_label", ""), r["condition"], r.get("condition_label", ""),
                "" if r.get("snr_db") is None else r["snr_db"], r["method"], r["n"],
                "" if not _finite(r.get("ms_per_clip")) else round(r["ms_per_clip"], 3)]
        for m in METRICS:
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
    metric's direction (:data:`captum_lmac.metrics.HIGHER_IS_BETTER`); the SNR of every
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
        head = ["Method"] + [LABELS[m] + _arrow(m) for m in metrics] + ["ms/clip"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
        bold = {m: best_rows(rows, m) for m in metrics}
        for i, r in enumerate(rows):
            cells = [r["method"]]
            for m in metrics:
                txt = fmt(r["metrics"].get(m, {}).get("mean"), m)
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
    if results.get("skipped"):
        lines.append("Skipped: " + "; ".join(results["skipped"]))
        lines.append("")
    return "\n".join(lines)


# --- pictures and audio ---------------------------------------------------------------------------


class Renderer:
    """Fast PNG pictures of spectrograms and masks (one reusable matplotlib figure per picture size)."""

    def __init__(self, sample_rate: int = 16000, hop_length: int = 186, size=(3.2, 1.9), dpi: int = 90,
                 mask_size=(150, 260)) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        self.plt = plt
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.size = size
        self.dpi = dpi
        self.mask_size = (int(mask_size[0]), int(mask_size[1]))
        self._figs: Dict[Any, Any] = {}

    def _figure(self, shape, kind: str, ylabel: str):
        key = (tuple(shape), kind)
        if key not in self._figs:
            fig, ax = self.plt.subplots(figsize=self.size, dpi=self.dpi)
            F_, T = shape
            top = self.sample_rate / 2000 if kind == "db" else F_
            extent = [0, T * self.hop_length / self.sample_rate, 0, top]
            cmap, vmin, vmax = ("magma", -80, 0) if kind == "db" else ("viridis", 0, 1)
            im = ax.imshow(np.zeros(shape), origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=vmin,
                           vmax=vmax, interpolation="nearest")
            ax.set_xlabel("time (s)", fontsize=7)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.tick_params(labelsize=6)
            title = ax.set_title("", fontsize=7)
            fig.tight_layout(pad=0.3)
            self._figs[key] = (fig, ax, im, title)
        return self._figs[key]

    def save(self, image: Tensor, path: Path, kind: str = "mask", title: str = "", ylabel: str = "bin") -> Path:
        """Save a (F, T) map as PNG.

        ``kind="db"``: a small figure with axes, 20·log10 relative to the maximum (80 dB range);
        ``kind="mask"``: the map alone (values in [0, 1], viridis, low frequencies at the bottom),
        resampled to ``mask_size`` pixels, without a figure (~20× faster).
        """
        a = image.detach().float().cpu().reshape(image.shape[-2], image.shape[-1]).numpy()
        if kind == "db":
            a = 20 * np.log10(np.maximum(a, 1e-8) / max(float(a.max()), 1e-8))
            fig, ax, im, t = self._figure(a.shape, kind, "frequency (kHz)")
            im.set_data(a)
            t.set_text(title)
            return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        from matplotlib.image import imsave

        h, w = self.mask_size
        t = torch.from_numpy(np.clip(a, 0, 1))[None, None]
        a = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
        return atomic_write(path, lambda tmp: imsave(tmp, a.clamp(0, 1).numpy(), cmap="viridis", vmin=0, vmax=1,
                                                     origin="lower", format="png"))

    def close(self) -> None:
        for fig, *_ in self._figs.values():
            self.plt.close(fig)
        self._figs.clear()


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
    out += [f"<th>{html.escape(LABELS[m] + _arrow(m))}</th>" for m in metrics]
    out.append("<th>ms/clip</th></tr>")
    for i, r in enumerate(rows):
        out.append(f"<tr><td>{html.escape(r['method'])}</td>")
        for m in metrics:
            agg = r["metrics"].get(m, {})
            cls = " class='best'" if i in bold[m] else ""
            ci = ""
            if _finite(agg.get("lo")) and _finite(agg.get("hi")):
                ci = f"<span class='ci'>[{fmt(agg['lo'], m)}, {fmt(agg['hi'], m)}]</span>"
            out.append(f"<td{cls} title='n = {agg.get('n', '')}'>{fmt(agg.get('mean'), m)}{ci}</td>")
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
            parts.append(f"<li><b>{e(key)}</b> fit: {e(json.dumps(_clean(info)))}</li>")
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


__all__ = ["METRICS", "GT_METRICS", "markdown", "html_report", "write_report", "write_json", "write_csv", "csv_rows",
           "best_rows", "table_groups", "Renderer"]
