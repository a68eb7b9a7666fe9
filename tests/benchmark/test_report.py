"""Benchmark reports: results.json / .csv / .md / report.html, bold best values, playable audio."""

import csv
import json
import math
import re
from html.parser import HTMLParser

import soundfile as sf

from captum_lmac.benchmark.report import best_rows, fmt, markdown, summary_value, table_groups
from captum_lmac.metrics import METRICS, metric_info


def _row(method, **metrics):
    return {"method": method, "domain": "stft", "condition": "in-domain",
            "metrics": {k: {"mean": v, "lo": v, "hi": v, "n": 3} for k, v in metrics.items()}}


def test_best_rows_follow_metric_direction():
    rows = [_row("a", AI=10.0, AD=5.0, MM=0.2), _row("b", AI=30.0, AD=1.0, MM=0.2),
            _row("c", AI=30.0, AD=float("nan"), MM=0.2)]
    assert best_rows(rows, "AI") == {1, 2}  # higher is better, ties both bold
    assert best_rows(rows, "AD") == {1}  # lower is better, NaN ignored
    assert best_rows(rows, "MM") == set()  # every row equal: nothing singled out
    assert best_rows(rows[:1], "AI") == set()
    assert fmt(float("nan"), "AI") == "–" and fmt(-1e-6, "FF") == "0.000" and fmt(36.333, "AI") == "36.33"


def test_output_files_exist(tiny_run):
    _, out, _ = tiny_run
    for name in ("results.json", "results.csv", "results.md", "report.html", "per_sample.json", "sanity_cascading.png"):
        assert (out / name).is_file(), name


def test_json_is_strict_and_complete(tiny_run):
    res, out, _ = tiny_run
    data = json.loads((out / "results.json").read_text())  # strict JSON: NaN was written as null
    assert len(data["rows"]) == len(res["rows"])
    assert data["snr_db"] == {"clip": 3.0, "white": 3.0, "speech": 3.0}
    assert data["sanity"]["stages"][0] == "none"
    per = json.loads((out / "per_sample.json").read_text())
    assert len(per) == len(res["rows"])
    assert all(len(v["AI"]) == 6 for v in per.values())


def test_csv_has_one_row_per_domain_condition_method(tiny_run):
    res, out, _ = tiny_run
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res["rows"])
    keys = {(r["suite"], r["domain"], r["condition"], r["method"]) for r in rows}
    assert len(keys) == len(rows)
    for m in ("AI", "AD", "AG", "FF", "FidIn", "MM", "SPS", "COMP", "SI-SDR", "precision", "recall"):
        assert {f"{m}_mean", f"{m}_lo", f"{m}_hi"} <= set(rows[0])
    white = [r for r in rows if r["condition"] == "white"]
    assert white and all(float(r["snr_db"]) == 3.0 for r in white)
    r0 = rows[0]
    assert float(r0["AI_lo"]) <= float(r0["AI_mean"]) <= float(r0["AI_hi"])


def _finite(v):
    return v is not None and math.isfinite(v)


def _md_tables(md):
    """{heading: (header cells, body rows)} of every Markdown table."""
    tables, heading, lines = {}, None, md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            heading = line[3:]
        if line.startswith("| Method") and heading:
            head = [c.strip() for c in line.strip("|").split("|")]
            body = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                body.append([c.strip() for c in row.strip("|").split("|")])
            tables[heading] = (head, body)
    return tables


def test_markdown_layout_and_bold_best(tiny_run):
    res, out, _ = tiny_run
    md = (out / "results.md").read_text()
    assert md == markdown(res)
    assert "SNR: clip 3 dB, white 3 dB, speech 3 dB" in md
    tables = _md_tables(md)
    groups = table_groups(res)
    assert len(tables) == len(groups) + 1  # + the sanity-check table
    for (domain, cond), rows in groups:
        title = next(t for t in tables if t.startswith(rows[0]["domain_label"] + " — " + rows[0]["condition_label"]))
        head, body = tables[title]
        assert head[0] == "Method" and head[-1] == "ms/clip"
        assert [b[0] for b in body] == [r["method"] for r in rows]
        for j, label in enumerate(head[1:-1], start=1):
            key = next(k for k, d in METRICS.items() if label == d.label + d.arrow)  # the declared label
            info = metric_info(key)
            assert label.endswith("↑") == (info.higher_is_better is True)
            values = [summary_value(r["metrics"].get(key, {}), key) for r in rows]
            shown = [round(v, info.decimals) if _finite(v) else None for v in values]
            finite = [v for v in shown if v is not None]
            bold = {i for i, b in enumerate(body) if b[j].startswith("**")}
            if len(set(finite)) > 1 and info.higher_is_better is not None:
                best = max(finite) if info.higher_is_better else min(finite)
                assert bold == {i for i, v in enumerate(shown) if v == best}, f"column {label} of {title}"
                for i in bold:
                    assert body[i][j] == f"**{fmt(values[i], key)}**"
            else:
                assert not bold


def test_html_references_existing_media_and_playable_audio(tiny_run, tiny):
    res, out, _ = tiny_run
    _, stft, data = tiny
    page = (out / "report.html").read_text()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.srcs, self.audio = [], 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "audio":
                self.audio += 1
                assert "controls" in a
            if tag in ("img", "audio") and a.get("src"):
                self.srcs.append(a["src"])

    p = Collect()
    p.feed(page)
    assert p.audio > 0
    assert "sanity_cascading.png" in p.srcs
    for src in p.srcs:
        assert (out / src).is_file(), src
    wavs = [s for s in p.srcs if s.endswith(".wav")]
    pngs = [s for s in p.srcs if s.endswith(".png")]
    # per condition and example clip: input, true source, and one explanation per listenable (STFT) row
    n_rows = len({r["method"] for r in res["rows"] if r["domain"] == "stft"})
    assert len(wavs) == 4 * 1 * (2 + n_rows)
    assert any("_mel.png" in s for s in pngs)
    for src in wavs:
        audio, sr = sf.read(str(out / src))
        assert sr == stft.sample_rate and audio.shape == (data["test"].waveform.shape[-1],)
    inp, _ = sf.read(str(out / next(s for s in wavs if s.endswith("_input.wav"))))
    assert abs(inp).max() > 0.01
    for src in pngs:
        assert (out / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for cond in ("In-domain", "White noise @ 3 dB SNR", "Speech (LJSpeech) @ 3 dB SNR"):
        assert cond in page
    assert re.search(r"class='best'", page)
