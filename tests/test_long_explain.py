"""captum-lmac explain on long recordings: windows read on demand, cross-faded seamless output, throughput."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from captum_lmac import LMAC, STFT, SyntheticEvents, to_spectrograms
from captum_lmac.cli import main
from captum_lmac.errors import InputError
from captum_lmac.longaudio import CrossfadeWriter, WindowReader, crossfade_weights
from captum_lmac.training import build_classifier, save_classifier, train_classifier

SR = 8000


def write_long(path, seconds, rate=16000, seed=0):
    """A long recording written block by block: synthetic events over a little noise."""
    clips = SyntheticEvents(8, seed=seed, sample_rate=rate, duration=1.5, n_classes=3)
    rng = np.random.default_rng(seed)
    with sf.SoundFile(str(path), mode="w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        done, k = 0, 0
        while done < seconds * rate:
            block = 0.5 * clips[k % len(clips)][0].numpy() + 0.01 * rng.standard_normal(int(1.5 * rate))
            block = block[: seconds * rate - done]
            f.write(block.astype(np.float32))
            done += block.shape[0]
            k += 1
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("long")
    stft = STFT(sample_rate=SR, n_fft=256, hop_length=64, win_length=128)
    ds = SyntheticEvents(18, seed=0, sample_rate=SR, duration=1.5, n_classes=3)
    data = to_spectrograms(ds, stft, progress=False)
    torch.manual_seed(0)
    model = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    train_classifier(model, data.X, data.y, epochs=1, batch_size=9, progress=False)
    save_classifier(d / "clf.pt", model, stft, ds.classes)
    lmac = LMAC(model, layers=["net.block1", "net.block2"])
    lmac.fit(data.X, epochs=1, batch_size=9, progress=False)
    lmac.save(d / "lmac.pt")
    return d


def test_three_minute_file_is_explained_in_windows(saved, capsys, monkeypatch):
    d = saved
    wav = write_long(d / "long.wav", 180)  # 3 minutes at 16 kHz, resampled to the classifier's 8 kHz
    reads = []
    real_read = sf.read
    monkeypatch.setattr(sf, "read", lambda *a, **k: reads.append(k.get("stop", 0) - k.get("start", 0)) or real_read(*a, **k))
    rc = main(["explain", str(wav), "--classifier", str(d / "clf.pt"), "--interpreter", str(d / "lmac.pt"),
               "--out", str(d / "long_exp.wav"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    audio, sr = sf.read(d / "long_exp.wav")
    assert sr == SR and len(audio) == 180 * SR and np.isfinite(audio).all() and np.abs(audio).max() > 0
    # default windows: 5 s (the interpreter records no clip length), overlap 1 s; never more than one
    # window (+ the resampling margin) of the 16 kHz file is read at once
    assert max(reads) < 5 * 16000 + 200 and len(reads) > 40
    rows = (d / "long_exp.csv").read_text().strip().splitlines()
    n_windows = 1 + -(-(180 * SR - 5 * SR) // (4 * SR))
    assert len(rows) == 1 + n_windows and rows[0].startswith("start_s,end_s,class")
    assert "x real time" in out and f"mean over {n_windows} windows" in out
    assert (d / "long_exp.png").is_file()


def test_windowed_output_is_seamless(saved, capsys, monkeypatch):
    """With an all-ones mask the windowed explanation is the (resampled) recording itself, across every seam."""
    d = saved
    wav = write_long(d / "mid.wav", 20, rate=16000, seed=1)
    monkeypatch.setattr(LMAC, "attribute", lambda self, X, *a, **k: torch.ones_like(X))
    rc = main(["explain", str(wav), "--classifier", str(d / "clf.pt"), "--interpreter", str(d / "lmac.pt"),
               "--out", str(d / "mid_exp.wav"), "--chunk-seconds", "1.3", "--overlap-seconds", "0.4", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    got, _ = sf.read(d / "mid_exp.wav", dtype="float32")
    x, _ = sf.read(wav, dtype="float32")
    ref = torchaudio.functional.resample(torch.from_numpy(x), 16000, SR).numpy()
    assert got.shape == ref.shape
    err = np.abs(got - ref)
    assert err.max() < 2e-4  # PCM-16 quantisation and ISTFT round-off only: no seam, no gap, no double gain
    # the windows really overlapped and were cross-faded (13 windows of 1.3 s, hop 0.9 s, in 20 s)
    assert len((d / "mid_exp.csv").read_text().strip().splitlines()) == 1 + 22


def test_crossfade_writer_and_reader_join_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(22050 * 3 + 17)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 22050, subtype="FLOAT")
    r = WindowReader(tmp_path / "in.wav", 16000, window=8000, hop=6000)
    full = torchaudio.functional.resample(torch.from_numpy(x), 22050, 16000)
    assert r.n_samples == full.shape[0]
    with CrossfadeWriter(tmp_path / "out.wav", 16000, r.n_samples, 8000, 2000, subtype="FLOAT") as w:
        for start, win in r.windows():
            assert torch.allclose(win[: max(0, full.shape[0] - start)], full[start : start + 8000], atol=1e-5)
            w.add(win)
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert np.abs(y - full.numpy()).max() < 1e-5
    a, b = crossfade_weights(8000, 2000, True, False), crossfade_weights(8000, 2000, False, True)
    assert torch.allclose(a[6000:] + b[:2000], torch.ones(2000))


def test_incomplete_output_leaves_no_file(tmp_path):
    with pytest.raises(InputError, match="windows"):
        with CrossfadeWriter(tmp_path / "o.wav", 8000, 20000, 8000, 2000) as w:
            w.add(torch.zeros(8000))
    assert list(tmp_path.iterdir()) == []


def test_bad_chunk_settings_are_one_line_errors(saved, capsys):
    d = saved
    wav = write_long(d / "short.wav", 3)
    for extra, msg in [(["--chunk-seconds", "0.01"], "too short"), (["--chunk-seconds", "1", "--overlap-seconds", "1"],
                                                                     "--overlap-seconds")]:
        rc = main(["explain", str(wav), "--classifier", str(d / "clf.pt"), "--interpreter", str(d / "lmac.pt"),
                   "--out", str(d / "x.wav"), "--quiet"] + extra)
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1
