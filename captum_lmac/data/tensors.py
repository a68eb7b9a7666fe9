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
        phase: (N, 1, F, T), or None when it was not kept (a classifier without a phase input never
            reads its training clips' phase; :func:`with_phase` computes it again from the waveforms).
        y: labels (N,).
        extra: other per-item tensors from the data set's metadata (e.g. ``clean``).
        classes: class names.
    """

    waveform: Tensor
    X: Tensor
    phase: Optional[Tensor]
    y: Tensor
    extra: Dict[str, Tensor] = field(default_factory=dict)
    classes: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: Sequence[int]) -> "SpectrogramSet":
        idx = torch.as_tensor(index, dtype=torch.long)
        return SpectrogramSet(
            self.waveform[idx], self.X[idx], self.phase[idx] if self.phase is not None else None, self.y[idx],
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
    extras: str = "both",
    phase: bool = True,
) -> SpectrogramSet:
    """Read every item of a ``(waveform, label, meta)`` data set and analyse it with ``stft``.

    All waveforms must have the same length (the data sets here crop/pad to a fixed duration).
    Tensor entries of ``meta`` named in ``keep`` are stacked into ``extra`` (their STFT magnitude is
    stored as ``extra[name + "_X"]`` when they are waveforms of the same length). ``extras``:
    ``"both"`` keeps both, ``"waveform"`` only the waveforms (no analysis), ``"spectrum"`` only the
    magnitudes of the waveform entries (other entries as they are). ``phase=False`` does not keep the
    phase (``SpectrogramSet.phase`` is None): a third less memory where nothing reads it.

    The clips are read and analysed ``batch_size`` at a time straight into tensors allocated once,
    so the peak memory is the result plus one batch (not twice the result, as stacking lists would).
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise InputError("the data set is empty")
    if extras not in ("both", "waveform", "spectrum"):
        raise InputError(f"extras must be 'both', 'waveform' or 'spectrum', got {extras!r}")
    keep = tuple(keep)
    waveform: Optional[Tensor] = None
    X = P = None
    labels = torch.empty(n, dtype=torch.long)
    extra: Dict[str, Tensor] = {}
    counts: Dict[str, int] = {}
    bar = tqdm(total=n, desc="loading audio", disable=not progress, leave=False)
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        batch_extra: Dict[str, List[Tensor]] = {}
        for i in range(s, e):
            w, y, meta = dataset[i]
            if waveform is None:
                waveform = torch.empty((n,) + tuple(w.shape), dtype=w.dtype)
            if tuple(w.shape) != tuple(waveform.shape[1:]):
                raise InputError(
                    f"clips have different lengths (item {i}: {int(w.shape[-1])} samples, item 0: "
                    f"{int(waveform.shape[-1])}); crop or pad them to one duration"
                )
            waveform[i] = w
            labels[i] = int(y)
            for k in keep:
                if isinstance(meta, dict) and torch.is_tensor(meta.get(k)):
                    batch_extra.setdefault(k, []).append(meta[k])
            bar.update(1)
        Xb, Pb = stft.analyze(waveform[s:e], allow_silent=True)
        if X is None:
            X = torch.empty((n,) + tuple(Xb.shape[1:]), dtype=Xb.dtype)
            P = torch.empty((n,) + tuple(Pb.shape[1:]), dtype=Pb.dtype) if phase else None
        X[s:e] = Xb
        if P is not None:
            P[s:e] = Pb
        for k, items in batch_extra.items():
            if counts.get(k, 0) != s or len(items) != e - s:  # an extra some items lack is dropped
                counts[k] = -1
                continue
            counts[k] = e
            v = torch.stack(items)
            is_wave = v.shape == waveform[s:e].shape
            if is_wave and extras != "waveform":
                if k + "_X" not in extra:
                    extra[k + "_X"] = torch.empty_like(X)
                extra[k + "_X"][s:e] = stft.analyze(v, allow_silent=True)[0]
            if not (is_wave and extras == "spectrum"):
                if k not in extra:
                    extra[k] = torch.empty((n,) + tuple(v.shape[1:]), dtype=v.dtype)
                extra[k][s:e] = v
    bar.close()
    for k in keep:  # drop extras that some items did not have
        if counts.get(k, 0) != n:
            extra.pop(k, None)
            extra.pop(k + "_X", None)
    classes = list(getattr(dataset, "classes", []))
    return SpectrogramSet(waveform, X, P, labels, extra, classes)


def with_phase(data: SpectrogramSet, stft: STFT, batch_size: int = 32) -> SpectrogramSet:
    """``data`` itself when it has its phase, else a copy (sharing the other tensors) whose phase is
    analysed again from its waveforms, ``batch_size`` clips at a time as :func:`to_spectrograms` does
    (so the phase is the one :func:`to_spectrograms` would have kept)."""
    if data.phase is not None:
        return data
    n = len(data)
    P: Optional[Tensor] = None
    for s in range(0, n, batch_size):
        Pb = stft.analyze(data.waveform[s : s + batch_size], allow_silent=True)[1]
        if P is None:
            P = torch.empty((n,) + tuple(Pb.shape[1:]), dtype=Pb.dtype)
        P[s : s + batch_size] = Pb
    return SpectrogramSet(data.waveform, data.X, P, data.y, dict(data.extra), list(data.classes))
