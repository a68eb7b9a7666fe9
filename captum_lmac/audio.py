"""The audio signal path: STFT analysis/synthesis, log-mel features, resampling, SNR mixing, WAV I/O.

Every attribution method in captum_lmac explains a model that takes the *linear magnitude*
spectrogram ``X`` (N, 1, F, T). A mask ``M`` of the same shape becomes a listenable explanation by
``ISTFT((M ⊙ X) · e^{jP})`` with the input's own phase ``P`` (L-MAC paper, section 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import Tensor, nn

from ._io import atomic_write
from ._validate import MAX_FLOAT_PEAK, check_int, check_number, check_positive_int, check_waveform
from .errors import DataNotFoundError, InputError

ArrayLike = Union[Tensor, np.ndarray]

_WINDOWS = {
    "hamming": torch.hamming_window,
    "hann": torch.hann_window,
    "blackman": torch.blackman_window,
}


def as_waveform_batch(waveform: ArrayLike, name: str = "waveform", allow_silent: bool = False,
                      max_peak: Optional[float] = MAX_FLOAT_PEAK) -> Tensor:
    """Return ``waveform`` as a float32 (N, samples) tensor, checking it is usable audio.

    Accepts (samples,), (N, samples), (N, 1, samples) or soundfile's (samples, channels) layout
    (mixed down to mono), as a tensor or a numpy array; float audio is cast to float32 and integer
    PCM scaled to [-1, 1] (int16 ÷ 32768, int32 ÷ 2^31, uint8 (x − 128) ÷ 128). See
    :func:`captum_lmac._validate.check_waveform`.

    Raises:
        InputError: on a wrong type, dtype or number of dimensions, multi-channel (N, C, samples)
            input, empty audio, NaN/inf samples, float audio louder than ``max_peak`` (unscaled
            PCM), or (unless ``allow_silent``) an all-zero signal.
    """
    return check_waveform(waveform, name=name, allow_silent=allow_silent, max_peak=max_peak)


class STFT(nn.Module):
    r"""Short-time Fourier analysis to (magnitude, phase) and synthesis back to a waveform.

    Wraps ``torchaudio.transforms.Spectrogram`` / ``InverseSpectrogram``. The defaults are the
    SpeechBrain L-MAC recipe at 16 kHz (n_fft 1024 → 513 bins, hop 186, window 372, Hamming,
    centred).

    Args:
        sample_rate (int): Sample rate the waveforms must have.
        n_fft (int): FFT size; the spectrogram has ``n_fft // 2 + 1`` frequency bins.
        hop_length (int): Hop between frames in samples.
        win_length (int): Window length in samples (≤ n_fft).
        window (str): One of ``"hamming"``, ``"hann"``, ``"blackman"``.
        center (bool): Pad so that frame t is centred on sample ``t * hop_length``.

    Examples::

        >>> stft = STFT(sample_rate=16000)
        >>> X, phase = stft.analyze(torch.randn(2, 16000))
        >>> X.shape
        torch.Size([2, 1, 513, 87])
        >>> y = stft.listen(X, phase, torch.ones_like(X), length=16000)
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 186,
        win_length: int = 372,
        window: str = "hamming",
        center: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(window, str) or window not in _WINDOWS:
            raise InputError(f"unknown window {window!r}; choose one of {sorted(_WINDOWS)}")
        sample_rate = check_positive_int(sample_rate, "sample_rate")
        n_fft = check_int(n_fft, "n_fft", minimum=2)
        hop_length = check_positive_int(hop_length, "hop_length")
        win_length = check_positive_int(win_length, "win_length")
        if win_length > n_fft:
            raise InputError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if not isinstance(center, (bool, np.bool_)):
            raise InputError(f"center must be True or False, got {center!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.window = window
        self.center = bool(center)
        kw = dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window_fn=_WINDOWS[window], center=center)
        self._spec = torchaudio.transforms.Spectrogram(power=None, **kw)
        self._ispec = torchaudio.transforms.InverseSpectrogram(**kw)

    @property
    def n_freqs(self) -> int:
        """Number of frequency bins F of the magnitude spectrogram."""
        return self.n_fft // 2 + 1

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable (stored in checkpoints)."""
        return dict(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
        )

    def n_frames(self, n_samples: int) -> int:
        """Number of STFT frames T for a clip of ``n_samples`` samples."""
        if self.center:
            return n_samples // self.hop_length + 1
        return (n_samples - self.n_fft) // self.hop_length + 1

    def analyze(
        self, waveform: ArrayLike, sample_rate: Optional[int] = None, allow_silent: bool = False
    ) -> Tuple[Tensor, Tensor]:
        """Waveform (N, samples) → magnitude X (N, 1, F, T) and phase P (N, 1, F, T) in radians.

        Args:
            waveform: (samples,), (N, samples) or (N, 1, samples).
            sample_rate (int, optional): If given, must equal this STFT's sample rate.
            allow_silent (bool): Accept all-zero signals (default: raise).
        """
        if sample_rate is not None and check_positive_int(sample_rate, "sample_rate") != self.sample_rate:
            raise InputError(
                f"audio has sample rate {sample_rate} Hz but this STFT expects {self.sample_rate} Hz; "
                "resample it first (captum_lmac.audio.resample)"
            )
        w = as_waveform_batch(waveform, allow_silent=allow_silent)
        if self.center and w.shape[-1] <= self.n_fft // 2:
            raise InputError(
                f"waveform has {w.shape[-1]} samples, too short for n_fft={self.n_fft} (need > {self.n_fft // 2})"
            )
        if not self.center and w.shape[-1] < self.n_fft:
            raise InputError(
                f"waveform has {w.shape[-1]} samples, too short for n_fft={self.n_fft} without centring "
                f"(need >= {self.n_fft})"
            )
        spec = self._spec.to(w.device)(w)  # (N, F, T) complex
        return spec.abs().unsqueeze(1), spec.angle().unsqueeze(1)

    def magnitude(self, waveform: Tensor, eps: float = 1e-10) -> Tensor:
        """Differentiable |STFT| (N, 1, F, T) of a waveform batch (N, samples) — no input checks, for
        use inside models and losses (``sqrt(re² + im² + eps)``, so the gradient at silence is finite)."""
        spec = torch.view_as_real(self._spec.to(waveform.device)(waveform))  # (N, F, T, 2)
        return spec.pow(2).sum(-1).add(eps).sqrt().unsqueeze(1)

    def synthesize(self, magnitude: Tensor, phase: Tensor, length: Optional[int] = None) -> Tensor:
        """Magnitude and phase (N, 1, F, T) → waveform (N, samples) by inverse STFT."""
        self._check_spec(magnitude, "magnitude")
        if not torch.is_tensor(phase) or phase.shape != magnitude.shape:
            shape = tuple(phase.shape) if torch.is_tensor(phase) else type(phase).__name__
            raise InputError(f"phase shape {shape} differs from magnitude shape {tuple(magnitude.shape)}")
        if not phase.is_floating_point() or not torch.isfinite(phase).all():
            raise InputError("phase must be a finite floating-point tensor (radians, from STFT.analyze)")
        if length is not None:
            length = check_positive_int(length, "length")
        spec = torch.polar(magnitude[:, 0].float().clamp_min(0), phase[:, 0].float())
        return self._ispec.to(spec.device)(spec, length)

    def listen(
        self,
        X: Tensor,
        phase: Tensor,
        mask: Tensor,
        length: Optional[int] = None,
        mask_domain: str = "linear",
    ) -> Tensor:
        r"""The listenable explanation ISTFT((M ⊙ X) e^{jP}) as a waveform (N, samples).

        Args:
            X (Tensor): Linear magnitude (N, 1, F, T).
            phase (Tensor): The input's phase (N, 1, F, T).
            mask (Tensor): Mask in [0, 1], same shape as ``X`` (or broadcastable over N).
            length (int, optional): Output length in samples (the original clip length).
            mask_domain (str): ``"linear"`` (default, the paper's formula: M ⊙ |X|) or ``"log1p"``
                (the released reference code: the mask multiplies log(1+|X|), giving the effective
                magnitude (1+|X|)^M − 1).
        """
        self._check_spec(X, "X")
        if not torch.is_tensor(mask):
            raise InputError(f"mask must be a tensor, got {type(mask).__name__}")
        try:
            mask = mask.to(X.dtype).expand_as(X)
        except RuntimeError:
            raise InputError(f"mask shape {tuple(mask.shape)} does not match spectrogram shape {tuple(X.shape)}") from None
        if not torch.isfinite(mask).all():
            raise InputError("mask contains NaN or infinite values")
        lo, hi = float(mask.min()), float(mask.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise InputError(
                f"mask values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; turn an attribution into a mask first "
                "(captum_lmac.attr.baselines.to_mask)"
            )
        if mask_domain == "linear":
            mag = mask * X
        elif mask_domain == "log1p":
            mag = torch.expm1(mask * torch.log1p(X))
        else:
            raise InputError(f"mask_domain must be 'linear' or 'log1p', got {mask_domain!r}")
        return self.synthesize(mag, phase, length)

    def _check_spec(self, X: Tensor, name: str) -> None:
        if not torch.is_tensor(X) or X.dim() != 4 or X.shape[1] != 1:
            shape = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
            raise InputError(f"{name} must be a (N, 1, F, T) tensor, got {shape}")
        if X.shape[2] != self.n_freqs:
            raise InputError(f"{name} has {X.shape[2]} frequency bins but this STFT (n_fft={self.n_fft}) has {self.n_freqs}")
        if not X.is_floating_point():
            raise InputError(f"{name} has dtype {X.dtype}; a magnitude spectrogram is floating point")
        if not torch.isfinite(X).all():
            raise InputError(f"{name} contains NaN or infinite values")


class LogMel(nn.Module):
    r"""Classifier features from the linear magnitude: log(1 + mel filterbank(|X|)).

    The SpeechBrain L-MAC recipe uses 80 mel bands from 0 to 8 kHz on the STFT above. Built on
    ``torchaudio.transforms.MelScale``; differentiable, so gradients reach ``X``.

    Args:
        stft (STFT): The analysis whose magnitude this consumes (sets F and the sample rate).
        n_mels (int): Number of mel bands.
        f_min (float): Lowest band edge in Hz.
        f_max (float, optional): Highest band edge in Hz (default: Nyquist).

    Examples::

        >>> stft = STFT(); logmel = LogMel(stft, n_mels=80)
        >>> logmel(stft.analyze(torch.randn(1, 16000))[0]).shape
        torch.Size([1, 1, 80, 87])
    """

    def __init__(self, stft: STFT, n_mels: int = 80, f_min: float = 0.0, f_max: Optional[float] = None) -> None:
        super().__init__()
        if not isinstance(stft, STFT):
            raise InputError(f"LogMel needs the captum_lmac.STFT whose magnitude it reads, got {type(stft).__name__}")
        self.n_freqs = stft.n_freqs
        self.sample_rate = stft.sample_rate
        self.n_mels = check_positive_int(n_mels, "n_mels")
        nyquist = stft.sample_rate / 2
        self.f_min = check_number(f_min, "f_min", minimum=0.0)
        self.f_max = check_number(f_max, "f_max", maximum=nyquist) if f_max is not None else nyquist
        if self.f_max <= self.f_min:
            raise InputError(f"f_max ({self.f_max:g} Hz) must exceed f_min ({self.f_min:g} Hz)")
        self.mel = torchaudio.transforms.MelScale(
            n_mels=n_mels, sample_rate=stft.sample_rate, f_min=self.f_min, f_max=self.f_max, n_stft=stft.n_freqs
        )

    def config(self) -> dict:
        return dict(n_mels=self.n_mels, f_min=self.f_min, f_max=self.f_max)

    def forward(self, X: Tensor) -> Tensor:
        """(N, 1, F, T) magnitude → (N, 1, n_mels, T) log-mel."""
        if not torch.is_tensor(X) or X.dim() != 4 or X.shape[2] != self.n_freqs:
            shape = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
            raise InputError(f"LogMel expects a (N, 1, {self.n_freqs}, T) magnitude, got {shape}")
        if not X.is_floating_point():
            raise InputError(f"LogMel expects a floating-point magnitude, got dtype {X.dtype}")
        fb = self.mel.fb
        if X.dtype != fb.dtype:  # float64 / float16 inputs meet the float32 filterbank
            X = X.to(fb.dtype)
        return torch.log1p(self.mel(X.clamp_min(0)))


def resample(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Resample along the last dimension with ``torchaudio.functional.resample``."""
    if not torch.is_tensor(waveform):
        raise InputError(f"resample needs a waveform tensor, got {type(waveform).__name__}")
    try:
        orig_sr, new_sr = check_positive_int(orig_sr, "orig_sr"), check_positive_int(new_sr, "new_sr")
    except InputError:
        raise InputError(f"sample rates must be positive integers, got {orig_sr} → {new_sr}") from None
    if orig_sr == new_sr:
        return waveform
    if waveform.shape[-1] == 0:
        raise InputError("cannot resample an empty waveform")
    return torchaudio.functional.resample(waveform.float(), orig_sr, new_sr)


def fit_length(waveform: Tensor, length: int, offset: int = 0) -> Tensor:
    """Crop (from ``offset``) or tile a waveform (last dim) to exactly ``length`` samples."""
    length = check_positive_int(length, "length")
    n = waveform.shape[-1]
    if n == 0:
        raise InputError("cannot fit an empty waveform to a length")
    if n < length:
        reps = -(-length // n)
        waveform = waveform.repeat(*([1] * (waveform.dim() - 1)), reps)
        n = waveform.shape[-1]
    offset = int(offset) % max(1, n - length + 1)
    return waveform[..., offset : offset + length]


def mix_at_snr(signal: Tensor, noise: Tensor, snr_db: float) -> Tuple[Tensor, Tensor]:
    """Add ``noise`` to ``signal`` so that 10·log10(P_signal / P_noise) = ``snr_db``.

    Works per item on (samples,) or (N, samples); the noise is cropped or tiled to the signal's
    length. Returns ``(mixture, scaled_noise)`` so the clean part of the mixture stays known.
    """
    if not torch.is_tensor(signal) or not torch.is_tensor(noise):
        raise InputError("mix_at_snr needs signal and noise tensors")
    snr_db = check_number(snr_db, "snr_db")
    if not torch.isfinite(signal).all() or not torch.isfinite(noise).all():
        raise InputError("cannot mix at an SNR: the signal or the noise contains NaN or infinite samples")
    if noise.shape[-1] != signal.shape[-1]:
        noise = fit_length(noise, signal.shape[-1])
    p_s = signal.pow(2).mean(dim=-1, keepdim=True)
    p_n = noise.pow(2).mean(dim=-1, keepdim=True)
    if bool((p_s == 0).any()):
        raise InputError("cannot mix at an SNR: the signal is silent")
    if bool((p_n == 0).any()):
        raise InputError("cannot mix at an SNR: the noise is silent")
    scale = torch.sqrt(p_s / (p_n * 10.0 ** (float(snr_db) / 10.0)))
    scaled = noise * scale
    return signal + scaled, scaled


def read_wav(path: Union[str, Path], sample_rate: Optional[int] = None) -> Tuple[Tensor, int]:
    """Read an audio file with ``soundfile`` as a mono float32 tensor (samples,).

    Multi-channel files are averaged to mono. If ``sample_rate`` is given the audio is resampled to
    it. Returns ``(waveform, sample_rate)``.
    """
    path = Path(path)
    if sample_rate is not None:
        sample_rate = check_positive_int(sample_rate, "sample_rate")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an audio file")
    if not path.is_file():
        raise DataNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise InputError(f"cannot read audio file {path}: {exc}") from None
    if data.shape[0] == 0:
        raise InputError(f"audio file {path} is empty")
    if not np.isfinite(data).all():
        raise InputError(f"audio file {path} contains NaN or infinite samples")
    w = torch.from_numpy(data.mean(axis=1))
    if sample_rate is not None and sr != sample_rate:
        w = resample(w, sr, sample_rate)
        sr = sample_rate
    return w, int(sr)


def write_wav(path: Union[str, Path], waveform: ArrayLike, sample_rate: int) -> Path:
    """Write a mono waveform (samples,) or (1, samples) as 16-bit PCM WAV, atomically.

    A signal whose peak exceeds 1 is scaled down to peak 0.99 rather than clipped.
    """
    sample_rate = check_positive_int(sample_rate, "sample_rate")
    w = as_waveform_batch(waveform, allow_silent=True, max_peak=None)
    if w.shape[0] != 1:
        raise InputError(f"write_wav writes one clip; got a batch of {w.shape[0]}")
    data = w[0].detach().cpu().numpy().astype(np.float32)
    peak = float(np.abs(data).max())
    if peak > 1.0:
        data = data * (0.99 / peak)
    return atomic_write(path, lambda tmp: sf.write(tmp, data, sample_rate, subtype="PCM_16", format="WAV"))
