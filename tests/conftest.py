"""A tiny end-to-end benchmark run shared by the benchmark tests (built once per session)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac import STFT, SyntheticEvents, build_classifier, to_spectrograms, train_classifier
from captum_lmac.benchmark import run_benchmark

TINY_STFT = dict(n_fft=256, hop_length=64, win_length=128)


def make_tiny(n_train=36, n_val=9, n_test=12, epochs=3):
    """Tiny 3-class classifier trained a few epochs on SyntheticEvents, and its splits."""
    stft = STFT(**TINY_STFT)
    mk = lambda n, s: to_spectrograms(SyntheticEvents(n, seed=s, n_classes=3, duration=1.0), stft, progress=False)
    data = {"train": mk(n_train, 0), "val": mk(n_val, 1), "test": mk(n_test, 2)}
    torch.manual_seed(0)
    model = build_classifier(n_classes=3, stft=stft, n_mels=16, channels=(4, 8))
    tr, va = data["train"], data["val"]
    train_classifier(model, tr.X, tr.y, va.X, va.y, epochs=epochs, progress=False)
    return model.eval(), stft, data


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP oversubscription on the shared CPU.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny():
    return make_tiny()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory):
    """A stand-in speech folder (harmonic 'voiced' bursts), so the tests do not need LJSpeech."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    for k in range(2):
        f0 = 120 + 40 * k
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        x = x + 0.01 * rng.standard_normal(t.shape)
        sf.write(str(root / f"LJ{k:03d}.flac"), (0.3 * x / np.abs(x).max()).astype(np.float32), 16000)
    return root


TINY_METHODS = ["gradcam", "saliency", "lmac", "l2i"]
TINY_CONDITIONS = ["in-domain", "clip", "white", "speech"]


def tiny_config(speech_dir, **extra):
    cfg = {
        "suite": "tiny",
        "methods": list(TINY_METHODS),
        "conditions": list(TINY_CONDITIONS),
        "domains": ["stft", "mel"],
        "n_test": 6,
        "speech_dir": str(speech_dir),
        "lmac": {"fit": {"epochs": 2, "batch_size": 12}},
        "l2i": {"init": {"n_components": 6, "hidden": 8}, "fit": {"epochs": 1, "nmf_iter": 5},
                "thresholds": [0.2, 0.6]},
        "sanity": {"n_clips": 4, "methods": ["lmac", "gradcam"]},
        "report": {"n_examples": 1, "mel_examples": True},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session")
def make_config(speech_dir):
    """``make_config(**overrides)`` → a tiny benchmark configuration (see :func:`tiny_config`)."""
    return lambda **extra: tiny_config(speech_dir, **extra)


@pytest.fixture(scope="session")
def tiny_run(tiny, speech_dir, tmp_path_factory):
    """``(results, out_dir, cache_dir)`` of one tiny end-to-end run (3 methods incl. L-MAC, 6 clips)."""
    model, stft, data = tiny
    out = tmp_path_factory.mktemp("bench_out")
    cache = tmp_path_factory.mktemp("bench_cache")
    res = run_benchmark(model, stft, data, config=tiny_config(speech_dir), snr=3.0, out_dir=out, cache_dir=cache,
                        classifier_info={"test_acc": 0.9}, progress=False)
    return res, out, cache
