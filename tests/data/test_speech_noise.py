"""Tests of the speech-in-noise data set (a data root built here, and the shared one when present)."""

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac.data import SpeechInNoise, default_data_root
from captum_lmac.errors import DataNotFoundError, InputError
from captum_lmac.metrics import si_sdr


def _tone(path: Path, seconds: float, sr: int, freq: float, noise: bool = False, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sr)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) if noise else np.sin(2 * np.pi * freq * np.arange(n) / sr)
    sf.write(str(path), (0.3 * x / np.abs(x).max()).astype(np.float32), sr)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """fsdd (2 speakers, takes 0-11), ljspeech32 (7 files), ambient (7 files), esc10 (one clip per fold)."""
    root = tmp_path_factory.mktemp("sin")
    for spk in ("ann", "bob"):
        for take in range(12):
            _tone(root / "fsdd" / "recordings" / f"{take % 10}_{spk}_{take}.wav", 0.3, 8000, 300 + 20 * take)
    for k in range(7):
        _tone(root / "ljspeech32" / f"LJ{k:03d}.flac", 2.5, 22050, 200 + 30 * k)
        _tone(root / "ambient" / f"weather_rain_{k}.flac", 3.0, 16000, 0, noise=True, seed=k)
    (root / "esc10" / "meta").mkdir(parents=True)
    with open(root / "esc10" / "meta" / "esc50.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for fold in range(1, 6):
            name = f"{fold}-100-A-0.wav"
            w.writerow([name, fold, 0, "dog", "True", 100, "A"])
            _tone(root / "esc10" / "audio" / name, 5.0, 44100, 0, noise=True, seed=10 + fold)
    return root


def test_items_are_mixtures_with_the_speech_known(root):
    ds = SpeechInNoise(root, split="train", n_items=8, duration=1.5)
    assert ds.classes == ["noise", "speech"] and ds.labels == [0, 1] * 4 and len(ds) == 8
    for i in range(8):
        wave, label, meta = ds[i]
        assert wave.shape == (24000,) and wave.dtype == torch.float32 and label == i % 2
        assert torch.allclose(meta["clean"] + meta["background"], wave, atol=1e-6)
        assert abs(float(wave.pow(2).mean().sqrt()) - 0.05) < 1e-4  # every clip at the same RMS
        if label == 0:
            assert meta["clean"].abs().max() == 0 and "speech_source" not in meta
        else:
            on, off = (int(round(meta[k] * 16000)) for k in ("onset", "offset"))
            assert meta["clean"][:on].abs().max() == 0 and meta["clean"][off:].abs().max() == 0
            snr = 10 * torch.log10(meta["clean"].pow(2).mean() / meta["background"].pow(2).mean())
            assert abs(float(snr)) < 1e-3  # 0 dB over the clip
            # the mixture's own SI-SDR against the speech is the floor the explanations must beat
            assert abs(float(si_sdr(wave, meta["clean"]))) < 1.0


def test_item_depends_only_on_split_seed_and_index(root):
    a = SpeechInNoise(root, split="test", n_items=6, seed=3)
    b = SpeechInNoise(root, split="test", n_items=6, seed=3)
    assert torch.equal(a[5][0], b[5][0]) and torch.equal(a[3][2]["clean"], b[3][2]["clean"])
    assert not torch.equal(a[5][0], SpeechInNoise(root, split="test", n_items=6, seed=4)[5][0])
    assert not torch.equal(a[5][0], SpeechInNoise(root, split="val", n_items=6, seed=3)[5][0])


def test_splits_share_no_recording(root):
    files = {}
    for split in ("train", "val", "test"):
        ds = SpeechInNoise(root, split=split, n_items=4)
        files[split] = ({p for p, _ in ds._digits}, set(ds._lj), set(ds._ambient.files), set(ds._esc.paths))
        assert all(files[split]), f"split {split} has an empty source"
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        for fa, fb in zip(files[a], files[b]):
            assert not fa & fb


def test_snr_range_and_bad_arguments(root):
    ds = SpeechInNoise(root, split="train", n_items=4, snr_db=(-5.0, 5.0))
    _, _, meta = ds[1]
    snr = float(10 * torch.log10(meta["clean"].pow(2).mean() / meta["background"].pow(2).mean()))
    assert -5.0 - 1e-3 <= snr <= 5.0 + 1e-3
    with pytest.raises(InputError, match="split must be one of"):
        SpeechInNoise(root, split="dev")
    with pytest.raises(InputError, match="snr_db range"):
        SpeechInNoise(root, snr_db=(5.0, -5.0))
    with pytest.raises(InputError, match="duration"):
        SpeechInNoise(root, duration=0.5)
    with pytest.raises(InputError, match="unknown key"):
        SpeechInNoise(root, folders={"speech": "x"})
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(DataNotFoundError):
        SpeechInNoise(root, folders={"ambient": "no-such-folder"})


def test_shared_data_speech_in_noise():
    root = default_data_root()
    if not all((root / d).is_dir() for d in ("fsdd", "ljspeech32", "ambient", "esc10")):
        pytest.skip(f"shared data (fsdd, ljspeech32, ambient, esc10) not found at {root} (set CAPTUM_LMAC_DATA)")
    ds = SpeechInNoise(root, split="test", n_items=6)
    srcs = [ds[i][2] for i in range(6)]
    assert all(m["clean"].abs().max() > 0 for m in srcs[1::2])
    assert len(ds._speakers) == 6 and ds._lj and ds._ambient.files and len(ds._esc) == 80
