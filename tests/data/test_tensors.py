"""Tests of ``to_spectrograms``: the in-memory spectrogram sets every suite and fit reads."""

import pytest
import torch
from torch.utils.data import Dataset

from captum_lmac.audio import STFT
from captum_lmac.data import to_spectrograms
from captum_lmac.errors import InputError

STFT_SMALL = STFT(sample_rate=8000, n_fft=128, hop_length=64, win_length=128)


class Clips(Dataset):
    """``n`` seeded noise clips; ``meta["clean"]`` is half of each clip (a waveform of the same
    length), ``meta["gain"]`` a per-item vector, ``meta["partial"]`` only on even items."""

    def __init__(self, n: int, samples: int = 800, odd_length_at: int = -1) -> None:
        self.n, self.samples, self.odd = n, samples, odd_length_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        w = torch.randn(self.samples + (7 if i == self.odd else 0), generator=g)
        meta = {"clean": 0.5 * w, "gain": torch.tensor([float(i), 1.0]), "name": f"clip{i}"}
        if i % 2 == 0:
            meta["partial"] = w
        return w, i % 3, meta


def test_matches_per_clip_analysis_across_batch_boundaries():
    ds = Clips(11)
    s = to_spectrograms(ds, STFT_SMALL, batch_size=4, progress=False)
    assert s.waveform.shape == (11, 800) and s.X.shape[0] == 11 and s.phase.shape == s.X.shape
    for i in (0, 3, 4, 10):  # first, batch edges, last
        w, y, _ = ds[i]
        X, P = STFT_SMALL.analyze(w[None], allow_silent=True)
        assert torch.allclose(s.X[i], X[0], atol=1e-5) and torch.allclose(s.phase[i], P[0], atol=1e-5)
        assert torch.equal(s.waveform[i], w) and int(s.y[i]) == y
    assert s.y.dtype == torch.long


def test_batch_size_does_not_change_the_result():
    a = to_spectrograms(Clips(9), STFT_SMALL, batch_size=2, progress=False)
    b = to_spectrograms(Clips(9), STFT_SMALL, batch_size=32, progress=False)
    assert torch.allclose(a.X, b.X, atol=1e-5) and torch.equal(a.waveform, b.waveform)
    assert torch.allclose(a.extra["clean_X"], b.extra["clean_X"], atol=1e-5)


def test_extras_kept_dropped_and_what_is_kept_of_them():
    s = to_spectrograms(Clips(6), STFT_SMALL, batch_size=4, keep=("clean", "gain", "partial"), progress=False)
    assert set(s.extra) == {"clean", "clean_X", "gain"}  # "partial" is missing on odd items: dropped
    assert torch.allclose(s.extra["clean"], 0.5 * s.waveform)
    assert torch.allclose(s.extra["clean_X"], 0.5 * s.X, atol=1e-5)  # the STFT is linear
    assert s.extra["gain"].shape == (6, 2) and float(s.extra["gain"][5, 0]) == 5.0
    keep = ("clean", "gain")
    spec = to_spectrograms(Clips(6), STFT_SMALL, batch_size=4, keep=keep, extras="spectrum", progress=False)
    assert set(spec.extra) == {"clean_X", "gain"} and torch.allclose(spec.extra["clean_X"], s.extra["clean_X"])
    wave = to_spectrograms(Clips(6), STFT_SMALL, batch_size=4, keep=keep, extras="waveform", progress=False)
    assert set(wave.extra) == {"clean", "gain"} and torch.equal(wave.extra["clean"], s.extra["clean"])


def test_bad_input_is_named():
    with pytest.raises(InputError, match="empty"):
        to_spectrograms(Clips(0), STFT_SMALL, progress=False)
    with pytest.raises(InputError, match="extras must be"):
        to_spectrograms(Clips(2), STFT_SMALL, extras="all", progress=False)
    with pytest.raises(InputError, match="item 5: 807 samples"):
        to_spectrograms(Clips(8, odd_length_at=5), STFT_SMALL, batch_size=4, progress=False)


def test_phase_can_be_left_out_and_computed_again_bit_for_bit():
    from captum_lmac.data import with_phase

    full = to_spectrograms(Clips(9), STFT_SMALL, batch_size=4, progress=False)
    lean = to_spectrograms(Clips(9), STFT_SMALL, batch_size=4, progress=False, phase=False)
    assert lean.phase is None and torch.equal(lean.X, full.X) and torch.equal(lean.waveform, full.waveform)
    assert lean.subset([1, 5]).phase is None and torch.equal(lean.subset([1, 5]).X, full.X[[1, 5]])
    again = with_phase(lean, STFT_SMALL, batch_size=4)
    assert torch.equal(again.phase, full.phase) and again.X is lean.X  # the other tensors are shared
    assert with_phase(full, STFT_SMALL) is full
