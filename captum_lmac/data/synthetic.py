"""SyntheticEvents: the embedded default data set, generated from a seed, with known sources."""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import InputError

# Each generator returns an event waveform (float64) of n samples for the given rng and rate.
_Gen = Callable[[np.random.Generator, int, int], np.ndarray]


def _envelope(n: int, attack: float = 0.1, release: float = 0.2) -> np.ndarray:
    """Smooth attack/sustain/release envelope of n samples (fractions of n)."""
    env = np.ones(n)
    a, r = max(1, int(n * attack)), max(1, int(n * release))
    env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    env[-r:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return env


def _tone_burst(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = rng.uniform(500, 2500)
    return np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)) * _envelope(n, 0.05, 0.1)


def _sweep(rng: np.random.Generator, n: int, sr: int, up: bool) -> np.ndarray:
    t = np.arange(n) / sr
    lo, hi = rng.uniform(300, 1200), rng.uniform(2500, 6000)
    f_start, f_end = (lo, hi) if up else (hi, lo)
    inst = f_start + (f_end - f_start) * t / t[-1]
    return np.sin(2 * np.pi * np.cumsum(inst) / sr) * _envelope(n, 0.05, 0.1)


def _chirp_up(rng, n, sr):
    return _sweep(rng, n, sr, up=True)


def _chirp_down(rng, n, sr):
    return _sweep(rng, n, sr, up=False)


def _harmonic_bark(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """2-3 short harmonic barks: f0 150-350 Hz, 8 decaying harmonics, fast attack."""
    out = np.zeros(n)
    n_barks = int(rng.integers(2, 4))
    seg = n // n_barks
    f0 = rng.uniform(150, 350)
    for b in range(n_barks):
        m = int(seg * rng.uniform(0.5, 0.8))
        t = np.arange(m) / sr
        wave = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.05 * t)) / k**0.7 for k in range(1, 9))
        out[b * seg : b * seg + m] += wave * _envelope(m, 0.05, 0.6)
    return out


def _clicks(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A ticking clock: broadband decaying clicks at 6-12 Hz."""
    out = np.zeros(n)
    period = int(sr / rng.uniform(6, 12))
    click_len = int(0.012 * sr)
    decay = np.exp(-np.arange(click_len) / (0.002 * sr))
    for start in range(int(rng.integers(0, period // 2)), n - click_len, period):
        out[start : start + click_len] += rng.standard_normal(click_len) * decay
    return out


def _bandpass_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec[(freqs < lo) | (freqs > hi)] = 0
    return np.fft.irfft(spec, n)


def _noise_burst(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    centre = rng.uniform(1500, 5000)
    width = rng.uniform(400, 1200)
    x = _bandpass_noise(rng, n, sr, centre - width, centre + width)
    return x / (np.abs(x).max() + 1e-9) * _envelope(n, 0.1, 0.2)


def _siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    fc, depth, rate = rng.uniform(700, 1300), rng.uniform(200, 400), rng.uniform(2, 5)
    inst = fc + depth * np.sin(2 * np.pi * rate * t)
    x = np.sin(2 * np.pi * np.cumsum(inst) / sr) + 0.3 * np.sin(4 * np.pi * np.cumsum(inst) / sr)
    return x * _envelope(n, 0.05, 0.05)


def _engine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Low harmonic hum (50-110 Hz) with a slow amplitude wobble."""
    t = np.arange(n) / sr
    f0 = rng.uniform(50, 110)
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 12))
    return x * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 8) * t)) * _envelope(n, 0.1, 0.1)


