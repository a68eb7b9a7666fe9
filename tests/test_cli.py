"""The captum-lmac command line: explain a WAV file; clear errors for bad input."""

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac import STFT, LMAC, SyntheticEvents, to_spectrograms
from captum_lmac.cli import main
from captum_lmac.training import build_classifier, save_classifier, train_classifier


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    ds = SyntheticEvents(24, seed=0, sample_rate=8000, duration=0.7, n_classes=3)
    data = to_spectrograms(ds, stft, progress=False)
    torch.manual_seed(0)
    model = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    train_classifier(model, data.X, data.y, epochs=2, batch_size=8, progress=False)
    save_classifier(d / "clf.pt", model, stft, ds.classes)
    lmac = LMAC(model, layers=["net.block1", "net.block2"])
    lmac.fit(data.X, epochs=1, batch_size=8, progress=False)
    lmac.save(d / "lmac.pt")
    # the input file is at 16 kHz: the command resamples it to the classifier's 8 kHz
    wave16 = SyntheticEvents(1, seed=5, sample_rate=16000, duration=0.7, n_classes=3)[0][0].numpy()
    sf.write(d / "clip.wav", wave16, 16000)
    return d, model, stft


def test_explain_writes_wav_and_png(saved, capsys):
    d, _, _ = saved
    rc = main(["explain", str(d / "clip.wav"), "--classifier", str(d / "clf.pt"), "--interpreter", str(d / "lmac.pt"),
               "--out", str(d / "exp.wav")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "class:" in out and "exp.wav" in out
    audio, sr = sf.read(d / "exp.wav")
    assert sr == 8000 and len(audio) == int(0.7 * 8000)
    assert np.abs(audio).max() > 0
    assert (d / "exp.png").stat().st_size > 1000


def test_explain_refuses_interpreter_of_another_classifier(saved, capsys):
    d, _, stft = saved
    other = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    save_classifier(d / "other.pt", other, stft, ["a", "b", "c"])
    rc = main(["explain", str(d / "clip.wav"), "--classifier", str(d / "other.pt"), "--interpreter", str(d / "lmac.pt"),
               "--out", str(d / "x.wav")])
    assert rc == 2
    assert "different classifier" in capsys.readouterr().err


@pytest.mark.parametrize(
    "audio,message",
    [(np.zeros(4000, dtype=np.float32), "silent"), (np.zeros(0, dtype=np.float32), "empty")],
)
def test_explain_bad_audio(saved, capsys, audio, message, tmp_path):
    d, _, _ = saved
    sf.write(tmp_path / "bad.wav", audio, 8000)
    rc = main(["explain", str(tmp_path / "bad.wav"), "--classifier", str(d / "clf.pt"), "--interpreter",
               str(d / "lmac.pt"), "--out", str(tmp_path / "o.wav")])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_explain_missing_file(saved, capsys, tmp_path):
    d, _, _ = saved
    rc = main(["explain", str(tmp_path / "nope.wav"), "--classifier", str(d / "clf.pt"), "--interpreter",
               str(d / "lmac.pt"), "--out", str(tmp_path / "o.wav")])
    assert rc == 2 and "not found" in capsys.readouterr().err
