"""Tests of the signal path: STFT/ISTFT, log-mel, resampling, SNR mixing, WAV I/O, input checks."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac.audio import (
    STFT,
    LogMel,
    as_waveform_batch,
    fit_length,
    mix_at_snr,
    read_wav,
    resample,
    write_wav,
)
from captum_lmac.errors import DataNotFoundError, InputError


def _tone(n=16000, sr=16000, f=440.0, amp=0.5):
    t = torch.arange(n) / sr
    return amp * torch.sin(2 * math.pi * f * t)


def _snr_db(signal, noise):
    return float(10 * torch.log10(signal.pow(2).mean() / noise.pow(2).mean()))


@pytest.fixture(scope="module")
def stft():
    return STFT()


# ---------------------------------------------------------------- STFT


def test_stft_defaults_are_the_recipe(stft):
    assert stft.config() == dict(
        sample_rate=16000, n_fft=1024, hop_length=186, win_length=372, window="hamming", center=True
    )
    assert stft.n_freqs == 513


def test_analyze_shapes_and_frame_count(stft):
    w = torch.randn(3, 16000)
    X, P = stft.analyze(w)
    assert X.shape == P.shape == (3, 1, 513, stft.n_frames(16000))
    assert X.shape[-1] == 16000 // 186 + 1
    assert (X >= 0).all()
    assert P.abs().max() <= math.pi + 1e-6


def test_analyze_accepts_1d_3d_and_numpy(stft):
    w = torch.randn(8000)
    X1, _ = stft.analyze(w)
    X2, _ = stft.analyze(w.view(1, 1, -1))
    X3, _ = stft.analyze(w.numpy())
    assert X1.shape[0] == 1
    assert torch.allclose(X1, X2) and torch.allclose(X1, X3)


def test_round_trip_with_all_ones_mask_reconstructs(stft):
    torch.manual_seed(0)
    w = torch.randn(2, 16000) * 0.3
    X, P = stft.analyze(w)
    y = stft.listen(X, P, torch.ones_like(X), length=16000)
    assert y.shape == w.shape
    err = (y - w).abs().max()
    assert err < 1e-4, f"max reconstruction error {err}"
    rel = (y - w).norm() / w.norm()
    assert rel < 1e-5


def test_round_trip_non_default_stft():
    s = STFT(sample_rate=8000, n_fft=512, hop_length=128, win_length=512, window="hann")
    w = _tone(4000, 8000, 300.0)
    X, P = s.analyze(w)
    assert X.shape[2] == 257
    y = s.synthesize(X, P, length=4000)
    assert torch.allclose(y[0], w, atol=1e-4)


def test_zero_mask_gives_silence_and_half_mask_halves(stft):
    w = _tone()
    X, P = stft.analyze(w)
    assert stft.listen(X, P, torch.zeros_like(X), length=16000).abs().max() < 1e-6
    half = stft.listen(X, P, torch.full_like(X, 0.5), length=16000)
    assert torch.allclose(half[0], 0.5 * w, atol=1e-4)


def test_mask_broadcasts_over_batch(stft):
    w = torch.randn(2, 8000)
    X, P = stft.analyze(w)
    mask = torch.ones(1, 1, X.shape[2], X.shape[3])
    y = stft.listen(X, P, mask, length=8000)
    assert torch.allclose(y, w, atol=1e-4)


def test_log1p_mask_domain(stft):
    w = _tone(amp=0.8)
    X, P = stft.analyze(w)
    ones = torch.ones_like(X)
    # a mask of ones is the identity in both domains
    assert torch.allclose(stft.listen(X, P, ones, 16000, mask_domain="log1p")[0], w, atol=1e-3)
    # log1p domain: effective magnitude (1+|X|)^M - 1, at most M*|X| for 0 < M < 1 (Bernoulli)
    m = torch.full_like(X, 0.5)
    lin = stft.listen(X, P, m, 16000, mask_domain="linear")
    log = stft.listen(X, P, m, 16000, mask_domain="log1p")
    expected_mag = torch.expm1(0.5 * torch.log1p(X))
    expected = stft.synthesize(expected_mag, P, 16000)
    assert torch.allclose(log, expected, atol=1e-5)
    assert log.pow(2).sum() < lin.pow(2).sum()
    assert torch.all(expected_mag <= 0.5 * X + 1e-6)
    with pytest.raises(InputError, match="mask_domain"):
        stft.listen(X, P, m, 16000, mask_domain="db")


def test_listen_checks_mask(stft):
    X, P = stft.analyze(torch.randn(1, 8000))
    with pytest.raises(InputError, match="mask shape"):
        stft.listen(X, P, torch.ones(1, 1, 10, 10))
    bad = torch.ones_like(X)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        stft.listen(X, P, bad)
    with pytest.raises(InputError, match="tensor"):
        stft.listen(X, P, np.ones(X.shape))


def test_synthesize_checks_shapes(stft):
    X, P = stft.analyze(torch.randn(1, 8000))
    with pytest.raises(InputError, match=r"\(N, 1, F, T\)"):
        stft.synthesize(X[:, 0], P[:, 0])
    with pytest.raises(InputError, match="frequency bins"):
        stft.synthesize(X[:, :, :100], P[:, :, :100])
    with pytest.raises(InputError, match="phase shape"):
        stft.synthesize(X, P[..., :-1])


def test_sample_rate_mismatch_is_rejected(stft):
    with pytest.raises(InputError, match="44100 Hz"):
        stft.analyze(torch.randn(1, 16000), sample_rate=44100)
    stft.analyze(torch.randn(1, 16000), sample_rate=16000)  # matching rate is fine


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.tensor([0.1, float("nan"), 0.2] * 1000), "NaN"),
        (torch.tensor([0.1, float("inf"), 0.2] * 1000), "NaN or infinite"),
        (torch.zeros(0), "empty"),
        (torch.zeros(2, 0), "empty"),
        (torch.zeros(1, 8000), "silent"),
        (torch.randn(1, 2, 8000), "mono"),
        (torch.randn(1, 1, 1, 8000), "expected"),
        (torch.randn(100), "too short"),
    ],
)
def test_analyze_rejects_bad_audio(stft, bad, match):
    with pytest.raises(InputError, match=match):
        stft.analyze(bad)


def test_silent_allowed_on_request(stft):
    X, _ = stft.analyze(torch.zeros(1, 8000), allow_silent=True)
    assert X.abs().max() == 0


def test_as_waveform_batch_type_error():
    with pytest.raises(InputError, match="torch.Tensor or numpy"):
        as_waveform_batch([0.1, 0.2])
    w = as_waveform_batch(np.ones(10, dtype=np.float64))
    assert w.dtype == torch.float32 and w.shape == (1, 10)


def test_stft_constructor_checks():
    with pytest.raises(InputError, match="window"):
        STFT(window="kaiser")
    with pytest.raises(InputError, match="win_length"):
        STFT(n_fft=256, win_length=512)


# ---------------------------------------------------------------- LogMel


def test_logmel_shape_and_gradient(stft):
    lm = LogMel(stft, n_mels=80)
    X, _ = stft.analyze(torch.randn(2, 16000))
    X.requires_grad_(True)
    out = lm(X)
    assert out.shape == (2, 1, 80, X.shape[-1])
    assert (out >= 0).all()
    out.sum().backward()
    assert X.grad is not None and torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0
    assert lm.config() == dict(n_mels=80, f_min=0.0, f_max=8000.0)


def test_logmel_puts_a_tone_in_the_right_band(stft):
    lm = LogMel(stft, n_mels=64)
    low = lm(stft.analyze(_tone(f=200.0))[0]).mean(dim=(0, 1, 3)).argmax()
    high = lm(stft.analyze(_tone(f=5000.0))[0]).mean(dim=(0, 1, 3)).argmax()
    assert int(high) > int(low) + 20


def test_logmel_rejects_wrong_bins(stft):
    with pytest.raises(InputError, match="LogMel expects"):
        LogMel(stft)(torch.rand(1, 1, 100, 10))


# ---------------------------------------------------------------- resample / fit_length


def test_resample_length_and_content():
    w = _tone(8000, 8000, 300.0)
    up = resample(w, 8000, 16000)
    assert up.shape == (16000,)
    ref = _tone(16000, 16000, 300.0)
    # compare away from the edges
    assert torch.allclose(up[1000:-1000], ref[1000:-1000], atol=2e-2)
    assert resample(w, 8000, 8000) is w
    with pytest.raises(InputError, match="positive"):
        resample(w, 0, 16000)


def test_fit_length_crops_and_tiles():
    w = torch.arange(10.0)
    assert torch.equal(fit_length(w, 4), torch.arange(4.0))
    assert torch.equal(fit_length(w, 4, offset=3), torch.arange(3.0, 7.0))
    tiled = fit_length(w, 25)
    assert tiled.shape == (25,) and torch.equal(tiled[10:20], w)
    assert fit_length(torch.ones(2, 5), 7).shape == (2, 7)
    with pytest.raises(InputError, match="empty"):
        fit_length(torch.zeros(0), 5)


# ---------------------------------------------------------------- mix_at_snr


@pytest.mark.parametrize("snr", [-5.0, 0.0, 3.0, 12.0])
def test_mix_at_snr_hits_the_requested_snr(snr):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(16000, generator=g) * 0.1
    n = torch.randn(16000, generator=g) * 3.0
    mix, scaled = mix_at_snr(s, n, snr)
    assert abs(_snr_db(s, scaled) - snr) < 1e-3
    assert torch.allclose(mix, s + scaled)


def test_mix_at_snr_batched_and_tiles_noise():
    s = torch.randn(3, 1000)
    s[1] *= 10
    mix, scaled = mix_at_snr(s, torch.randn(3, 300), 6.0)
    assert scaled.shape == s.shape
    for k in range(3):
        assert abs(_snr_db(s[k], scaled[k]) - 6.0) < 1e-3


def test_mix_at_snr_rejects_silence():
    with pytest.raises(InputError, match="signal is silent"):
        mix_at_snr(torch.zeros(100), torch.randn(100), 0.0)
    with pytest.raises(InputError, match="noise is silent"):
        mix_at_snr(torch.randn(100), torch.zeros(100), 0.0)


# ---------------------------------------------------------------- WAV I/O


def test_wav_round_trip(tmp_path):
    w = _tone(8000, 16000, 1000.0, amp=0.7)
    path = write_wav(tmp_path / "sub" / "x.wav", w, 16000)
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    r, sr = read_wav(path)
    assert sr == 16000 and r.dtype == torch.float32 and r.shape == w.shape
    assert (r - w).abs().max() < 1e-4  # 16-bit quantisation
    r8, sr8 = read_wav(path, sample_rate=8000)
    assert sr8 == 8000 and r8.shape == (4000,)


def test_write_wav_scales_loud_audio_and_rejects_batches(tmp_path):
    w = _tone(4000, 16000, 500.0, amp=3.0)
    r, _ = read_wav(write_wav(tmp_path / "loud.wav", w, 16000))
    assert 0.98 < r.abs().max() <= 0.99 + 1e-4
    with pytest.raises(InputError, match="one clip"):
        write_wav(tmp_path / "b.wav", torch.randn(2, 100), 16000)


def test_read_wav_mixes_down_and_reports_missing(tmp_path):
    stereo = np.stack([np.full(100, 0.5), np.full(100, -0.1)], axis=1).astype(np.float32)
    sf.write(str(tmp_path / "st.wav"), stereo, 8000, subtype="FLOAT")
    w, sr = read_wav(tmp_path / "st.wav")
    assert sr == 8000 and w.shape == (100,)
    assert torch.allclose(w, torch.full((100,), 0.2))
    with pytest.raises(DataNotFoundError, match="nope.wav"):
        read_wav(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(InputError, match="cannot read"):
        read_wav(tmp_path / "junk.wav")
