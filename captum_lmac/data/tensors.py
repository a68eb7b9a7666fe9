"""Turn a waveform data set into in-memory spectrogram tensors (what training and benchmarks use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..audio import STFT
from ..errors import InputError


@dataclass
class SpectrogramSet:
    """Waveforms, their STFT magnitude/phase and labels, held in memory.

    Attributes:
        waveform: (N, samples).
        X: linear magnitude (N, 1, F, T).
        phase: (N, 1, F, T).
        y: labels (N,).
        extra: other per-item tensors from the data set's metadata (e.g. ``clean``).
        classes: class names.
    """

    waveform: Tensor
    X: Tensor
    phase: Tensor
    y: Tensor
    extra: Dict[str, Tensor] = field(default_factory=dict)
    classes: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: Sequence[int]) -> "SpectrogramSet":
        idx = torch.as_tensor(index, dtype=torch.long)
        return SpectrogramSet(
            self.waveform[idx], self.X[idx], self.phase[idx], self.y[idx],
            {k: v[idx] for k, v in self.extra.items()}, list(self.classes),
        )

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[Tensor]:
        """Yield batches of X (what learned-decoder methods ``fit`` on)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(len(self))
        for s in range(0, len(self), batch_size):
            yield self.X[order[s : s + batch_size]]


def to_spectrograms(
    dataset: Dataset,
    stft: STFT,
    batch_size: int = 32,
    limit: Optional[int] = None,
    keep: Sequence[str] = ("clean", "interferer", "background"),
    progress: bool = True,
) -> SpectrogramSet:
    """Read every item of a ``(waveform, label, meta)`` data set and analyse it with ``stft``.

    All waveforms must have the same length (the data sets here crop/pad to a fixed duration).
    Tensor entries of ``meta`` named in ``keep`` are stacked into ``extra`` (their STFT magnitude is
    stored as ``extra[name + "_X"]`` when they are waveforms of the same length).
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise InputError("the data set is empty")
    waves, labels, extras = [], [], {}
    for i in tqdm(range(n), desc="loading audio", disable=not progress, leave=False):
        w, y, meta = dataset[i]
        waves.append(w)
        labels.append(int(y))
        for k in keep:
            if isinstance(meta, dict) and torch.is_tensor(meta.get(k)):
                extras.setdefault(k, []).append(meta[k])
    lengths = {int(w.shape[-1]) for w in waves}
    if len(lengths) != 1:
        raise InputError(f"clips have different lengths {sorted(lengths)[:5]}; crop or pad them to one duration")
    waveform = torch.stack(waves)
    Xs, Ps = [], []
    for s in range(0, n, batch_size):
        X, P = stft.analyze(waveform[s : s + batch_size], allow_silent=True)
        Xs.append(X)
        Ps.append(P)
    extra = {}
    for k, v in extras.items():
        if len(v) != n:
            continue
        extra[k] = torch.stack(v)
        if extra[k].shape == waveform.shape:
            extra[k + "_X"] = torch.cat(
                [stft.analyze(extra[k][s : s + batch_size], allow_silent=True)[0] for s in range(0, n, batch_size)]
            )
    classes = list(getattr(dataset, "classes", []))
    return SpectrogramSet(waveform, torch.cat(Xs), torch.cat(Ps), torch.tensor(labels), extra, classes)
