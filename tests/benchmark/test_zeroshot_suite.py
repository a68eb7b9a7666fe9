"""The zero-shot suite runs through the one harness: LMAC-ZS rows, baselines, behaviour checks, reports."""

import functools

import pytest
import torch

from captum_lmac import STFT, SyntheticEvents, to_spectrograms
from captum_lmac.benchmark import run_benchmark
from captum_lmac.data.captions import class_prompts
from captum_lmac.nn.zeroshot import CLAPAudioEncoder, ZeroShotClassifier

from toys import TinyAudio, WordVectors

TINY_STFT = dict(n_fft=256, hop_length=64, win_length=128)


@pytest.fixture(scope="module")
def zs_setup():
    stft = STFT(**TINY_STFT)
    mk = lambda n, s: to_spectrograms(SyntheticEvents(n, seed=s, n_classes=3, duration=1.0), stft, progress=False)
    data = {"train": mk(12, 0), "val": mk(6, 1), "test": mk(9, 2)}
    torch.manual_seed(0)
    zs = ZeroShotClassifier(TinyAudio().eval(), WordVectors(), class_prompts(data["train"].classes), logit_scale=10.0)
    return zs, stft, data


def test_zero_shot_suite_through_the_harness(zs_setup, speech_dir, tmp_path):
    zs, stft, data = zs_setup
    cfg = {
        "suite": "tiny-zeroshot", "methods": ["lmac_zs", "gradcam++", "saliency"], "domains": ["stft", "mel"],
        "conditions": ["in-domain", "white"], "n_test": 6, "cam_layer": "audio_encoder.block2",
        "speech_dir": str(speech_dir), "sanity": {"enabled": False}, "analyses": ["zeroshot_behaviour"],
        "report": {"n_examples": 1},
        "lmac_zs": {"layers": ["block1", "block2"], "fit": {"epochs": 1, "batch_size": 4},
                    "fsdd_per_digit": 0, "ambient_segments_per_file": 0, "val_clips": 4},
    }
    res = run_benchmark(zs, stft, data, config=cfg, out_dir=tmp_path, progress=False)
    rows = {(r["domain"], r["condition"], r["method"]) for r in res["rows"]}
    assert rows == {("stft", c, m) for c in ("in-domain", "white") for m in ("lmac_zs", "gradcam++", "saliency")}
    assert any("mel domain" in s for s in res["skipped"])  # TinyAudio has no feature extractor
    assert "lmac_zs (stft)" in res["fits"]
    beh = res["analyses"]["zeroshot_behaviour"]
    assert set(beh["correlation"]["methods"]) == {"lmac_zs", "gradcam++"}
    assert beh["correlation"]["n_clips"] == 6 and beh["correlation"]["n_prompts"] == 3
    assert set(beh["unrelated"]) >= {"lmac_zs", "gradcam++", "unrelated_prompts"}
    own = beh["unrelated"]["lmac_zs"]["own_class_when_right"]
    assert 0 <= own["n_below_0.01"] <= own["n"] <= 6
    md = (tmp_path / "results.md").read_text()
    assert "## Unrelated prompts" in md and "## Mask mean vs prompt–audio similarity" in md
    assert "Clips the model gets right" in md
    for p in beh["plots"]:
        assert (tmp_path / p).stat().st_size > 1000
    html = (tmp_path / "report.html").read_text()
    assert "zeroshot_mm_vs_similarity.png" in html


def test_zero_shot_randomisation_check(zs_setup, speech_dir, tmp_path):
    """LMAC-ZS in the cascading-randomisation check: the audio tower is randomised from the
    projection down, the fitted decoder is kept (and refitted once on the randomised encoder),
    GradCAM++ is recomputed."""
    zs, stft, data = zs_setup
    cfg = {
        "suite": "tiny-zeroshot", "methods": ["lmac_zs", "gradcam++"], "domains": ["stft"],
        "conditions": ["in-domain"], "n_test": 4, "cam_layer": "audio_encoder.block2",
        "speech_dir": str(speech_dir), "analyses": [],
        "sanity": {"methods": ["lmac_zs", "gradcam++"], "n_clips": 3},
        "lmac_zs": {"layers": ["block1", "block2"], "fit": {"epochs": 1, "batch_size": 4},
                    "fsdd_per_digit": 0, "ambient_segments_per_file": 0, "val_clips": 4},
    }
    before = zs.audio_encoder.fc.weight.detach().clone()
    res = run_benchmark(zs, stft, data, config=cfg, out_dir=tmp_path, progress=False)
    san = res["sanity"]
    assert san["stages"] == ["none", "fc", "+block2", "+block1"]
    assert set(san["methods"]) == {"lmac_zs", "lmac_zs (refit)", "gradcam++"}
    assert san["decoder"]["lmac_zs (refit)"].startswith("refitted")
    assert san["decoder"]["lmac_zs"].startswith("fitted decoder kept")
    assert len(san["refit"]["fits"]["lmac_zs (refit)"]) == 1
    fixed = san["methods"]["lmac_zs"]["mean"]
    assert len(fixed) == 4 and fixed[0] == pytest.approx(1.0) and all(0 <= v <= 1.0 + 1e-6 for v in fixed)
    refit = san["methods"]["lmac_zs (refit)"]["mean"]
    assert refit[:-1] == [pytest.approx(1.0)] + [None] * 2 and 0 <= refit[-1] <= 1.0 + 1e-6
    assert (tmp_path / "sanity_cascading.png").stat().st_size > 1000
    assert torch.equal(before, zs.audio_encoder.fc.weight)  # the original is untouched


