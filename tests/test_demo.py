"""The demo page (`captum-lmac demo --tiny`): how to read it, the metrics summary table, fit histories
and one card per clip, with every file it names in its folder (the browser test opens it too)."""

import json
import re
from html.parser import HTMLParser

import pytest
import soundfile as sf

from captum_lmac.demo import METRIC_KEYS, run_demo
from captum_lmac.errors import InputError
from captum_lmac.metrics import metric_info
from report_runs import demo_run


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.ids, self.summary, self._in, self._row = [], set(), [], False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.ids.add(a.get("id"))
        if tag in ("img", "audio") and a.get("src"):
            self.srcs.append(a["src"])
        if tag == "table" and a.get("id") == "summary-table":
            self._in = True
        if self._in and tag == "tr":
            self._row = []
            self.summary.append(self._row)
        if self._in and tag in ("td", "th"):
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False

    def handle_data(self, data):
        if self._in and self._row is not None and self._row:
            self._row[-1] += data


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = demo_run(tmp_path_factory.mktemp("demo"))
    page = _Collect()
    page.feed((out / "index.html").read_text())
    return out, page, json.loads((out / "metrics.json").read_text())


def test_demo_page_has_how_to_read_summary_fits_and_cards(demo):
    out, page, metrics = demo
    assert {"how-to-read", "summary", "fits", "examples"} <= page.ids
    text = (out / "index.html").read_text()
    for k in METRIC_KEYS:  # every metric explained, with its direction, from its declaration
        info = metric_info(k)
        assert info.description and info.description in text
        assert f"<dt>{info.label}{info.arrow}</dt>" in text
    head, body = page.summary[0], page.summary[1:]
    assert head == ["Method"] + [metric_info(k).label + metric_info(k).arrow for k in METRIC_KEYS] + ["ms/clip"]
    assert [r[0] for r in body] == list(metrics["results"]) == ["L-MAC", "L-MAC FT", "GradCAM", "Saliency"]
    fid = head.index("Fid-In ↑")
    for r, (name, agg) in zip(body, metrics["results"].items()):
        assert r[fid].startswith(f"{agg['FidIn']['mean']:.3f}[")  # mean, then its interval
    assert len(re.findall(r"<article class='card'>", text)) == 2


def test_demo_files_exist_and_play(demo):
    out, page, metrics = demo
    assert metrics["size"] == "tiny"
    assert page.srcs and all((out / s).is_file() for s in page.srcs)
    wavs = [s for s in page.srcs if s.endswith(".wav")]
    assert len(wavs) == 2 * (2 + 4)
    for w in wavs:
        data, sr = sf.read(str(out / w))
        assert sr == 16000 and data.shape == (16000,)
    for stem in ("clip0_lmac", "clip0_gradcam"):
        assert {f"{stem}.png", f"{stem}_masked.png", f"{stem}.wav"} <= set(page.srcs)
    assert "clip0_true_source.wav" in page.srcs and "clip0_oracle.png" in page.srcs


def test_demo_rejects_unknown_size(tmp_path):
    with pytest.raises(InputError, match="demo size must be one of full, quick, tiny"):
        run_demo(tmp_path, tmp_path, size="huge")
