"""Tests of the folder readers (ESC-50/ESC-10, UrbanSound8K, FSDD, speech and noise folders)."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac.data import ESC50, FSDD, NoiseFolder, SpeechFolder, UrbanSound8K, default_data_root
from captum_lmac.errors import DataNotFoundError, InputError

ROOT = default_data_root()


def _need(sub: str) -> Path:
    path = ROOT / sub
    if not path.is_dir():
        pytest.skip(f"shared data set {sub!r} not found at {path} (set CAPTUM_LMAC_DATA to the data root)")
    return path


def _write(path: Path, n: int, sr: int, freq: float = 440.0, amp: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(n) / sr
    sf.write(str(path), (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")


# ---------------------------------------------------------------- data root


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("CAPTUM_LMAC_DATA", raising=False)
    import captum_lmac

    repo_root = Path(captum_lmac.__file__).resolve().parent.parent
    assert default_data_root() == (repo_root.parent / "shared" / "data").resolve()
    monkeypatch.setenv("CAPTUM_LMAC_DATA", str(tmp_path))
    assert default_data_root() == tmp_path


# ---------------------------------------------------------------- ESC-50 / ESC-10 (shared copy)


@pytest.fixture(scope="module")
def esc10_root():
    return _need("esc10")


def test_esc10_folds_labels_and_audio(esc10_root):
    train = ESC50(esc10_root, folds=[1, 2, 3])
    test = ESC50(esc10_root, folds=5)
    assert len(train) == 240 and len(test) == 80
    assert train.folds == [1, 2, 3] and test.folds == [5]
    assert {m["fold"] for _, _, m in test._items} == {5}
    expected = ["dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing",
                "clock_tick", "helicopter", "chainsaw"]
    assert train.classes == test.classes == expected
    assert train.targets == [0, 1, 10, 11, 12, 20, 21, 38, 40, 41]
    assert np.bincount(test.labels, minlength=10).tolist() == [8] * 10
    wave, label, meta = test[3]
    assert wave.shape == (80000,) and wave.dtype == torch.float32
    assert meta["fold"] == 5 and Path(meta["path"]).is_file()
    assert test.classes[label] == meta["category"]
    assert train.targets[label] == meta["target"] == int(Path(meta["path"]).stem.split("-")[-1])
    # all folds by default; esc10_only keeps all of this (all-ESC-10) copy
    assert len(ESC50(esc10_root)) == 400
    assert len(ESC50(esc10_root, folds=4, esc10_only=True)) == 80


def test_esc10_resample_and_duration(esc10_root):
    ds = ESC50(esc10_root, folds=1, sample_rate=8000, duration=2.0)
    wave, _, _ = ds[0]
    assert wave.shape == (16000,)
    full, _, _ = ESC50(esc10_root, folds=1, sample_rate=8000)[0]
    assert torch.equal(full[:16000], wave)  # cropped from the start


def test_esc50_unknown_fold(esc10_root):
    with pytest.raises(InputError, match="unknown fold 6"):
        ESC50(esc10_root, folds=[1, 6])
    with pytest.raises(InputError, match="unknown fold"):
        ESC50(esc10_root, folds=0)


# ---------------------------------------------------------------- ESC-50 layout built here


def _tiny_esc50(root: Path, rows):
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for fold, target, cat, esc10 in rows:
            name = f"{fold}-{1000 + target}-A-{target}.wav"
            w.writerow([name, fold, target, cat, esc10, 1000 + target, "A"])
            _write(root / "audio" / name, 22050 * 2, 44100, 200.0 + 20 * target)
    return root


def test_esc50_remaps_labels_and_esc10_only(tmp_path):
    root = _tiny_esc50(tmp_path / "esc", [(1, 41, "chainsaw", "True"), (1, 5, "cat", "False"),
                                          (2, 0, "dog", "True"), (2, 41, "chainsaw", "True")])
    ds = ESC50(root, duration=1.0)
    assert ds.classes == ["dog", "cat", "chainsaw"]  # by ESC-50 target id
    assert ds.labels == [2, 1, 0, 2]
    wave, label, meta = ds[0]
    assert wave.shape == (16000,) and label == 2 and meta["category"] == "chainsaw"
    # zero-padded at the end (originals are 1.0 s at 44.1 kHz -> 16000 samples; ask 1.5 s)
    padded, _, _ = ESC50(root, duration=1.5)[0]
    assert padded.shape == (24000,) and padded[16100:].abs().max() == 0 and padded[:16000].abs().max() > 0.1
    e10 = ESC50(root, esc10_only=True, duration=1.0)
    assert e10.classes == ["dog", "chainsaw"] and len(e10) == 3
    with pytest.raises(InputError, match="fold 3 has no clips"):
        ESC50(root, folds=3)


def test_esc50_missing_pieces(tmp_path):
    with pytest.raises(DataNotFoundError, match="ESC-50 folder not found.*nowhere"):
        ESC50(tmp_path / "nowhere")
    (tmp_path / "a").mkdir()
    with pytest.raises(DataNotFoundError, match=r"(?s)audio folder not found.*expected layout"):
        ESC50(tmp_path / "a")
    (tmp_path / "a" / "audio").mkdir()
    with pytest.raises(DataNotFoundError, match=r"esc50\.csv"):
        ESC50(tmp_path / "a")
    root = _tiny_esc50(tmp_path / "b", [(1, 0, "dog", "True"), (1, 1, "rooster", "True")])
    os.unlink(root / "audio" / "1-1001-A-1.wav")
    with pytest.raises(DataNotFoundError, match="1-1001-A-1.wav"):
        ESC50(root)
    bad = tmp_path / "c"
    (bad / "meta").mkdir(parents=True)
    (bad / "audio").mkdir()
    (bad / "meta" / "esc50.csv").write_text("filename,fold\n")
    with pytest.raises(DataNotFoundError, match="lacks the column"):
        ESC50(bad)


# ---------------------------------------------------------------- UrbanSound8K layout built here


@pytest.fixture()
def us8k_root(tmp_path):
    root = tmp_path / "UrbanSound8K"
    (root / "metadata").mkdir(parents=True)
    specs = [  # name, fold, classID, class, seconds, sample rate
        ("100-3-0-0.wav", 1, 3, "dog_bark", 0.5, 44100),
        ("101-1-0-0.wav", 1, 1, "car_horn", 4.0, 48000),
        ("102-3-0-1.wav", 2, 3, "dog_bark", 1.0, 22050),
        ("103-8-0-0.wav", 10, 8, "siren", 2.0, 16000),
    ]
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
        for name, fold, cid, cls, sec, sr in specs:
            w.writerow([name, name.split("-")[0], 0.0, sec, 1, fold, cid, cls])
            _write(root / "audio" / f"fold{fold}" / name, int(sec * sr), sr, 300.0 + cid * 50)
    return root


def test_us8k_folds_labels_and_lengths(us8k_root):
    ds = UrbanSound8K(us8k_root)
    assert ds.classes == ["car_horn", "dog_bark", "siren"]
    assert ds.class_ids == [1, 3, 8]
    assert ds.labels == [1, 0, 1, 2]
    assert len(ds) == 4 and ds.folds == [1, 2, 10]
    for i in range(len(ds)):
        wave, label, meta = ds[i]
        assert wave.shape == (64000,) and wave.dtype == torch.float32
        assert ds.classes[label] == meta["category"]
        assert Path(meta["path"]).parent.name == f"fold{meta['fold']}"
    short, _, meta = ds[0]  # 0.5 s clip zero-padded at the end
    assert meta["salience"] == 1 and meta["end"] == 0.5
    assert short[:8000].abs().max() > 0.1 and short[8100:].abs().max() == 0
    f1 = UrbanSound8K(us8k_root, folds=[1], sample_rate=8000, duration=1.0)
    assert len(f1) == 2 and f1[1][0].shape == (8000,)
    assert f1.classes == ds.classes  # mapping over the whole csv, whatever the folds


def test_us8k_errors(us8k_root, tmp_path):
    with pytest.raises(InputError, match="unknown fold 11"):
        UrbanSound8K(us8k_root, folds=[11])
    with pytest.raises(InputError, match="fold 5 has no clips"):
        UrbanSound8K(us8k_root, folds=5)
    with pytest.raises(DataNotFoundError, match="UrbanSound8K folder not found"):
        UrbanSound8K(tmp_path / "missing")
    (us8k_root / "metadata" / "UrbanSound8K.csv").unlink()
    with pytest.raises(DataNotFoundError, match=r"UrbanSound8K\.csv.*\n.*expected layout"):
        UrbanSound8K(us8k_root)


# ---------------------------------------------------------------- FSDD


@pytest.fixture(scope="module")
def fsdd_root():
    return _need("fsdd")


def test_fsdd_split_sizes_and_labels(fsdd_root):
    train, test = FSDD(fsdd_root, "train"), FSDD(fsdd_root, "test")
    assert len(train) == 2700 and len(test) == 300
    assert len(FSDD(fsdd_root, "all")) == 3000
    assert {m["take"] for _, _, m in test._items} == set(range(5))
    assert min(m["take"] for _, _, m in train._items) == 5
    assert np.bincount(test.labels).tolist() == [30] * 10
    assert len(test.speakers) == 6
    assert train.classes[7] == "seven"
    wave, label, meta = test[0]
    assert wave.shape == (16000,) and wave.dtype == torch.float32
    assert Path(meta["path"]).name.startswith(f"{label}_") and meta["digit"] == label
    wave8, _, _ = FSDD(fsdd_root, "test", sample_rate=8000, duration=0.5)[0]
    assert wave8.shape == (4000,)


def test_fsdd_centres_short_clips_and_filters(tmp_path):
    rec = tmp_path / "fsdd" / "recordings"
    for digit in (0, 1):
        for take in (0, 5, 6):
            _write(rec / f"{digit}_alice_{take}.wav", 4000, 8000)  # 0.5 s
    _write(rec / "2_bob_7.wav", 16000, 8000)  # 2 s: centre-cropped
    (rec / "README.txt").write_text("not audio")
    train = FSDD(tmp_path / "fsdd", "train")
    assert len(train) == 5 and FSDD(tmp_path / "fsdd", "test").labels == [0, 1]
    wave, _, _ = train[0]
    assert wave.shape == (16000,)
    # 0.5 s centred in 1 s: silent first and last quarter, sound in the middle
    assert wave[:3900].abs().max() == 0 and wave[-3900:].abs().max() == 0 and wave[6000:10000].abs().max() > 0.1
    assert FSDD(rec, "train", speakers=["bob"]).labels == [2]  # the recordings folder itself works
    assert len(FSDD(tmp_path / "fsdd", "train", takes=[6])) == 2
    with pytest.raises(InputError, match="unknown speaker"):
        FSDD(tmp_path / "fsdd", speakers=["carol"])
    with pytest.raises(InputError, match="split"):
        FSDD(tmp_path / "fsdd", split="val")
    empty = tmp_path / "empty" / "recordings"
    empty.mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no FSDD recordings"):
        FSDD(tmp_path / "empty")
    with pytest.raises(DataNotFoundError, match="FSDD folder not found"):
        FSDD(tmp_path / "nope")


# ---------------------------------------------------------------- speech and noise folders


def test_speech_folder_random_segment():
    root = _need("ljspeech32")
    speech = SpeechFolder(root)
    assert len(speech) == 32 and speech.labels[0] == -1
    wave, label, meta = speech[0]
    assert label == -1 and wave.dim() == 1 and Path(meta["path"]).suffix == ".flac"
    info = sf.info(meta["path"])
    assert abs(wave.shape[0] - info.frames * 16000 / info.samplerate) <= 2  # resampled from 22.05 kHz
    a = speech.random_segment(40000, np.random.default_rng(0))
    b = speech.random_segment(40000, np.random.default_rng(0))
    c = speech.random_segment(40000, np.random.default_rng(1))
    assert a.shape == (40000,) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() > 0
    # longer than any clip: filled by concatenating clips
    assert speech.random_segment(16000 * 15, 3).shape == (240000,)


def test_noise_folder_random_segment(tmp_path):
    root = _need("ambient")
    noise = NoiseFolder(root, duration=1.0)
    assert len(noise) == 42
    assert noise[0][0].shape == (16000,)
    seg = noise.random_segment(8000, rng=5)
    assert seg.shape == (8000,) and seg.abs().max() > 0
    assert torch.equal(seg, noise.random_segment(8000, rng=5))
    with pytest.raises(InputError, match="positive"):
        noise.random_segment(0)


def test_clip_folders_built_here(tmp_path):
    _write(tmp_path / "n" / "a.flac", 1000, 8000, 100.0)
    _write(tmp_path / "n" / "b.wav", 3000, 8000, 200.0)
    noise = NoiseFolder(tmp_path / "n", sample_rate=16000)
    assert len(noise) == 2
    assert noise[1][0].shape == (6000,)
    seg = noise.random_segment(20000, rng=0)  # concatenation of several short files
    assert seg.shape == (20000,) and seg.abs().max() > 0.1
    with pytest.raises(DataNotFoundError, match="no speech files"):
        (tmp_path / "s").mkdir()
        SpeechFolder(tmp_path / "s")
    with pytest.raises(DataNotFoundError, match="noise folder not found"):
        NoiseFolder(tmp_path / "zzz")
