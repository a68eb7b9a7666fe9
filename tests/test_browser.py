"""The report pages in a real browser: headless Chromium opens each page from disk (file://) and
checks that nothing errs in the console, every picture loads, every player's WAV exists and decodes
with the WAV's duration, the summary table lists every method, and nothing is fetched from outside
the page's folder. The browser is the system's Chromium (Debian's ``chromium``), driven over the
DevTools protocol (``tests/browser.py``); without one the tests skip and name it."""

import json
from pathlib import Path

import pytest
import soundfile as sf

import browser as browser_mod
from browser import CANDIDATES, BrowserError, Chromium, find_chromium, inspect_page, url_path
from captum_lmac.cli import main as cli_main
from report_runs import crnn_run, demo_run, rerendered_run


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip(f"Chromium not found (looked for $CHROMIUM, {', '.join(CANDIDATES)}): install Debian's "
                    "`chromium` package (apt-get install chromium) to run the browser tests")
    with Chromium(exe, timeout=60) as b:
        yield b


def test_find_chromium_order(monkeypatch, tmp_path):
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(fake))
    assert find_chromium() == str(fake)  # $CHROMIUM first
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "absent"))
    monkeypatch.setattr(browser_mod, "CANDIDATES", ("no-such-chromium",))
    assert find_chromium() is None  # then the browser tests skip, naming it


def check_page(browser, page: Path, methods):
    """Open ``page`` and assert everything a reader needs works; returns the browser's report."""
    folder = page.parent.resolve()
    rep = inspect_page(browser, page)
    assert rep.errors == [], f"{page.name}: console / network errors: {rep.errors}"
    assert rep.images, f"{page.name} shows no picture"
    for img in rep.images:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, f"{page.name}: picture did not load: {img}"
    for a in rep.audio:
        path = url_path(a["url"])
        assert path.is_file(), f"{page.name}: player source missing: {a['src']}"
        assert a["error"] is None and a["outcome"] in ("ready", "canplaythrough") and a["readyState"] >= 3, \
            f"{page.name}: {a['src']} did not decode: {a}"
        info = sf.info(str(path))
        assert a["duration"] == pytest.approx(info.frames / info.samplerate, abs=2e-3), a["src"]
    for url in rep.requests:  # offline: the page and its folder, plus the browser's own inline icons
        if url.startswith("data:"):
            continue
        assert url.startswith("file://"), f"{page.name} fetched {url}"
        assert folder in url_path(url).resolve().parents or url_path(url).resolve() == page.resolve(), url
    assert rep.summary_methods is not None, f"{page.name} has no summary table"
    assert rep.summary_methods == list(methods)
    return rep


def test_checker_catches_broken_pages(browser, tmp_path):
    """The checks above fail on a page with a missing picture, a WAV that does not decode and a
    script error (so a passing page really passed them)."""
    (tmp_path / "noise.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    sf.write(str(tmp_path / "ok.wav"), [0.0, 0.1, -0.1] * 2000, 8000)
    (tmp_path / "p.html").write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title></head><body>"
        "<img src='missing.png' alt='x'><audio controls src='noise.wav'></audio><audio controls src='ok.wav'></audio>"
        "<table id='summary-table'><tr><th>Method</th></tr><tr><td>a</td></tr></table>"
        "<script>console.error('boom'); undefined_function();</script></body></html>")
    rep = inspect_page(browser, tmp_path / "p.html")
    assert any("boom" in e for e in rep.errors) and any("undefined_function" in e for e in rep.errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in rep.errors)
    assert rep.images[0]["width"] == 0
    bad, ok = rep.audio
    assert bad["error"] is not None
    assert ok["error"] is None and ok["duration"] == pytest.approx(6000 / 8000, abs=2e-3)
    assert rep.summary_methods == ["a"]
    with pytest.raises(BrowserError):
        inspect_page(browser, tmp_path / "nowhere.html", timeout=5)


def test_benchmark_report_in_browser(browser, tiny_run):
    res, out, _ = tiny_run
    rep = check_page(browser, out / "report.html", res["methods"])
    n_ex = sum(1 + 1 + len([m for m in c["methods"] if m.get("wav")]) for ex in res["examples"] for c in ex["clips"])
    assert len(rep.audio) == n_ex  # input, true source and every listenable explanation of every card
    srcs = {i["src"] for i in rep.images}
    assert {"figures/summary_stft.png", "figures/summary_mel.png", "sanity_cascading.png",
            "figures/fit_lmac_stft.png"} <= srcs


def test_rerendered_report_in_browser(browser, tiny_run, tmp_path_factory):
    res, out, _ = tiny_run
    dst, info = rerendered_run(tmp_path_factory.mktemp("rerender"), out)  # figures redrawn, 2 media files gone
    assert info["rc"] == 0
    check_page(browser, dst / "report.html", res["methods"])


def test_demo_page_in_browser(browser, tmp_path_factory):
    out = demo_run(tmp_path_factory.mktemp("demo"))
    methods = list(json.loads((out / "metrics.json").read_text())["results"])
    assert methods == ["L-MAC", "L-MAC FT", "GradCAM", "Saliency"]
    rep = check_page(browser, out / "index.html", methods)
    assert len(rep.audio) == 2 * (2 + len(methods))  # 2 clips: input, true source, one per method
    assert {"fit_lmac.png", "fit_lmac_ft.png"} <= {i["src"] for i in rep.images}


def test_comparison_page_in_browser(browser, tiny_run, tiny, tmp_path_factory, tmp_path):
    res_a, out_a, _ = tiny_run
    res_b, out_b = crnn_run(tmp_path_factory.mktemp("crnn"), tiny)
    check_page(browser, out_b / "report.html", res_b["methods"])  # a report with analysis plots, another model
    assert cli_main(["report", str(out_a), str(out_b), "--out", str(tmp_path / "cmp")]) == 0
    in_domain = [r["method"] for r in res_a["rows"] + res_b["rows"] if (r["domain"], r["condition"]) == ("stft", "in-domain")]
    rep = check_page(browser, tmp_path / "cmp" / "comparison.html", list(dict.fromkeys(in_domain)))
    assert {"figures/compare_stft_in-domain.png", "figures/compare_stft_white.png"} <= {i["src"] for i in rep.images}
