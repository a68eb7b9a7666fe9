"""Benchmark reports: results.json / .csv / .md / report.html (how to read it, summary table and plots, fit
histories, clip cards), bold best values, playable audio; `captum-lmac report` re-rendering and comparing."""

import csv
import json
import math
import re
import shutil
from html.parser import HTMLParser

import pytest
import soundfile as sf
from matplotlib.image import imread

from captum_lmac import LMAC
from captum_lmac.benchmark import plots
from captum_lmac.benchmark.report import (
    best_rows, compare, figure_plan, fmt, html_report, load_results, markdown, register_analysis_figures, rerender,
    result_metrics, summary_value, table_groups, unregister_analysis_figures,
)
from captum_lmac.cli import main as cli_main
from captum_lmac.errors import InputError
from captum_lmac.metrics import METRICS, metric_info
from report_runs import CRNN_DESCRIPTION, DELETION, RERENDER_GONE, crnn_run, rerendered_run


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
        assert [b[0] for b in body] == [r["method"] + (" ⚠" if r.get("fit_warnings") else "") for r in rows]
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


# --- the page a person reads: how to read it, summary table, plots, fit histories, clip cards -----------------


class Page(HTMLParser):
    """The parts of a report page the tests look at: sections by id, tables by id, every src."""

    def __init__(self):
        super().__init__()
        self.ids, self.srcs, self.stack, self.tables, self.text_by_id = set(), [], [], {}, {}
        self._table, self._row, self._cell, self._howto = None, None, None, False
        self.dts, self.dds, self._dt, self._dd = [], [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag in ("img", "audio") and a.get("src"):
            self.srcs.append(a["src"])
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self._row = []
            self.tables[self._table].append(self._row)
        if tag in ("td", "th") and self._row is not None:
            self._cell = ""
        if tag == "section" and a.get("id") == "how-to-read":
            self._howto = True
        if self._howto and tag == "dt":
            self._dt = ""
        if self._howto and tag == "dd":
            self._dd = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        if tag == "table":
            self._table, self._row = None, None
        if tag == "dt" and self._dt is not None:
            self.dts.append(self._dt.strip())
            self._dt = None
        if tag == "dd" and self._dd is not None:
            self.dds.append(self._dd.strip())
            self._dd = None
        if tag == "section":
            self._howto = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._dt is not None:
            self._dt += data
        if self._dd is not None:
            self._dd += data


def _page(path):
    p = Page()
    p.feed(path.read_text())
    return p


def test_figures_are_written_with_the_report(tiny_run):
    res, out, _ = tiny_run
    plan = figure_plan(res)
    assert [d for d, _, _ in plan["summary"]] == ["stft", "mel"]
    assert {k for k, _ in plan["fits"]} == {"lmac (stft)", "l2i (stft)", "lmac (mel)", "l2i (mel)"}
    for rel in [r for _, _, r in plan["summary"]] + [r for _, r in plan["fits"]] + [plan["sanity"]]:
        img = imread(str(out / rel))
        assert img.shape[0] > 200 and img.shape[1] > 300, rel  # a real picture, not an empty canvas
        assert img[..., :3].std() > 0.05, rel


def test_fits_record_every_epoch_of_the_history(tiny_run, tiny):
    res, out, cache = tiny_run
    fit = res["fits"]["lmac (stft)"]
    hist = fit["history"]
    for key in ("loss", "in", "out", "l1", "mask_mean", "val_loss", "val_fid_in", "val_mask_mean"):
        assert len(hist[key]) == fit["epochs_run"] == 2, key
    saved = LMAC.load(cache / "tiny_lmac.pt", tiny[0]).history  # the fitted interpreter's own record
    for key in ("loss", "val_fid_in", "val_mask_mean"):
        assert hist[key] == pytest.approx(saved[key], abs=1e-6)
    assert json.loads((out / "results.json").read_text())["fits"]["l2i (stft)"]["history"]["nmf"]
    for key in ("out_term", "mask_sd"):  # every L-MAC loss term and the mask statistics
        assert len(hist[key]) == 2, key
    assert set(fit["mask_stats"]) >= {"mean", "sd_across_clips", "sd_within_clip"} and isinstance(fit["warnings"], list)


def test_rows_of_a_fit_that_did_not_learn_are_flagged(tiny_run):
    res, _, _ = tiny_run
    warned = bool(res["fits"]["lmac (stft)"]["warnings"])
    for r in res["rows"]:
        if r["base_method"] == "lmac" and r["domain"] == "stft":
            assert bool(r.get("fit_warnings")) == warned
    flagged = json.loads(json.dumps(res))
    flagged["fits"]["lmac (stft)"]["warnings"] = ["the mask mean is stuck near 0.5 (0.510 ± 0.004 over clips)"]
    for r in flagged["rows"]:
        r.pop("fit_warnings", None)
        if r["base_method"] == "lmac" and r["domain"] == "stft":
            r["fit_warnings"] = flagged["fits"]["lmac (stft)"]["warnings"]
    md = markdown(flagged)
    assert "| lmac ⚠ |" in md and "⚠ lmac: the fit did not learn (the mask mean is stuck near 0.5" in md
    assert "⚠ did not learn: the mask mean is stuck" in md  # the fits table
    page = html_report(flagged)
    assert "<tr class='flagged'><td title='the fit did not learn: the mask mean is stuck" in page
    clean = json.loads(json.dumps(flagged))
    for r in clean["rows"]:
        r.pop("fit_warnings", None)
    for info in clean["fits"].values():
        if "warnings" in info:
            info["warnings"] = []
    assert "⚠" not in markdown(clean) and "class='flagged'" not in html_report(clean)


def test_how_to_read_explains_masks_and_every_metric(tiny_run):
    res, out, _ = tiny_run
    page = _page(out / "report.html")
    assert "how-to-read" in page.ids
    text = (out / "report.html").read_text()
    assert "Mask." in text and "ISTFT((M ⊙ X)" in text
    metrics = result_metrics(res["rows"])
    assert len(page.dts) == len(metrics)
    for m, dt, dd in zip(metrics, page.dts, page.dds):
        info = metric_info(m)
        assert dt == info.label + info.arrow
        assert info.description in dd
        assert dd.endswith({True: "higher is better.", False: "lower is better.", None: "reported, not ranked."}
                           [info.higher_is_better])


def test_summary_table_lists_every_method_with_intervals(tiny_run):
    res, out, _ = tiny_run
    page = _page(out / "report.html")
    rows = page.tables["summary-table"]
    head, body = rows[0], rows[1:]
    first = table_groups(res)[0][1]
    assert [r[0] for r in body] == [m + (" ⚠" if row.get("fit_warnings") else "") for m, row in zip(res["methods"], first)]
    ai = head.index("AI ↑")
    for r, row in zip(body, first):
        agg = row["metrics"]["AI"]
        assert r[ai] == f"{fmt(agg['mean'], 'AI')}[{fmt(agg['lo'], 'AI')}, {fmt(agg['hi'], 'AI')}]"
    for s in ("summary", "results", "fits", "sanity", "examples", "details"):
        assert s in page.ids


def test_clip_cards_have_mask_masked_spectrogram_and_players(tiny_run):
    res, out, _ = tiny_run
    srcs = set(_page(out / "report.html").srcs)
    stft_names = {r["method"] for r in res["rows"] if r["domain"] == "stft"}
    for ex in res["examples"]:
        for clip in ex["clips"]:
            assert {clip["input_png"], clip["input_wav"], clip["oracle_png"], clip["target_wav"]} <= srcs
            for m in clip["methods"]:
                if m["name"] in stft_names:
                    assert {m["png"], m["masked_png"], m["wav"]} <= srcs
                    masked, mask = imread(str(out / m["masked_png"])), imread(str(out / m["png"]))
                    assert masked.shape == mask.shape
                    assert 0 <= m["mask_mean"] <= 1


def test_markdown_embeds_summary_and_fit_plots(tiny_run):
    res, out, _ = tiny_run
    md = (out / "results.md").read_text()
    assert "![summary: STFT→Mel](figures/summary_stft.png)" in md
    assert "![fit history: lmac (stft)](figures/fit_lmac_stft.png)" in md
    assert "| Fit | kept epoch |" in md


def _copy(out, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    return dst


def test_report_command_rerenders_from_results_json(tiny_run, tmp_path_factory):
    res, out, _ = tiny_run
    dst, info = rerendered_run(tmp_path_factory.mktemp("rerender"), out)
    assert info["rc"] == 0 and "re-rendered" in info["stdout"]
    assert (dst / "results.json").read_bytes() == info["results_json"]  # not rewritten
    assert {p.name: p.stat().st_mtime_ns for p in (dst / "media").iterdir()} == info["media"]  # reused, not redrawn
    for name in ("results.md", "results.csv"):
        assert (dst / name).read_text() == (out / name).read_text(), name
    for rel in ["sanity_cascading.png"] + [r for _, _, r in figure_plan(res)["summary"]] + \
            [r for _, r in figure_plan(res)["fits"]]:
        assert (dst / rel).is_file(), rel
    # the page is the original one, less the media files that are gone (left out and listed)
    srcs, before = _page(dst / "report.html").srcs, _page(out / "report.html").srcs
    assert srcs == [s for s in before if s not in RERENDER_GONE]
    assert all((dst / s).is_file() for s in srcs)
    assert "2 media file(s)" in info["stderr"] and info["stderr"].count("\n") == 1
    assert all(g in (dst / "report.html").read_text() for g in RERENDER_GONE)  # named under Details


@pytest.mark.parametrize("content, message", [
    (None, "no results.json in this folder"),
    ('{"rows": [1,', "corrupt results.json (Expecting value at line 1"),
    ("[1, 2]", "not a benchmark results object (a JSON list"),
    ('{"suite": "x"}', "no result 'rows'"),
    ('{"rows": [{"method": "a", "domain": "stft", "condition": "in-domain"}]}', "row 0 lacks 'metrics'"),
])
def test_report_command_bad_results_one_line_exit_2(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    assert cli_main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("captum-lmac report: error: ") and message in err
    with pytest.raises(InputError, match="no such results folder"):
        load_results(tmp_path / "nowhere")


def test_analysis_hooks_curves_plots_and_registered_drawer(tiny, tmp_path_factory, tmp_path):
    res, out = crnn_run(tmp_path_factory.mktemp("crnn"), tiny)
    a = res["analyses"][DELETION]
    plan = figure_plan(res)
    assert plan["analyses"][DELETION] == [f"figures/{DELETION}_curves.png"]
    srcs = _page(out / "report.html").srcs
    assert f"figures/{DELETION}_curves.png" in srcs and "deletion_predrawn.png" in srcs  # curves hook, plots hook
    assert set(a["curves"]["series"]) == {"gradcam", "saliency", "random"}
    assert a["curves"]["series"]["random"]["mean"][0] == a["curves"]["series"]["gradcam"]["mean"][0]  # k = 0
    dst = _copy(out, tmp_path)
    seen = []

    def draw(result, folder):
        seen.append(result["curves"]["x"])
        return [str(plots.curve_plot(result["curves"], folder / "figures" / "drawn.png").relative_to(folder))]

    register_analysis_figures(DELETION, draw)
    try:
        with pytest.raises(InputError, match="already registered"):
            register_analysis_figures(DELETION, draw)
        rerender(dst)
    finally:
        unregister_analysis_figures(DELETION)
    assert seen == [[0, 25, 50, 75]]
    assert "figures/drawn.png" in _page(dst / "report.html").srcs and (dst / "figures/drawn.png").is_file()
    assert "![deletion_curve](figures/drawn.png)" in (dst / "results.md").read_text()
    with pytest.raises(InputError, match="one value per x"):
        plots.curve_plot({"x": [1, 2], "series": {"a": {"mean": [1]}}}, tmp_path / "bad.png")


def test_compare_classifiers(tiny_run, tiny, tmp_path_factory, tmp_path, capsys):
    res_a, out_a, _ = tiny_run
    res_b, out_b = crnn_run(tmp_path_factory.mktemp("crnn"), tiny)
    cmp_dir = tmp_path / "cmp"
    assert cli_main(["report", str(out_a), str(out_b), "--out", str(cmp_dir)]) == 0
    page = _page(cmp_dir / "comparison.html")
    clf = page.tables["classifiers"]
    assert [r[1] for r in clf[1:]] == [out_a.name, CRNN_DESCRIPTION]  # no description: the folder name
    summary = page.tables["summary-table"]
    assert [r[0] for r in summary[2:]] == list(dict.fromkeys(
        [r["method"] for r in res_a["rows"] if (r["domain"], r["condition"]) == ("stft", "in-domain")]
        + [r["method"] for r in res_b["rows"] if (r["domain"], r["condition"]) == ("stft", "in-domain")]))
    assert summary[1][:2] == ["A", "B"]
    figs = sorted(p.name for p in (cmp_dir / "figures").iterdir())
    assert figs == ["compare_stft_in-domain.png", "compare_stft_white.png"]  # the conditions both ran
    assert "only A" in (cmp_dir / "comparison.html").read_text()
    assert (cmp_dir / "comparison.md").read_text().startswith("# Comparison of 2 classifiers")
    capsys.readouterr()
    assert cli_main(["report", str(out_a), str(out_b)]) == 2
    assert "needs --out DIR" in capsys.readouterr().err
    assert cli_main(["report", str(out_a), "--out", str(cmp_dir)]) == 2
    assert "--out is for comparing" in capsys.readouterr().err
    with pytest.raises(InputError, match="named twice"):
        compare([out_a, out_a], cmp_dir)


def test_plot_helpers_choose_what_to_show(tmp_path):
    rows = [{"method": "a", "condition": "in-domain", "metrics": {
        "AI": {"mean": 1.0, "lo": 0.5, "hi": 2.0}, "top1": {"mean": 0.5}, "MM": {"mean": float("nan")}}}]
    assert plots.summary_metrics(rows) == ["AI"]  # method-specific (l2i) metrics stay in the tables; NaN dropped
    assert plots.history_terms({"loss": [1, 0.5], "guidance": [0.0, 0.0], "val_fid_in": [0.5, 1.0]}) == ["loss", "fid_in"]
    assert plots.fit_history_plot({"history": {}}, tmp_path / "none.png") is None
    with pytest.raises(InputError):
        plots.interval_plot([], ["AI"], tmp_path / "x.png")
    p = plots.interval_plot([("in-domain", {"a": rows[0]["metrics"]})], ["AI"], tmp_path / "one.png")
    assert imread(str(p)).shape[1] > 100
