"""The harness with streaming training data: the same fits (and metrics) as in memory, for every learned method."""

import json

import pytest
import torch

from captum_lmac.benchmark import run_benchmark
from captum_lmac.benchmark.config import from_dict
from captum_lmac.benchmark.harness import DomainData
from captum_lmac.data import StreamingSpectrograms


def _cfg(make_config, **streaming):
    return make_config(methods=["lmac", "lmac_ft", "l2i"], conditions=["in-domain"], domains=["stft", "mel"],
                       sanity={"enabled": False}, report={"n_examples": 0},
                       lmac_ft={"fit": {"epochs": 1, "batch_size": 12, "lambda_g": 4.0}}, streaming=streaming)


def test_streamed_training_split_gives_the_in_memory_results(tiny, make_config):
    model, stft, data = tiny
    torch.set_num_threads(1)
    mem = run_benchmark(model, stft, data, config=_cfg(make_config, enabled=False), progress=False)
    streamed = run_benchmark(model, stft, data, config=_cfg(make_config, enabled=True), progress=False)
    assert [r["method"] for r in mem["rows"]] == [r["method"] for r in streamed["rows"]]
    assert len(mem["rows"]) == 2 * 4  # lmac, lmac_ft and L2I at 2 thresholds, in two domains
    for a, b in zip(mem["rows"], streamed["rows"]):
        for k in ("AI", "AD", "FF", "FidIn", "MM"):
            assert a["metrics"][k]["mean"] == pytest.approx(b["metrics"][k]["mean"], abs=1e-5), (a["domain"], a["method"], k)
    assert streamed["config"]["streaming"]["enabled"] is True


def test_domain_data_streams_in_both_domains(tiny, make_config):
    model, stft, data = tiny
    cfg = from_dict(_cfg(make_config, enabled=True, clip_seconds=0.5, crop="random"))
    for domain, n_rows in (("stft", stft.n_freqs), ("mel", 16)):
        dd = DomainData(model=model, domain=domain, data=data, config=cfg, stft=stft, data_root=None, memo={})
        train = dd.fit_data("train", limit=10)
        assert isinstance(train, StreamingSpectrograms) and len(train) == 10 and dd.streaming()
        b = train.first_batch(2)
        assert b.X.shape[2] == n_rows and b.X.shape[-1] == 126 and b.clean is not None  # 0.5 s random crops
        pairs, what = dd.pair_data(limit=5)
        assert len(pairs) == 5 and pairs.first_batch(1).clean.shape == pairs.first_batch(1).X.shape
        assert "clean event" in what


def test_streaming_settings_are_validated(make_config):
    with pytest.raises(Exception, match="streaming.enabled"):
        from_dict(make_config(streaming={"enabled": "sometimes"}))
    with pytest.raises(Exception, match="streaming.crop"):
        from_dict(make_config(streaming={"crop": "middle"}))
    cfg = from_dict(make_config())
    assert cfg.streaming.enabled == "auto" and not cfg.streaming.applies(2000) and cfg.streaming.applies(2001)


def test_load_data_streams_the_training_split_only(make_config):
    from captum_lmac import STFT
    from captum_lmac.benchmark.data import load_data

    splits = {"train": {"n_items": 30, "seed": 0}, "val": {"n_items": 4, "seed": 1}, "test": {"n_items": 4, "seed": 2}}
    stft = STFT(n_fft=256, hop_length=64, win_length=128)
    base = dict(data={"reader": "SyntheticEvents", "kwargs": {"n_classes": 3, "duration": 1.0}, "splits": splits},
                n_train=12)
    streamed = load_data(from_dict(make_config(**base, streaming={"enabled": "auto", "min_clips": 10})), stft,
                         progress=False)
    assert isinstance(streamed["train"], StreamingSpectrograms) and len(streamed["train"]) == 12
    assert not isinstance(streamed["val"], StreamingSpectrograms) and len(streamed["test"]) == 4
    small = load_data(from_dict(make_config(**base, streaming={"enabled": "auto", "min_clips": 12})), stft,
                      progress=False)
    assert not isinstance(small["train"], StreamingSpectrograms) and len(small["train"]) == 12
    assert torch.equal(streamed["train"].first_batch(12).X, small["train"].X)
    lean = load_data(from_dict(make_config(**base, streaming={"enabled": False})), stft, progress=False,
                     phase_splits=("test",))
    assert lean["train"].phase is None and lean["val"].phase is None and lean["test"].phase is not None
    assert torch.equal(lean["train"].X, small["train"].X)


def test_training_and_validation_clips_without_their_phase_give_the_same_results(tiny, make_config):
    """What ``captum-lmac benchmark`` loads for a classifier without a phase input (the phase of the
    training and validation clips left out): every figure as with the phase kept."""
    from captum_lmac.data import SpectrogramSet

    model, stft, data = tiny
    torch.set_num_threads(1)
    lean = dict(data)
    for k in ("train", "val"):
        s = data[k]
        lean[k] = SpectrogramSet(s.waveform, s.X, None, s.y, dict(s.extra), list(s.classes))
    cfg = make_config(methods=["lmac", "lmac_ft", "l2i"], conditions=["in-domain", "white"], domains=["stft"],
                      sanity={"enabled": False}, report={"n_examples": 0},
                      lmac_ft={"fit": {"epochs": 1, "batch_size": 12, "lambda_g": 4.0}})
    a = run_benchmark(model, stft, data, config=cfg, progress=False)
    b = run_benchmark(model, stft, lean, config=cfg, progress=False)
    rows = lambda res: json.dumps([r["metrics"] for r in res["rows"]], sort_keys=True)  # NaN compares as text
    assert len(a["rows"]) == 8 and rows(a) == rows(b)
