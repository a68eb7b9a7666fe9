r"""Speech in noise: real speech over real noise at a known SNR, with the clean speech known.

The data of the ``speech-in-noise`` suite: a speech detector (classes ``["noise", "speech"]``) is
trained on these clips and its explanation of "speech" is compared with the clean speech.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._validate import check_number, check_positive_int
from ..audio import mix_at_snr, read_wav
from ..errors import InputError
from .folders import ESC50, FSDD, NoiseFolder, SpeechFolder

PathLike = Union[str, Path]

SPLITS = ("train", "val", "test")
ESC10_FOLDS = {"train": [1, 2, 3], "val": [4], "test": [5]}
"""ESC-10 folds used as noise by each split (the official folds, so no recording is shared)."""
FSDD_TAKES = {"train": range(10, 50), "val": range(5, 10), "test": range(0, 5)}
"""FSDD takes per split (takes 0-4 are FSDD's own test split)."""
CLASSES = ["noise", "speech"]


def _split_of(index: int, n_files: int) -> str:
    """Split of the ``index``-th of ``n_files`` sorted files: about 70 / 15 / 15 %, interleaved so every
    split sees every group of file names (ambient) or several passages (LJSpeech)."""
    if n_files < 3:
        raise InputError(f"need at least 3 files to split into train / val / test, got {n_files}")
    slot = index % 7
    return "test" if slot == 3 else "val" if slot == 6 else "train"


class SpeechInNoise(Dataset):
    r"""Clips of real speech over real noise (0 dB by default), half of them noise only.

    Speech comes from the Free Spoken Digit Dataset (one to three digits of one speaker, in a row)
    and from LJSpeech (a 0.6-1.6 s excerpt), placed at a random onset; noise from ambient recordings
    (rain, wind, river, birds, buildings) and from ESC-10 clips. Splits never share a recording:
    FSDD by take (0-4 test, 5-9 val, 10-49 train), ESC-10 by official fold (5 test, 4 val, 1-3
    train), LJSpeech and the ambient loops by file (every 7th file from the 4th to test, from the
    7th to val). Item ``i`` depends only on ``(split, seed, i)``; even items are noise only (label 0,
    ``"noise"``), odd items speech in noise (label 1, ``"speech"``), mixed so that
    10·log10(P_speech / P_noise) over the clip is ``snr_db``; each clip is scaled to an RMS of
    ``rms`` (so loudness does not give the class away), peaks kept below 1.

    ``meta`` holds ``clean`` (the speech part of the clip — zeros for noise-only clips, where the
    ground truth is undefined and skipped), ``background`` (the noise part, ``clean + background``
    is the clip), ``speech_source``/``noise_source`` and ``onset``/``offset`` (seconds, speech items).

    Args:
        root (path): The data root holding the four folders (``fsdd``, ``ljspeech32``, ``ambient``,
            ``esc10``; names configurable).
        split (str): ``"train"``, ``"val"`` or ``"test"``.
        n_items (int): Number of clips.
        seed (int): Mixing seed (which excerpts, onsets and noises).
        sample_rate (int): Output sample rate.
        duration (float): Clip length in seconds (≥ 1.5).
        snr_db (float or (lo, hi)): Speech-to-noise ratio over the clip in dB (a range draws per clip).
        rms (float): RMS level of every clip.
        folders (dict, optional): Folder names under ``root`` for ``fsdd``, ``ljspeech``,
            ``ambient`` and ``esc10``.

    Examples::

        >>> ds = SpeechInNoise(default_data_root(), split="test", n_items=10)
        >>> wave, label, meta = ds[1]
        >>> ds.classes[label], torch.allclose(meta["clean"] + meta["background"], wave, atol=1e-6)
        ('speech', True)
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        n_items: int = 400,
        seed: int = 0,
        sample_rate: int = 16000,
        duration: float = 2.0,
        snr_db: Union[float, Sequence[float]] = 0.0,
        rms: float = 0.05,
        folders: Optional[Dict[str, str]] = None,
    ) -> None:
        if split not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split
        self.n_items = check_positive_int(n_items, "n_items")
        self.seed = int(seed)
        self.sample_rate = check_positive_int(sample_rate, "sample_rate")
        self.duration = check_number(duration, "duration (seconds)", minimum=1.5)
        self.n_samples = int(round(self.duration * self.sample_rate))
        if isinstance(snr_db, (int, float)):
            self.snr_db: Tuple[float, float] = (float(snr_db), float(snr_db))
        else:
            lo, hi = (check_number(v, "snr_db") for v in snr_db)
            if lo > hi:
                raise InputError(f"snr_db range ({lo}, {hi}) is empty")
            self.snr_db = (lo, hi)
        self.rms = check_number(rms, "rms", minimum=0.0, strict_minimum=True, maximum=0.3)
        self.classes = list(CLASSES)
        names = {"fsdd": "fsdd", "ljspeech": "ljspeech32", "ambient": "ambient", "esc10": "esc10"}
        unknown = set(folders or {}) - set(names)
        if unknown:
            raise InputError(f"folders: unknown key(s) {sorted(unknown)}; keys are {', '.join(names)}")
        names.update(folders or {})
        root = Path(root)
        sr = self.sample_rate
        fsdd = FSDD(root / names["fsdd"], split="all", sample_rate=sr, duration=1.0, takes=FSDD_TAKES[split])
        self._digits = [(p, m) for p, _, m in fsdd._items]
        speakers: Dict[str, List[Path]] = {}
        for p, m in self._digits:
            speakers.setdefault(str(m.get("speaker", p.stem.split("_")[1])), []).append(p)
        self._speakers = sorted(speakers.items())
        lj = SpeechFolder(root / names["ljspeech"], sample_rate=sr)
        self._lj = [f for i, f in enumerate(lj.files) if _split_of(i, len(lj.files)) == split]
        self._ambient = NoiseFolder(root / names["ambient"], sample_rate=sr)
        self._ambient.files = [f for i, f in enumerate(self._ambient.files)
                               if _split_of(i, len(self._ambient.files)) == split]
        self._esc = ESC50(root / names["esc10"], folds=ESC10_FOLDS[split], sample_rate=sr, duration=5.0,
                          esc10_only=True)
        self._cache: Dict[Path, Tensor] = {}

    def __len__(self) -> int:
        return self.n_items

    @property
    def labels(self) -> List[int]:
        """Label of every item (no audio is read)."""
        return [i % 2 for i in range(self.n_items)]

    def _read(self, path: Path) -> Tensor:
        if path not in self._cache:
            self._cache[path] = read_wav(path, self.sample_rate)[0].float()
        return self._cache[path]

    def _speech(self, rng: np.random.Generator) -> Tuple[Tensor, str]:
        """A speech segment shorter than the clip: digits of one speaker or a LJSpeech excerpt."""
        sr, limit = self.sample_rate, int(0.8 * self.n_samples)
        if not self._lj or rng.random() < 0.5:
            speaker, files = self._speakers[int(rng.integers(len(self._speakers)))]
            parts: List[Tensor] = []
            for _ in range(int(rng.integers(1, 4))):
                digit = self._read(files[int(rng.integers(len(files)))])
                gap = torch.zeros(int(rng.uniform(0.05, 0.2) * sr)) if parts else torch.zeros(0)
                if sum(p.numel() for p in parts) + gap.numel() + digit.numel() > limit:
                    break
                parts += [gap, digit]
            if not parts:
                parts = [digit[:limit]]
            return torch.cat(parts), f"fsdd:{speaker}"
        path = self._lj[int(rng.integers(len(self._lj)))]
        wave = self._read(path)
        n = min(int(rng.uniform(0.6, 1.6) * sr), limit, wave.numel())
        start = int(rng.integers(0, max(1, wave.numel() - n + 1)))
        return wave[start : start + n], f"ljspeech:{path.stem}"

    def _noise(self, rng: np.random.Generator) -> Tuple[Tensor, str]:
        n = self.n_samples
        if rng.random() < 0.5:
            return self._ambient.random_segment(n, rng), "ambient"
        for _ in range(20):
            j = int(rng.integers(len(self._esc)))
            wave, label, _ = self._esc[j]
            start = int(rng.integers(0, max(1, wave.numel() - n + 1)))
            seg = wave[start : start + n]
            if seg.numel() < n:
                seg = torch.cat([seg, torch.zeros(n - seg.numel())])
            if float(seg.pow(2).mean()) > 1e-8:
                return seg, f"esc10:{self._esc.classes[label]}"
        return self._ambient.random_segment(n, rng), "ambient"

    def __getitem__(self, i: int) -> Tuple[Tensor, int, Dict[str, object]]:
        if not -self.n_items <= i < self.n_items:
            raise IndexError(f"index {i} out of range for {self.n_items} items")
        i = i % self.n_items
        rng = np.random.default_rng([SPLITS.index(self.split), self.seed, i])
        label = i % 2
        noise, noise_src = self._noise(rng)
        noise = noise - noise.mean()
        meta: Dict[str, object] = {"noise_source": noise_src}
        clean = torch.zeros(self.n_samples)
        if label == 1:
            speech, speech_src = self._speech(rng)
            onset = int(rng.integers(0, self.n_samples - speech.numel() + 1))
            clean[onset : onset + speech.numel()] = speech - speech.mean()
            _, noise = mix_at_snr(clean, noise, float(rng.uniform(*self.snr_db)))
            meta.update(speech_source=speech_src, onset=onset / self.sample_rate,
                        offset=(onset + speech.numel()) / self.sample_rate)
        mix = clean + noise
        scale = self.rms / float(mix.pow(2).mean().sqrt().clamp_min(1e-8))
        scale = min(scale, 0.99 / float(mix.abs().max().clamp_min(1e-8)))
        meta["clean"] = (clean * scale).float()
        meta["background"] = (noise * scale).float()
        return (mix * scale).float().contiguous(), label, meta

    def __repr__(self) -> str:
        return (f"SpeechInNoise({self.split}, {self.n_items} clips, {self.sample_rate} Hz, {self.duration:g} s, "
                f"{len(self._speakers)} FSDD speakers, {len(self._lj)} LJSpeech files, "
                f"{len(self._ambient.files)} ambient files, {len(self._esc)} ESC-10 clips)")


__all__ = ["SpeechInNoise"]
