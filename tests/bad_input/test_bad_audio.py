"""Bad input to the signal path: STFT, LogMel, the waveform rules, resample/mix, WAV I/O."""

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac import STFT, InputError, LogMel, mix_at_snr, read_wav, resample, write_wav
from captum_lmac.audio import fit_length
from captum_lmac.errors import DataNotFoundError


@pytest.mark.parametrize("kwargs, match", [
    (dict(sample_rate=0), "sample_rate must be >= 1"),
    (dict(sample_rate=-16000), "sample_rate"),
    (dict(sample_rate=16000.5), "sample_rate must be an integer"),
    (dict(sample_rate="16k"), "sample_rate must be an integer"),
    (dict(n_fft=0, win_length=0), "n_fft must be >= 2"),
    (dict(hop_length=0), "hop_length must be >= 1"),
    (dict(hop_length=True), "hop_length must be an integer"),
    (dict(win_length=2048), "win_length"),
    (dict(window="kaiser"), "unknown window"),
    (dict(window=["hann"]), "unknown window"),
    (dict(center="yes"), "center must be True or False"),
])
def test_stft_constructor(kwargs, match):
    with pytest.raises(InputError, match=match):
        STFT(**kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda w: [0.1, 0.2], "torch.Tensor or numpy"),
    (lambda w: "audio.wav", "torch.Tensor or numpy"),
    (lambda w: np.array(["a", "b"]), "not of audio samples"),
    (lambda w: w.to(torch.int64), "not a PCM sample format"),
    (lambda w: w.numpy().astype(np.uint16), "not a PCM sample format"),
    (lambda w: w > 0, "bool"),
    (lambda w: w.to(torch.complex64), "complex"),
    (lambda w: w * 32767.0, "looks like integer PCM"),           # int16 PCM cast to float, unscaled
    (lambda w: torch.stack([w, w], 0)[None], "mono"),        # (1, 2, samples)
    (lambda w: w.view(1, 1, 1, -1), "expected"),
    (lambda w: w[:0], "empty"),
    (lambda w: torch.zeros(2, 0), "empty"),
    (lambda w: torch.zeros_like(w), "silent"),
    (lambda w: torch.where(torch.arange(w.numel()) == 7, torch.tensor(float("nan")), w), "NaN"),
    (lambda w: torch.where(torch.arange(w.numel()) == 7, torch.tensor(float("inf")), w), "NaN or infinite"),
    (lambda w: w[:100], "too short for n_fft=256"),
])
def test_analyze_refuses_bad_waveforms(stft, wave, make, match):
    with pytest.raises(InputError, match=match):
        stft.analyze(make(wave))


def test_analyze_checks_the_sample_rate(stft, wave):
    with pytest.raises(InputError, match="44100 Hz but this STFT expects 8000 Hz"):
        stft.analyze(wave, sample_rate=44100)
    with pytest.raises(InputError, match="sample_rate must be >= 1"):
        stft.analyze(wave, sample_rate=0)


def test_short_clip_without_centring(wave):
    with pytest.raises(InputError, match="without centring"):
        STFT(n_fft=256, hop_length=64, win_length=128, center=False).analyze(wave[:200])


@pytest.mark.parametrize("dtype, scale, offset", [
    (np.int16, 32768.0, 0.0), (np.int32, 2147483648.0, 0.0), (np.uint8, 128.0, 128.0), (np.int8, 128.0, 0.0),
])
def test_integer_pcm_is_scaled(stft, wave, dtype, scale, offset):
    pcm = np.round(wave.numpy() * (scale - 1) * 0.5 + offset).astype(dtype)
    X, _ = stft.analyze(pcm)
    ref, _ = stft.analyze(((pcm.astype(np.float64) - offset) / scale).astype(np.float32))
    assert X.dtype == torch.float32 and torch.allclose(X, ref, atol=1e-5)
    assert float(X.max()) < 100  # not 32767x too large


