"""Shared tiny fixtures of the bad-input suite: one 8 kHz STFT, an untrained 3-class CNN, fitted
L-MAC / L2I / LMAC-ZS (one epoch each) and their saved files. Everything is built once per session
and stays small (the whole suite runs in well under a minute on one thread)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac import L2I, LMAC, STFT, SyntheticEvents, to_spectrograms
from captum_lmac.attr import LMACZS
from captum_lmac.nn.zeroshot import ZeroShotClassifier
from captum_lmac.training import build_classifier, save_classifier
from toys import TinyAudio, WordVectors

STFT8K = dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
LAYERS = ["net.block1", "net.block2"]
PROMPTS = ["this is the sound of dog", "this is the sound of rain"]


@pytest.fixture(autouse=True)
def _one_thread_here(one_thread):
    """Every bad-input test runs on one thread (the fixture is in tests/conftest.py)."""


@pytest.fixture(scope="session")
def stft():
    return STFT(**STFT8K)


@pytest.fixture(scope="session")
def clips(stft):
    ds = SyntheticEvents(8, seed=0, sample_rate=8000, duration=0.7, n_classes=3)
    return to_spectrograms(ds, stft, progress=False)


@pytest.fixture(scope="session")
def model(stft):
    torch.manual_seed(0)
    return build_classifier(3, stft, n_mels=16, channels=(4, 8)).eval()


@pytest.fixture(scope="session")
def deep_model(stft):
    """Four 2x2-pooling blocks: needs at least 16 frames (≈ 960 samples at hop 64)."""
    torch.manual_seed(0)
    return build_classifier(3, stft, n_mels=16, channels=(4, 4, 4, 4)).eval()


@pytest.fixture(scope="session")
def lmac(model, clips):
    m = LMAC(model, layers=LAYERS, hidden=8)
    m.fit(clips.X, epochs=1, batch_size=8, progress=False)
    return m


@pytest.fixture(scope="session")
def deep_lmac(deep_model, clips):
    m = LMAC(deep_model, layers=["net.block1"], hidden=8)
    m.fit(clips.X, epochs=1, batch_size=8, progress=False)
    return m


@pytest.fixture(scope="session")
def l2i(model, clips):
    m = L2I(model, layers=LAYERS, n_components=4, hidden=4)
    m.fit(clips.X, epochs=1, batch_size=8, nmf_iter=5, progress=False)
    return m


@pytest.fixture(scope="session")
def zs_data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(4, 1, 16, 24, generator=g) + 0.05
    caps = ["a dog barking", "rain falling", "a dog barking", "rain falling"]
    return X, caps


@pytest.fixture(scope="session")
def zs_classifier():
    torch.manual_seed(0)
    return ZeroShotClassifier(TinyAudio().eval(), WordVectors(), PROMPTS, logit_scale=10.0)


@pytest.fixture(scope="session")
def zs(zs_data, zs_classifier):
    m = LMACZS(zs_classifier, layers=["audio_encoder.block1", "audio_encoder.block2"], hidden=8)
    m.fit(zs_data, epochs=1, batch_size=4, progress=False)
    return m


@pytest.fixture(scope="session")
def files(tmp_path_factory, model, deep_model, stft, lmac, deep_lmac, l2i):
    """Saved artefacts and audio files: clf.pt, deep_clf.pt, lmac.pt, deep_lmac.pt, l2i.pt, clip.wav, short.wav."""
    d = tmp_path_factory.mktemp("bad_input_files")
    save_classifier(d / "clf.pt", model, stft, ["a", "b", "c"])
    save_classifier(d / "deep_clf.pt", deep_model, stft, ["a", "b", "c"])
    lmac.save(d / "lmac.pt")
    deep_lmac.save(d / "deep_lmac.pt")
    l2i.save(d / "l2i.pt")
    wave = SyntheticEvents(1, seed=5, sample_rate=8000, duration=0.7, n_classes=3)[0][0].numpy()
    sf.write(d / "clip.wav", wave, 8000)
    sf.write(d / "short.wav", wave[:300], 8000)
    sf.write(d / "stereo.wav", np.stack([wave, wave], 1), 8000)
    return d


@pytest.fixture(scope="session")
def wave():
    return SyntheticEvents(1, seed=3, sample_rate=8000, duration=0.7, n_classes=3)[0][0]