def test_zero_shot_mel_rows(zs_setup, speech_dir, tmp_path):
    """With an encoder that has a feature extractor (the small CLAP's), LMAC-ZS and GradCAM++ also
    run in the "Mel" domain: the mask is on the log-mel features the encoder reads."""
    _, stft, data = zs_setup
    torch.manual_seed(0)
    enc = CLAPAudioEncoder(stft, n_mels=16, channels=(4, 8), embed_dim=16).eval()
    zs = ZeroShotClassifier(enc, WordVectors(16), class_prompts(data["train"].classes), logit_scale=10.0)
    cfg = {
        "suite": "tiny-zeroshot", "methods": ["lmac_zs", "gradcam++"], "domains": ["stft", "mel"],
        "conditions": ["in-domain"], "n_test": 4, "cam_layer": "audio_encoder.net.block2",
        "speech_dir": str(speech_dir), "sanity": {"enabled": False}, "analyses": ["zeroshot_behaviour"],
        "lmac_zs": {"layers": ["net.block1", "net.block2"], "fit": {"epochs": 1, "batch_size": 4},
                    "fsdd_per_digit": 0, "ambient_segments_per_file": 0, "val_clips": 4},
    }
    res = run_benchmark(zs, stft, data, config=cfg, out_dir=tmp_path, progress=False)
    rows = {(r["domain"], r["method"]) for r in res["rows"]}
    assert rows == {(d, m) for d in ("stft", "mel") for m in ("lmac_zs", "gradcam++")}
    assert {"lmac_zs (stft)", "lmac_zs (mel)"} <= set(res["fits"])
    mel = next(r for r in res["rows"] if r["domain"] == "mel" and r["method"] == "lmac_zs")
    assert 0.0 <= mel["metrics"]["MM"]["mean"] <= 1.0 and mel["domain_label"] == "Mel"
    assert set(res["analyses"]["zeroshot_behaviour"]["correlation"]["methods"]) == {"lmac_zs", "gradcam++"}


def test_lmac_zs_augment_is_checked_keyed_and_used(zs_setup, speech_dir, tmp_path, monkeypatch):
    """``lmac_zs.augment`` fits on the training clips plus seeded mixtures, each captioned with its
    clean clip's class; off (the default) it leaves the cache key — and so the cached fit — alone."""
    from captum_lmac import LMACZS
    from captum_lmac.errors import InputError

    zs, stft, data = zs_setup
    cfg = {
        "suite": "tiny-zeroshot", "methods": ["lmac_zs"], "domains": ["stft"], "conditions": ["in-domain"],
        "n_test": 3, "cam_layer": "audio_encoder.block2", "speech_dir": str(speech_dir),
        "sanity": {"enabled": False}, "analyses": [],
        "lmac_zs": {"layers": ["block1", "block2"], "fit": {"epochs": 1, "batch_size": 4},
                    "fsdd_per_digit": 0, "ambient_segments_per_file": 0, "val_clips": 4},
    }
    for bad in ({"fraction": 2}, {"kinds": ["speech"]}, {"colour": 1}):
        with pytest.raises(InputError, match="lmac_zs.augment"):
            run_benchmark(zs, stft, data, config={**cfg, "lmac_zs": {**cfg["lmac_zs"], "augment": bad}},
                          cache_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="lmac_zs.augment needs the training clips in memory"):
        run_benchmark(zs, stft, data, config={**cfg, "streaming": {"enabled": True},
                                              "lmac_zs": {**cfg["lmac_zs"], "augment": {"fraction": 0.5}}},
                      cache_dir=tmp_path, progress=False)
    seen = []
    fit = LMACZS.fit

    @functools.wraps(fit)  # the config check reads fit's signature
    def recording_fit(self, data_, *a, **kw):
        seen.append(data_)
        return fit(self, data_, *a, **kw)

    monkeypatch.setattr(LMACZS, "fit", recording_fit)
    run_benchmark(zs, stft, data, config=cfg, cache_dir=tmp_path, progress=False)
    cached = tmp_path / "tiny-zeroshot_lmac_zs.pt"
    stamp = cached.stat().st_mtime_ns
    run_benchmark(zs, stft, data, config={**cfg, "lmac_zs": {**cfg["lmac_zs"], "augment": {}}},
                  cache_dir=tmp_path, progress=False)
    assert len(seen) == 1 and cached.stat().st_mtime_ns == stamp  # an empty augment is the cached clean fit
    aug = {"fraction": 0.5, "snr_db": [0, 6], "add": True}
    run_benchmark(zs, stft, data, config={**cfg, "lmac_zs": {**cfg["lmac_zs"], "augment": aug}},
                  cache_dir=tmp_path, progress=False)
    assert len(seen) == 2 and cached.stat().st_mtime_ns != stamp
    X, captions = seen[1]
    n = data["train"].X.shape[0]
    assert X.shape[0] == len(captions) == n + n // 2  # the clean clips, then the mixtures
    assert not torch.equal(X[n:], X[: n // 2])
    clean = [list(c) for c in seen[0][1]]
    assert [list(c) for c in captions[:n]] == clean  # each mixture captioned like one of the clean clips
    assert all(list(c) in clean for c in captions[n:])
    stored = LMACZS.load(cached, zs).history["benchmark"]["section"]["augment"]
    assert stored == aug