def test_float64_and_stereo_as_soundfile_returns_it(stft, wave):
    X, _ = stft.analyze(wave)
    X64, _ = stft.analyze(wave.double())
    assert X64.dtype == torch.float32 and torch.allclose(X, X64, atol=1e-4)
    stereo = np.stack([wave.numpy(), wave.numpy()], axis=1)  # (samples, 2)
    Xs, _ = stft.analyze(stereo)
    assert Xs.shape == X.shape and torch.allclose(Xs, X, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda s, X, P: s.synthesize(X[:, 0], P), r"\(N, 1, F, T\)"),
    (lambda s, X, P: s.synthesize(X[:, :, :64], P[:, :, :64]), "frequency bins"),
    (lambda s, X, P: s.synthesize(X, P[..., :5]), "phase shape"),
    (lambda s, X, P: s.synthesize(X, "phase"), "phase shape"),
    (lambda s, X, P: s.synthesize(X.long(), P), "dtype"),
    (lambda s, X, P: s.synthesize(X * float("nan"), P), "NaN"),
    (lambda s, X, P: s.synthesize(X, P * float("inf")), "finite"),
    (lambda s, X, P: s.synthesize(X, P, length=0), "length must be >= 1"),
    (lambda s, X, P: s.listen(X, P, X.new_full(X.shape, 2.0)), r"mask values must lie in \[0, 1\]"),
    (lambda s, X, P: s.listen(X, P, -torch.ones_like(X)), r"\[0, 1\]"),
    (lambda s, X, P: s.listen(X, P, torch.ones(1, 1, 3, 3)), "mask shape"),
    (lambda s, X, P: s.listen(X, P, 0.5), "mask must be a tensor"),
    (lambda s, X, P: s.listen(X, P, torch.full_like(X, float("nan"))), "NaN"),
    (lambda s, X, P: s.listen(X, P, torch.ones_like(X), mask_domain="db"), "mask_domain"),
])
def test_synthesis_refuses_bad_inputs(stft, wave, call, match):
    X, P = stft.analyze(wave)
    with pytest.raises(InputError, match=match):
        call(stft, X, P)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_mels=0), "n_mels must be >= 1"),
    (dict(f_min=-5.0), "f_min must be >= 0"),
    (dict(f_max=9000.0), "f_max must be <= 4000"),
    (dict(f_min=3000.0, f_max=1000.0), "f_max .* must exceed f_min"),
    (dict(f_min=float("nan")), "finite"),
])
def test_logmel_constructor(stft, kwargs, match):
    with pytest.raises(InputError, match=match):
        LogMel(stft, **kwargs)


def test_logmel_inputs(stft, wave):
    lm = LogMel(stft, n_mels=16)
    X, _ = stft.analyze(wave)
    with pytest.raises(InputError, match="LogMel needs the captum_lmac.STFT"):
        LogMel("stft")
    with pytest.raises(InputError, match=r"\(N, 1, 129, T\)"):
        lm(X[:, :, :64])
    with pytest.raises(InputError, match="floating-point"):
        lm(X.long())
    assert torch.allclose(lm(X.double()), lm(X))  # float64 is cast, not a torchaudio dtype error


@pytest.mark.parametrize("call, match", [
    (lambda w: resample(w.numpy(), 8000, 16000), "waveform tensor"),
    (lambda w: resample(w, 0, 16000), "positive integers"),
    (lambda w: resample(w, 8000, 16000.5), "positive integers"),
    (lambda w: resample(w[:0], 8000, 16000), "empty"),
    (lambda w: fit_length(w, 0), "length must be >= 1"),
    (lambda w: fit_length(w[:0], 10), "empty"),
    (lambda w: mix_at_snr(w, w, float("nan")), "snr_db must be a finite number"),
    (lambda w: mix_at_snr(w, "noise", 3.0), "tensors"),
    (lambda w: mix_at_snr(w, torch.zeros_like(w), 3.0), "noise is silent"),
    (lambda w: mix_at_snr(w, w * float("inf"), 3.0), "NaN or infinite"),
])
def test_resample_and_mixing(wave, call, match):
    with pytest.raises(InputError, match=match):
        call(wave)


def test_read_wav_bad_files(tmp_path):
    (tmp_path / "a_dir.wav").mkdir()
    with pytest.raises(InputError, match="is a directory, not an audio file"):
        read_wav(tmp_path / "a_dir.wav")
    with pytest.raises(DataNotFoundError, match="nope.wav"):
        read_wav(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(InputError, match="cannot read audio file .*junk.wav"):
        read_wav(tmp_path / "junk.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(InputError, match="empty"):
        read_wav(tmp_path / "empty.wav")
    nan = np.full(100, 0.1, np.float32)
    nan[3] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    with pytest.raises(InputError, match="nan.wav contains NaN"):
        read_wav(tmp_path / "nan.wav")
    sf.write(tmp_path / "ok.wav", np.full(100, 0.1, np.float32), 8000)
    with pytest.raises(InputError, match="sample_rate must be >= 1"):
        read_wav(tmp_path / "ok.wav", sample_rate=-1)


def test_write_wav_bad_arguments(tmp_path, wave):
    with pytest.raises(InputError, match="sample_rate must be >= 1"):
        write_wav(tmp_path / "x.wav", wave, 0)
    with pytest.raises(InputError, match="one clip"):
        write_wav(tmp_path / "x.wav", torch.randn(2, 100), 8000)
    with pytest.raises(InputError, match="NaN"):
        write_wav(tmp_path / "x.wav", wave * float("nan"), 8000)
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(InputError, match=r"cannot write .*d\.wav: it is an existing directory"):
        write_wav(tmp_path / "d.wav", wave, 8000)
    assert not (tmp_path / "x.wav").exists()
