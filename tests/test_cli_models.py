"""The command line for a user's own model: fit, explain and benchmark with --model (spectrogram and waveform)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac import SyntheticEvents
from captum_lmac.cli import main

STFT_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--win-length", "128"]

FACTORIES = '''
import torch
from captum_lmac import STFT, LogMel, SpectrogramClassifier
from captum_lmac.nn.zoo import CRNN, WaveformCNN

STFT8K = dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)

def crnn():
    torch.manual_seed(0)
    return SpectrogramClassifier(LogMel(STFT(**STFT8K), n_mels=16), CRNN(3, n_mels=16, width=4))

def waveform():
    torch.manual_seed(0)
    return WaveformCNN(3, sample_rate=8000, n_mels=16, width=4)

def broken():
    raise RuntimeError("the factory failed on purpose")
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("user_model")
    (d / "models.py").write_text(FACTORIES)
    clips = d / "clips"
    clips.mkdir()
    ds = SyntheticEvents(12, seed=0, sample_rate=8000, duration=0.7, n_classes=3)
    for i in range(len(ds)):
        sf.write(clips / f"clip{i:02d}.wav", ds[i][0].numpy(), 8000)
    torch.set_num_threads(1)
    return d


@pytest.mark.parametrize("factory, layers", [("crnn", "net.block1,net.gru"), ("waveform", "auto")])
def test_fit_then_explain_a_user_model(folder, factory, layers, capsys):
    out = folder / f"{factory}.pt"
    rc = main(["fit", "--model", f"{folder / 'models.py'}:{factory}", "--data", str(folder / "clips"),
               "--out", str(out), "--layers", layers, "--epochs", "1", "--batch-size", "6", "--duration", "0.7",
               "--quiet"] + STFT_ARGS)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "fitted L-MAC on 11 clips (validation 1)" in text and out.is_file()
    if layers == "auto":
        assert "layers='auto':" in text  # the rule's choice is printed
    rc = main(["explain", str(folder / "clips" / "clip03.wav"), "--interpreter", str(out),
               "--out", str(folder / f"{factory}_exp.wav")])
    assert rc == 0
    audio, sr = sf.read(folder / f"{factory}_exp.wav")
    assert sr == 8000 and len(audio) == 5600 and np.isfinite(audio).all()
    assert (folder / f"{factory}_exp.png").is_file()


def test_benchmark_with_a_user_model(folder, speech_dir, tmp_path, capsys):
    cfg = {"suite": "user_cli", "speech_dir": str(speech_dir), "classifier": {"stft": {
        "sample_rate": 8000, "n_fft": 256, "hop_length": 64, "win_length": 128, "window": "hamming"}},
        "data": {"reader": "SyntheticEvents", "kwargs": {"n_classes": 3, "duration": 0.7},
                 "splits": {"train": {"n_items": 12, "seed": 0}, "val": {"n_items": 6, "seed": 1},
                            "test": {"n_items": 6, "seed": 2}}},
        "lmac": {"fit": {"epochs": 1, "batch_size": 6}}, "sanity": {"n_clips": 3}, "report": {"n_examples": 0}}
    path = tmp_path / "user_cli.json"
    path.write_text(json.dumps(cfg))
    rc = main(["benchmark", str(path), "--model", f"{folder / 'models.py'}:waveform", "--layers", "block2,block3",
               "--cam-layer", "block3", "--methods", "gradcam,saliency,lmac", "--conditions", "in-domain",
               "--domains", "stft", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["method"] for r in res["rows"]} == {"gradcam", "saliency", "lmac"}
    assert res["config"]["cam_layer"] == "model.block3"  # the user's names, inside the waveform adapter
    assert res["config"]["lmac"]["layers"] == ["model.block2", "model.block3"]


@pytest.mark.parametrize("args, message", [
    (["--model", "no_such_module_xyz:make"], "no_such_module_xyz"),
    (["--model", "{dir}/models.py:missing"], "missing"),
    (["--model", "{dir}/models.py:broken"], "the factory failed on purpose"),
    (["--model", "{dir}/models.py:crnn", "--layers", "net.blok1"], "net.blok1"),
    (["--model", "{dir}/models.py:crnn", "--data", "{dir}/nowhere"], "nowhere"),
])
def test_fit_errors_are_one_line_and_exit_2(folder, args, message, capsys):
    args = [a.format(dir=folder) for a in args]
    base = {"--data": str(folder / "clips"), "--out": str(folder / "x.pt")}
    for k, v in base.items():
        if k not in args:
            args += [k, v]
    rc = main(["fit"] + args + ["--epochs", "1", "--duration", "0.7", "--quiet"] + STFT_ARGS)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("factory, layers, alpha", [("waveform", "block2,block3", "0.75"), ("crnn", "none", "0")])
def test_fit_then_explain_with_lmac_td(folder, factory, layers, alpha, capsys):
    """--method lmac_td: the interpreter explains with a waveform, on a waveform and a spectrogram model."""
    out = folder / f"{factory}_td.pt"
    rc = main(["fit", "--method", "lmac_td", "--alpha", alpha, "--autoencoder-steps", "5", "--model",
               f"{folder / 'models.py'}:{factory}", "--data", str(folder / "clips"), "--out", str(out),
               "--layers", layers, "--epochs", "1", "--batch-size", "6", "--duration", "0.7", "--quiet"] + STFT_ARGS)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "fitted LMAC-TD on 11 clips (validation 1)" in text and "autoencoder SI-SDR" in text and out.is_file()
    wav = folder / f"{factory}_td_exp.wav"
    rc = main(["explain", str(folder / "clips" / "clip03.wav"), "--interpreter", str(out), "--out", str(wav)])
    assert rc == 0, capsys.readouterr().err
    audio, sr = sf.read(wav)
    assert sr == 8000 and len(audio) == 5600 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert wav.with_suffix(".png").is_file()
    rc = main(["explain", str(folder / "clips" / "clip03.wav"), "--interpreter", str(out), "--out", str(wav),
               "--max-seconds", "0.1"])
    err = capsys.readouterr().err
    assert rc == 2 and "LMAC-TD explains a file in one pass" in err and err.count("\n") == 1


def test_lmac_td_fit_refuses_checkpoints(folder, capsys):
    rc = main(["fit", "--method", "lmac_td", "--model", f"{folder / 'models.py'}:waveform", "--data",
               str(folder / "clips"), "--out", str(folder / "td.pt"), "--checkpoint-dir", str(folder / "ck"),
               "--quiet"] + STFT_ARGS)
    err = capsys.readouterr().err
    assert rc == 2 and "not checkpointed" in err and err.count("\n") == 1