def _bird(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """3-6 fast, high downward chirps (3-7 kHz)."""
    out = np.zeros(n)
    k = int(rng.integers(3, 7))
    seg = n // k
    for i in range(k):
        m = int(seg * rng.uniform(0.3, 0.6))
        t = np.arange(m) / sr
        hi, lo = rng.uniform(5000, 7000), rng.uniform(3000, 4500)
        inst = hi + (lo - hi) * t / max(t[-1], 1e-9)
        out[i * seg : i * seg + m] = np.sin(2 * np.pi * np.cumsum(inst) / sr) * _envelope(m, 0.1, 0.3)
    return out


def _thump(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """2-4 drum thumps: decaying sines falling from ~150 to ~50 Hz."""
    out = np.zeros(n)
    k = int(rng.integers(2, 5))
    seg = n // k
    for i in range(k):
        m = seg
        t = np.arange(m) / sr
        inst = 50 + rng.uniform(80, 140) * np.exp(-t / 0.03)
        out[i * seg : i * seg + m] = np.sin(2 * np.pi * np.cumsum(inst) / sr) * np.exp(-t / 0.06)
    return out


#: (name, generator, (min, max) duration in seconds)
CLASSES: List[Tuple[str, _Gen, Tuple[float, float]]] = [
    ("tone_burst", _tone_burst, (0.15, 0.4)),
    ("chirp_up", _chirp_up, (0.25, 0.6)),
    ("chirp_down", _chirp_down, (0.25, 0.6)),
    ("bark", _harmonic_bark, (0.4, 0.8)),
    ("clock_tick", _clicks, (0.5, 1.0)),
    ("noise_burst", _noise_burst, (0.15, 0.5)),
    ("siren", _siren, (0.6, 1.0)),
    ("engine", _engine, (0.5, 1.0)),
    ("bird", _bird, (0.4, 0.9)),
    ("thump", _thump, (0.4, 0.9)),
]


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


class SyntheticEvents(Dataset):
    r"""Procedurally generated sound events over background noise, with the clean source known.

    Ten classes with distinct time-frequency shapes (tone bursts, up/down chirps, harmonic barks,
    clock ticks, band-pass noise bursts, sirens, engine hum, bird chirps, drum thumps); onset,
    duration and pitch vary within each class; the event sits over pink noise at a random SNR.
    Item ``i`` depends only on ``(seed, i)``, so two instances with the same arguments are
    identical, and no file is read.

    Each item is ``(waveform, label, meta)`` with ``meta`` holding ``clean`` (the event alone, the
    ground truth of what the label depends on), ``background``, ``onset``/``offset`` (seconds) and
    ``snr_db``. In mixture mode a second event of another class is added at ``mixture_snr_db``
    relative to the target and ``meta`` also holds ``interferer`` and ``interferer_label``.

    Args:
        n_items (int): Number of clips (classes are balanced: label = i mod n_classes).
        seed (int): Generation seed; use different seeds for train and test sets.
        sample_rate (int): Sample rate in Hz.
        duration (float): Clip length in seconds.
        snr_db (tuple): Range of event-to-background SNR in dB.
        mixture (bool): Overlay an interfering event of another class.
        mixture_snr_db (float): Target-to-interferer SNR in dB in mixture mode.
        n_classes (int): Use the first ``n_classes`` classes (2-10).

    Examples::

        >>> ds = SyntheticEvents(100, seed=0)
        >>> wave, label, meta = ds[0]
        >>> wave.shape, ds.classes[label], meta["clean"].shape
        (torch.Size([24000]), 'tone_burst', torch.Size([24000]))
    """

    def __init__(
        self,
        n_items: int = 500,
        seed: int = 0,
        sample_rate: int = 16000,
        duration: float = 1.5,
        snr_db: Tuple[float, float] = (5.0, 20.0),
        mixture: bool = False,
        mixture_snr_db: float = 0.0,
        n_classes: int = 10,
    ) -> None:
        if not 2 <= n_classes <= len(CLASSES):
            raise InputError(f"n_classes must be between 2 and {len(CLASSES)}, got {n_classes}")
        if n_items <= 0:
            raise InputError(f"n_items must be positive, got {n_items}")
        if duration < 1.05 * max(c[2][1] for c in CLASSES[:n_classes]):
            raise InputError(f"duration {duration} s is too short for the longest event class")
        self.n_items = int(n_items)
        self.seed = int(seed)
        self.sample_rate = int(sample_rate)
        self.duration = float(duration)
        self.n_samples = int(round(duration * sample_rate))
        self.snr_db = tuple(snr_db)
        self.mixture = bool(mixture)
        self.mixture_snr_db = float(mixture_snr_db)
        self.classes = [c[0] for c in CLASSES[:n_classes]]

    def __len__(self) -> int:
        return self.n_items

    def _event(self, rng: np.random.Generator, label: int) -> Tuple[np.ndarray, int, int]:
        _, gen, (dmin, dmax) = CLASSES[label]
        n = int(rng.uniform(dmin, dmax) * self.sample_rate)
        onset = int(rng.integers(0, self.n_samples - n))
        ev = gen(rng, n, self.sample_rate)
        out = np.zeros(self.n_samples)
        out[onset : onset + n] = ev / (np.abs(ev).max() + 1e-9)
        return out, onset, onset + n

    def __getitem__(self, i: int) -> Tuple[Tensor, int, Dict[str, object]]:
        if not -self.n_items <= i < self.n_items:
            raise IndexError(f"index {i} out of range for {self.n_items} items")
        i = i % self.n_items
        rng = np.random.default_rng([self.seed, i])
        label = i % len(self.classes)
        clean, on, off = self._event(rng, label)
        snr = float(rng.uniform(*self.snr_db))
        # SNR is measured over the event's active span, so short events are not drowned.
        p_event = np.mean(clean[on:off] ** 2)
        bg = _pink_noise(rng, self.n_samples)
        bg *= np.sqrt(p_event / (np.mean(bg**2) * 10 ** (snr / 10)))
        meta: Dict[str, object] = {"onset": on / self.sample_rate, "offset": off / self.sample_rate, "snr_db": snr}
        mix = clean + bg
        if self.mixture:
            other = int((label + rng.integers(1, len(self.classes))) % len(self.classes))
            interf, _, _ = self._event(rng, other)
            interf *= _rms(clean) / (_rms(interf) * 10 ** (self.mixture_snr_db / 20) + 1e-12)
            mix = mix + interf
            meta["interferer_label"] = other
        scale = 0.9 / (np.abs(mix).max() + 1e-9)
        meta["clean"] = torch.from_numpy((clean * scale).astype(np.float32))
        meta["background"] = torch.from_numpy((bg * scale).astype(np.float32))
        if self.mixture:
            meta["interferer"] = torch.from_numpy((interf * scale).astype(np.float32))
        return torch.from_numpy((mix * scale).astype(np.float32)), label, meta
