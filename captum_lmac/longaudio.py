r"""Long recordings in bounded memory: resampled block reading, overlapping windows, cross-faded streaming output.

An hour of audio is read window by window (:class:`WindowReader`: ``soundfile`` seeks, resampling
with enough context that the blocks join exactly), every window is processed on its own, and the
results are overlap-added with complementary raised-cosine fades (:class:`CrossfadeWriter`: the
fade-out of one window and the fade-in of the next sum to one, so a process that returns its input
gives back the recording sample for sample) and streamed to a WAV file with ``soundfile`` — nothing
ever holds more than a few windows.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import Tensor

from .errors import DataNotFoundError, InputError

PathLike = Union[str, "os.PathLike[str]"]


class WindowReader:
    """Overlapping windows of an audio file, mono, at ``sample_rate``, read on demand.

    Window ``k`` covers samples ``[k·hop, k·hop + window)`` of the resampled signal (the last one
    zero-padded). Resampling (torchaudio's windowed sinc) is done per block with a margin of
    original samples on both sides, on the grid of the whole file, so the blocks equal the
    resampled whole signal.

    Args:
        path (path): The audio file (anything ``soundfile`` reads).
        sample_rate (int): Output sample rate.
        window (int): Window length in output samples.
        hop (int): Hop between windows in output samples (``window − overlap``).
    """

    def __init__(self, path: PathLike, sample_rate: int, window: int, hop: int) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataNotFoundError(f"audio file not found: {self.path}")
        try:
            info = sf.info(str(self.path))
        except Exception as exc:
            raise InputError(f"cannot read audio file {self.path}: {exc}") from None
        if info.frames <= 0:
            raise InputError(f"audio file {self.path} is empty")
        if not 0 < hop <= window:
            raise InputError(f"the hop ({hop}) must lie in (0, window = {window}]")
        self.orig_rate = int(info.samplerate)
        self.sample_rate = int(sample_rate)
        self.frames = int(info.frames)
        self.window, self.hop = int(window), int(hop)
        g = math.gcd(self.orig_rate, self.sample_rate)
        self._up, self._down = self.sample_rate // g, self.orig_rate // g  # output / input samples per grid cell
        self.n_samples = -(-self.frames * self._up // self._down)  # what resampling the whole file gives
        # margin of torchaudio's sinc kernel (6 zero crossings, roll-off 0.99) in input samples, in grid cells
        width = math.ceil(6 * self._down / (0.99 * min(self._up, self._down))) + 2
        self._margin = 0 if self._up == self._down else -(-width // self._down) + 1

    @property
    def seconds(self) -> float:
        return self.frames / self.orig_rate

    def __len__(self) -> int:
        """Number of windows."""
        if self.n_samples <= self.window:
            return 1
        return 1 + -(-(self.n_samples - self.window) // self.hop)

    def _read_orig(self, start: int, stop: int) -> np.ndarray:
        """Original samples ``[start, stop)`` mono, zeros outside the file."""
        out = np.zeros(stop - start, dtype=np.float32)
        a, b = max(0, start), min(self.frames, stop)
        if b > a:
            data, _ = sf.read(str(self.path), start=a, stop=b, dtype="float32", always_2d=True)
            out[a - start : a - start + data.shape[0]] = data.mean(axis=1)
        return out

    def read(self, start: int, length: int) -> Tensor:
        """Output samples ``[start, start + length)`` (zeros beyond the end)."""
        if self._up == self._down:
            return torch.from_numpy(self._read_orig(start, start + length))
        c0 = start // self._up  # grid cells: output sample c·up ↔ input sample c·down
        c1 = -(-(start + length) // self._up)
        m = self._margin
        x = torch.from_numpy(self._read_orig((c0 - m) * self._down, (c1 + m) * self._down))
        y = torchaudio.functional.resample(x, self.orig_rate, self.sample_rate)
        off = (start - (c0 - m) * self._up)
        seg = y[off : off + length]
        end = self.n_samples - start  # beyond the resampled whole signal: zeros
        if end < length:
            seg = seg.clone()
            seg[max(end, 0) :] = 0
        return seg

    def windows(self) -> Iterator[Tuple[int, Tensor]]:
        """``(start, window samples)`` for every window, in order."""
        for k in range(len(self)):
            start = k * self.hop
            yield start, self.read(start, self.window)


def crossfade_weights(window: int, overlap: int, first: bool, last: bool) -> Tensor:
    """Per-sample weights of one window: raised-cosine fade-in / fade-out over ``overlap`` samples
    (none at the file's start / end); consecutive windows' weights sum to 1 on their overlap."""
    w = torch.ones(window)
    if overlap > 0:
        t = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap
        fade_in = torch.sin(0.5 * math.pi * t).pow(2).float()
        if not first:
            w[:overlap] = fade_in
        if not last:
            w[window - overlap :] = fade_in.flip(0)
    return w


class CrossfadeWriter:
    """Overlap-add windows (hop = window − overlap) into a mono WAV, streamed and written atomically.

    Use as a context manager; :meth:`add` the processed windows in order. Samples are written as
    soon as no later window overlaps them; the file appears under ``path`` only when the block
    exits without error (a temporary file until then). Values beyond ±1 are clipped (counted in
    :attr:`clipped`).

    Args:
        path (path): Output WAV.
        sample_rate (int): Its sample rate.
        n_samples (int): Total length (the recording's, at ``sample_rate``).
        window, overlap (int): Window length and overlap in samples.
        subtype (str): soundfile subtype (``"PCM_16"`` default, ``"FLOAT"`` for exact values).
    """

    def __init__(self, path: PathLike, sample_rate: int, n_samples: int, window: int, overlap: int,
                 subtype: str = "PCM_16") -> None:
        if not 0 <= overlap < window:
            raise InputError(f"the overlap ({overlap}) must lie in [0, window = {window})")
        self.path = Path(path)
        self.sample_rate, self.n_samples = int(sample_rate), int(n_samples)
        self.window, self.overlap = int(window), int(overlap)
        self.hop = self.window - self.overlap
        self.subtype = subtype
        self.written = 0
        self.clipped = 0
        self._k = 0
        self._tail = torch.zeros(self.overlap)
        self._file: Optional[sf.SoundFile] = None
        self._tmp: Optional[str] = None

    @property
    def n_windows(self) -> int:
        if self.n_samples <= self.window:
            return 1
        return 1 + -(-(self.n_samples - self.window) // self.hop)

    def __enter__(self) -> "CrossfadeWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=str(self.path.parent))
        os.close(fd)
        self._file = sf.SoundFile(self._tmp, mode="w", samplerate=self.sample_rate, channels=1,
                                  subtype=self.subtype, format="WAV")
        return self

    def _emit(self, samples: Tensor) -> None:
        samples = samples[: max(0, self.n_samples - self.written)]
        if samples.numel() == 0:
            return
        data = samples.detach().cpu().numpy().astype(np.float32)
        over = np.abs(data) > 1.0
        if over.any():
            self.clipped += int(over.sum())
            data = np.clip(data, -1.0, 1.0)
        self._file.write(data)
        self.written += data.shape[0]

    def add(self, window: Tensor) -> None:
        """The next processed window (``window`` samples; the last may be longer than what is left)."""
        if self._file is None:
            raise InputError("CrossfadeWriter.add outside its `with` block")
        window = window.detach().reshape(-1).float().cpu()
        if window.shape[0] != self.window:
            raise InputError(f"window {self._k} has {window.shape[0]} samples, expected {self.window}")
        last = self._k == self.n_windows - 1
        w = window * crossfade_weights(self.window, self.overlap, self._k == 0, last)
        if self._k > 0 and self.overlap:
            w[: self.overlap] += self._tail
        if last:
            self._emit(w)
        else:
            self._emit(w[: self.hop])
            self._tail = w[self.hop :].clone()
        self._k += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._file.close()
        if exc_type is not None:
            os.unlink(self._tmp)
            return False
        if self._k != self.n_windows:
            os.unlink(self._tmp)
            raise InputError(f"{self.path}: only {self._k} of {self.n_windows} windows were given")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        return False


__all__ = ["WindowReader", "CrossfadeWriter", "crossfade_weights"]
