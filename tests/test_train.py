"""Classifier training helper and pickle-free classifier checkpoints."""

import pytest
import torch

from captum_lmac import STFT, CheckpointError, InputError, SyntheticEvents, to_spectrograms
from captum_lmac.training import accuracy, build_classifier, load_classifier, save_classifier, train_classifier


@pytest.fixture(scope="module")
def data():
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    tr = to_spectrograms(SyntheticEvents(60, seed=0, sample_rate=8000, duration=0.7, n_classes=3), stft, progress=False)
    va = to_spectrograms(SyntheticEvents(30, seed=1, sample_rate=8000, duration=0.7, n_classes=3), stft, progress=False)
    return stft, tr, va


def test_training_learns_is_seeded_and_keeps_best_epoch(data):
    stft, tr, va = data
    models, hists = [], []
    for _ in range(2):
        torch.manual_seed(0)  # the initial weights come from the global generator
        m = build_classifier(3, stft, n_mels=16, channels=(4, 8))
        hists.append(train_classifier(m, tr.X, tr.y, va.X, va.y, epochs=10, lr=5e-3, batch_size=8, progress=False, seed=3))
        models.append(m)
    assert hists[0]["val_acc"] == hists[1]["val_acc"]  # reproducible
    acc = accuracy(models[0], va.X, va.y)
    assert acc == pytest.approx(max(hists[0]["val_acc"]))  # best epoch restored
    assert acc > 0.6  # well above chance (1/3) on the 3-class synthetic task
    assert not models[0].training


def test_training_input_errors(data):
    stft, tr, _ = data
    m = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    with pytest.raises(InputError, match="labels"):
        train_classifier(m, tr.X, tr.y + 5, epochs=1, progress=False)
    bad = tr.X.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        train_classifier(m, bad, tr.y, epochs=1, progress=False)


def test_classifier_checkpoint_round_trip(data, tmp_path):
    stft, tr, va = data
    m = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    train_classifier(m, tr.X, tr.y, epochs=1, progress=False)
    path = save_classifier(tmp_path / "c.pt", m, stft, ["a", "b", "c"], {"note": "x"})
    m2, stft2, classes, info = load_classifier(path)
    assert classes == ["a", "b", "c"] and info == {"note": "x"} and stft2.config() == stft.config()
    with torch.no_grad():
        assert torch.equal(m2(va.X), m.eval()(va.X))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="unknown network"):
        build_classifier(3, stft, net="ResNet")
