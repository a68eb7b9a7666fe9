"""Bad input to the command line: every error is one line on stderr, exit status 2, no traceback, and a
failed run writes no partial outputs."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

import captum_lmac.explain as explain
from captum_lmac import SyntheticEvents
from captum_lmac.cli import main

STFT_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--win-length", "128"]

FACTORIES = '''
import torch
from captum_lmac import STFT
from captum_lmac.training import build_classifier
from captum_lmac.nn.zoo import WaveformCNN

STFT8K = dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)

def clf():
    torch.manual_seed(0)
    return build_classifier(3, STFT(**STFT8K), n_mels=16, channels=(4, 8))

def nan_clf():
    m = clf()
    with torch.no_grad():
        m.net.fc.weight.fill_(float("nan"))
    return m

def wave16k():
    return WaveformCNN(3, sample_rate=16000, n_mels=16, width=4)

def broken():
    raise RuntimeError("the factory failed on purpose")
'''


def _check(rc, err, message):
    """One line on stderr naming the problem, exit status 2, no traceback."""
    assert rc == 2, err
    assert message in err, err
    assert err.count("\n") == 1 and err.startswith("captum-lmac") and "Traceback" not in err, err


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory, files):
    d = tmp_path_factory.mktemp("bad_cli")
    (d / "cli_models.py").write_text(FACTORIES)
    clips = d / "clips"
    clips.mkdir()
    ds = SyntheticEvents(4, seed=0, sample_rate=8000, duration=0.7, n_classes=3)
    for i in range(len(ds)):
        sf.write(clips / f"c{i}.wav", ds[i][0].numpy(), 8000)
    (d / "one").mkdir()
    sf.write(d / "one" / "c.wav", ds[0][0].numpy(), 8000)
    (d / "afile").write_text("x")
    (d / "adir.wav").mkdir()
    sf.write(d / "silent.wav", np.zeros(4000, np.float32), 8000)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 8000)
    (d / "corrupt.wav").write_bytes(b"RIFF not really")
    # damaged artefacts
    p = torch.load(files / "lmac.pt", weights_only=True)
    torch.save({**p, "format_version": 7}, d / "v7.pt")
    torch.save({**p, "meta_json": "{oops"}, d / "badjson.pt")
    c = torch.load(files / "clf.pt", weights_only=True)
    meta = json.loads(c["meta_json"])
    torch.save({**c, "meta_json": json.dumps({**meta, "net": "ResNet9000"})}, d / "badnet.pt")
    state = dict(c["state"])
    state["net.fc.weight"] = torch.full_like(state["net.fc.weight"], float("nan"))
    torch.save({**c, "state": state}, d / "nanclf.pt")
    esc = d / "esc"
    (esc / "meta").mkdir(parents=True)
    (esc / "audio").mkdir()
    (esc / "meta" / "esc50.csv").write_bytes(b"\xff\xfe\x00binary\x00")
    return d


def _explain(files, d, *extra, wav="clip.wav", out="o.wav", classifier="clf.pt", interpreter="lmac.pt"):
    base = files if wav in ("clip.wav", "short.wav", "stereo.wav") else d
    args = ["explain", str(base / wav), "--interpreter", str(files / interpreter if (files / interpreter).exists()
                                                           else d / interpreter), "--out", str(d / out)]
    if classifier:
        args += ["--classifier", str(files / classifier if (files / classifier).exists() else d / classifier)]
    return main(args + list(extra))


@pytest.mark.parametrize("kwargs, extra, message", [
    (dict(wav="missing.wav"), [], "audio file not found"),
    (dict(wav="adir.wav"), [], "is a directory, not an audio file"),
    (dict(wav="corrupt.wav"), [], "cannot read audio file"),
    (dict(wav="silent.wav"), [], "silent"),
    (dict(wav="empty.wav"), [], "is empty"),
    (dict(wav="short.wav", classifier="deep_clf.pt", interpreter="deep_lmac.pt"), [],
     "has 5 frames (≈ 256 samples, 0.032 s at 8000 Hz) but the classifier needs at least 16 frames (≈ 960 samples"),
    (dict(out="adir.wav"), [], "cannot write --out"),
    (dict(out="afile/x.wav"), [], "afile is a file, not a folder"),
    (dict(), ["--png", "{d}/afile/x.png"], "cannot write --png"),
    (dict(classifier="nanclf.pt"), [], "['net.fc.weight'] hold NaN or infinite values"),
    (dict(classifier="badnet.pt"), [], "unknown network 'ResNet9000'"),
    (dict(interpreter="v7.pt"), [], "checkpoint format_version 7); this version reads format_version 1"),
    (dict(interpreter="badjson.pt"), [], "malformed metadata"),
    (dict(interpreter="l2i.pt"), [], "holds a 'l2i' checkpoint, expected 'lmac'"),
    (dict(classifier="deep_clf.pt"), [], "fitted for a different classifier"),
    (dict(interpreter="missing.pt"), [], "checkpoint not found"),
    (dict(), ["--model", "x:y"], "either --classifier"),
    (dict(), ["--mask-domain", "dB"], "invalid choice: 'dB'"),
    (dict(), ["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (dict(classifier=None), [], "does not record its classifier"),
])
def test_explain_errors(files, cli_dir, capsys, kwargs, extra, message):
    before = set(os.listdir(cli_dir))
    rc = _explain(files, cli_dir, *[e.format(d=cli_dir) for e in extra], **kwargs)
    _check(rc, capsys.readouterr().err, message)
    assert set(os.listdir(cli_dir)) == before  # no WAV, no PNG, no partial file


def test_explain_png_failure_leaves_no_wav(files, cli_dir, capsys, monkeypatch):
    def broken_plot(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(explain, "plot_explanation", broken_plot)
    rc = _explain(files, cli_dir, out="late.wav")
    _check(rc, capsys.readouterr().err, "No space left on device")
    assert not (cli_dir / "late.wav").exists() and not [p for p in os.listdir(cli_dir) if "partial" in p]


def test_explain_nan_user_model(files, cli_dir, capsys):
    rc = main(["explain", str(files / "clip.wav"), "--interpreter", str(files / "lmac.pt"), "--out",
               str(cli_dir / "n.wav"), "--model", f"{cli_dir / 'cli_models.py'}:nan_clf"])
    _check(rc, capsys.readouterr().err, "NaN or infinite weights")
    assert not (cli_dir / "n.wav").exists()


def test_explain_stereo_and_usage_line(files, cli_dir, capsys):
    rc = _explain(files, cli_dir, wav="stereo.wav", out="stereo_out.wav")
    assert rc == 0 and (cli_dir / "stereo_out.wav").is_file() and (cli_dir / "stereo_out.png").is_file()
    audio, _ = sf.read(cli_dir / "stereo_out.wav")
    assert np.isfinite(audio).all()
    capsys.readouterr()
    rc = main(["explain", str(files / "clip.wav")])
    _check(rc, capsys.readouterr().err, "the following arguments are required: --interpreter, --out")
    rc = main(["transmogrify"])
    _check(rc, capsys.readouterr().err, "invalid choice: 'transmogrify'")
    rc = main([])
    _check(rc, capsys.readouterr().err, "the following arguments are required: command")
    rc = main(["demo", "--seed", "x"])
    _check(rc, capsys.readouterr().err, "argument --seed: invalid int value: 'x'")


@pytest.mark.parametrize("args, message", [
    (["--model", "no_such_module_xyz:make"], "cannot import module 'no_such_module_xyz'"),
    (["--model", "{d}/cli_models.py:broken"], "the factory failed on purpose"),
    (["--model", "{d}/cli_models.py:nan_clf"], "NaN or infinite weights"),
    (["--model", "{d}/cli_models.py:wave16k"], "expects 16000 Hz audio but the STFT is set for 8000 Hz"),
    (["--layers", "net.blok1"], "no layer named 'net.blok1'"),
    (["--data", "{d}/nowhere"], "data folder not found"),
    (["--data", "{d}/afile"], "must be a folder of audio files"),
    (["--data", "{d}/one"], "holds 1 clip(s); fitting needs at least 2"),
    (["--data", "{d}/esc"], "esc50.csv is not a UTF-8 text csv"),
    (["--out", "{d}/adir.wav"], "cannot write --out"),
    (["--out", "{d}/afile/l.pt"], "afile is a file, not a folder"),
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--epochs", "-3"], "epochs must be >= 1, got -3"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--lr", "0"], "lr must be > 0"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--val-fraction", "1.5"], "--val-fraction must lie in [0, 1)"),
    (["--duration", "0"], "duration (seconds) must be > 0"),
    (["--duration", "0.01"], "too short"),
    (["--sample-rate", "0"], "sample_rate must be >= 1"),
    (["--win-length", "512"], "win_length (512) must not exceed n_fft (256)"),
])
def test_fit_errors(cli_dir, capsys, args, message):
    options = {"--model": f"{cli_dir / 'cli_models.py'}:clf", "--data": str(cli_dir / "clips"),
               "--out": str(cli_dir / "fitted.pt"), "--epochs": "1", "--sample-rate": "8000", "--n-fft": "256",
               "--hop-length": "64", "--win-length": "128"}
    for k, v in zip(args[::2], args[1::2]):
        options[k] = v.format(d=cli_dir)
    rc = main(["fit", "--quiet"] + [x for kv in options.items() for x in kv])
    _check(rc, capsys.readouterr().err, message)
    assert not (cli_dir / "fitted.pt").exists() and not [p for p in os.listdir(cli_dir) if "partial" in p]


@pytest.mark.parametrize("args, message", [
    (["no_such_suite_xyz"], "no_such_suite_xyz"),
    (["{d}/bad.json"], "bad.json"),
    (["tiny_bad", "--out", "{d}/afile"], "is a file, not a folder"),
    (["tiny_bad", "--threads", "0"], "--threads must be >= 1"),
    (["tiny_bad", "--set", "novalue"], "--set wants KEY=VALUE"),
    (["tiny_bad", "--weights", "w.pt"], "--weights, --layers and --cam-layer go with --model"),
    (["tiny_bad", "--methods", "saliency,nosuchmethod"], "nosuchmethod"),
    (["tiny_bad", "--snr", "3", "--snr-preset", "paper"], "not allowed with argument"),
    (["tiny_bad", "--model", "no_such_module_xyz:make"], "cannot import module 'no_such_module_xyz'"),
])
def test_benchmark_errors(cli_dir, speech_dir, capsys, args, message):
    (cli_dir / "bad.json").write_text("{ this is not json")
    cfg = {"suite": "tiny_bad", "speech_dir": str(speech_dir),
           "classifier": {"stft": {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "win_length": 128,
                                   "window": "hamming"}},
           "data": {"reader": "SyntheticEvents", "kwargs": {"n_classes": 3, "duration": 0.7},
                    "splits": {"train": {"n_items": 6, "seed": 0}, "val": {"n_items": 3, "seed": 1},
                               "test": {"n_items": 3, "seed": 2}}},
           "lmac": {"fit": {"epochs": 1}}, "sanity": {"n_clips": 2}, "report": {"n_examples": 0}}
    (cli_dir / "tiny_bad.json").write_text(json.dumps(cfg))
    args = [a.format(d=cli_dir).replace("tiny_bad", str(cli_dir / "tiny_bad.json")) if a == "tiny_bad" else
            a.format(d=cli_dir) for a in args]
    if "--out" not in args:
        args += ["--out", str(cli_dir / "bench_out")]
    rc = main(["benchmark"] + args + ["--cache", str(cli_dir / "bench_cache"), "--quiet"])
    _check(rc, capsys.readouterr().err, message)
    assert not (cli_dir / "bench_out").exists()
