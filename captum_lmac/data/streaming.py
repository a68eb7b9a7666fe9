r"""Training data computed on the fly: clips read lazily from any reader, STFT per item, batches for ``fit``.

Every learned method's ``fit`` accepts, next to in-memory tensors, a :class:`StreamingSpectrograms`:
a re-iterable source of :class:`~captum_lmac.attr._learned.Batch` objects whose clips are read from
disk (or generated) one by one, analysed with the STFT in the loading process (``num_workers``
worker processes with a ``torch.utils.data.DataLoader``), cropped to a fixed clip length (seeded
random crops, different every epoch and reproducible) and zero-padded with a per-frame validity mask
when shorter. Nothing holds the whole data set: the memory of a fit does not grow with its size.

The batch order of an epoch is drawn from the fit loop's generator exactly like for an in-memory
tensor (one ``randperm`` per epoch), so with the reader's own cropping rule (``clip_seconds=None``,
``crop=None``) a streaming fit sees the very same batches as ``fit(to_spectrograms(reader, stft))``.

Under ``torchrun`` the fit loop calls :meth:`StreamingSpectrograms.shard`: rank ``r`` then reads
only its rows of every global batch (see :mod:`captum_lmac.distributed`).

Examples::

    >>> train = ESC50(default_data_root() / "esc10", folds=[1, 2, 3])
    >>> stream = StreamingSpectrograms(train, stft, clip_seconds=4.0, crop="random", num_workers=2)
    >>> lmac.fit(stream, epochs=10, batch_size=16)         # nothing but one batch per worker in memory
    >>> for batch in stream:                               # or iterate it yourself (in order)
    ...     batch.X.shape, batch.valid.shape               # (B, 1, F, T), (B, T)
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..audio import STFT
from ..distributed import shard_rows
from ..errors import InputError
from .batch import Batch

_CROPS = ("random", "start", "center", "end")
_PADS = ("end", "center", "start")

#: Captions of a clip from its label and metadata (LMAC-ZS), or None.
CaptionFn = Callable[[int, Dict[str, Any]], Sequence[str]]


def valid_frames(stft: STFT, n_samples: int, start: int, stop: int) -> Tensor:
    """(T,) bool: STFT frames of an ``n_samples`` clip whose centre lies within half a hop of the real
    audio ``[start, stop)`` (every frame of an unpadded clip is valid; frames centred in zero padding are not)."""
    T = stft.n_frames(n_samples)
    centres = torch.arange(T) * stft.hop_length + (0 if stft.center else stft.n_fft // 2)
    half = stft.hop_length // 2
    return (centres >= start - half) & (centres < max(stop, start + 1) + half)


class ClipSpectrograms(Dataset):
    r"""Item ``i`` (or ``(i, epoch)``) of a ``(waveform, label, meta)`` reader as a spectrogram dict.

    Keys: ``X``, ``phase`` (1, F, T); ``length`` (samples); ``valid`` (T,) bool; ``label``;
    ``index``; ``clean_X`` when ``meta["clean"]`` is a waveform (L-MAC fine-tuning pairs, cropped
    like the clip); ``captions`` with a caption function.

    Args:
        reader (Dataset): Items ``(waveform (samples,), label, meta)``; a reader with ``raw(i)``
            (the folder readers) is read at the file's own length and cropped here.
        stft (STFT): The analysis.
        clip_seconds (float, optional): Clip length. None: the reader's own length (its
            ``duration``, or the item's length for readers without one).
        crop (str, optional): How a longer clip is cut: ``"random"`` (seeded by ``seed``, the
            epoch and the item: different every epoch, reproducible), ``"start"``, ``"center"``,
            ``"end"``. None: the reader's own rule (e.g. start for ESC-50, centre for FSDD).
        pad (str, optional): Where a shorter clip gets zeros: ``"end"``, ``"center"``, ``"start"``
            (None: the reader's rule, else ``"end"``). Padded frames are False in ``valid``.
        seed (int): Seed of the random crops.
        keep_clean (bool): Analyse ``meta["clean"]`` into ``clean_X``.
        captions (callable, optional): ``captions(label, meta) -> list of str``.
    """

    def __init__(self, reader: Dataset, stft: STFT, clip_seconds: Optional[float] = None, crop: Optional[str] = None,
                 pad: Optional[str] = None, seed: int = 0, keep_clean: bool = True,
                 captions: Optional[CaptionFn] = None) -> None:
        if not isinstance(stft, STFT):
            raise InputError(f"stft must be a captum_lmac.STFT, got {type(stft).__name__}")
        if crop is not None and crop not in _CROPS:
            raise InputError(f"crop must be one of {', '.join(_CROPS)} or None (the reader's rule), got {crop!r}")
        if pad is not None and pad not in _PADS:
            raise InputError(f"pad must be one of {', '.join(_PADS)} or None, got {pad!r}")
        if clip_seconds is not None and not (isinstance(clip_seconds, (int, float)) and clip_seconds > 0):
            raise InputError(f"clip_seconds must be a positive number of seconds or None, got {clip_seconds!r}")
        rate = getattr(reader, "sample_rate", None)
        if rate is not None and int(rate) != stft.sample_rate:
            raise InputError(f"the reader gives {rate} Hz audio but the STFT expects {stft.sample_rate} Hz; "
                             f"build the reader with sample_rate={stft.sample_rate}")
        self.reader = reader
        self.stft = stft
        self.seed = int(seed)
        self.keep_clean = bool(keep_clean)
        self.captions = captions
        own = getattr(reader, "n_samples", None)
        self.n_samples = (int(round(float(clip_seconds) * stft.sample_rate)) if clip_seconds is not None
                          else (int(own) if own else None))
        self._raw = callable(getattr(reader, "raw", None))
        self.crop = crop or (getattr(reader, "crop", None) if self._raw else None) or "start"
        self.pad = pad or (getattr(reader, "pad", None) if self._raw else None) or "end"

    def __len__(self) -> int:
        return len(self.reader)

    def _offset(self, n: int, index: int, epoch: int) -> int:
        excess = n - self.n_samples
        if self.crop == "random":
            return int(np.random.default_rng([self.seed, int(epoch), int(index)]).integers(0, excess + 1))
        return {"start": 0, "center": excess // 2, "end": excess}[self.crop]

    def _cut(self, wave: Tensor, offset: int) -> Tuple[Tensor, int, int]:
        """Crop at ``offset`` or pad to ``n_samples``; returns (waveform, first, stop) of the real audio."""
        n, m = wave.shape[-1], self.n_samples
        if n >= m:
            return wave[offset : offset + m], 0, m
        missing = m - n
        before = {"end": 0, "center": missing // 2, "start": missing}[self.pad]
        return torch.nn.functional.pad(wave, (before, missing - before)), before, before + n

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Dict[str, Any]:
        i, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), 0)
        wave, label, meta = self.reader.raw(i) if self._raw else self.reader[i]
        wave = torch.as_tensor(wave).float().reshape(-1)
        meta = dict(meta) if isinstance(meta, dict) else {}
        clean = meta.get("clean") if self.keep_clean else None
        clean = clean.float().reshape(-1) if torch.is_tensor(clean) and clean.numel() == wave.numel() else None
        if self.n_samples is None:
            start, stop = 0, wave.shape[-1]
        else:
            off = self._offset(wave.shape[-1], i, epoch) if wave.shape[-1] > self.n_samples else 0
            wave, start, stop = self._cut(wave, off)
            if clean is not None:
                clean = self._cut(clean, off)[0]
        X, P = self.stft.analyze(wave.unsqueeze(0), allow_silent=True)
        item: Dict[str, Any] = {"X": X[0], "phase": P[0], "length": int(wave.shape[-1]), "label": int(label),
                                "index": i, "valid": valid_frames(self.stft, wave.shape[-1], start, stop)}
        if clean is not None:
            item["clean_X"] = self.stft.analyze(clean.unsqueeze(0), allow_silent=True)[0][0]
        if self.captions is not None:
            item["captions"] = list(self.captions(int(label), meta))
        elif "captions" in meta:
            item["captions"] = list(meta["captions"])
        return item


class CollateBatch:
    """``DataLoader`` collate: a list of :class:`ClipSpectrograms` items → one :class:`Batch`.

    ``transform(batch) -> batch`` (optional) runs afterwards, in the loading process (e.g. the
    classifier's own features for the feature domain, :class:`FeatureTransform`).
    """

    def __init__(self, transform: Optional[Callable[[Batch], Batch]] = None) -> None:
        self.transform = transform

    def __call__(self, items: List[Dict[str, Any]]) -> Batch:
        if not items:
            raise InputError("cannot collate an empty batch")
        lengths = {it["length"] for it in items}
        if len(lengths) != 1:
            raise InputError(f"clips of one batch have different lengths {sorted(lengths)[:4]}; give clip_seconds "
                             "so every clip is cropped / padded to one duration")
        clean = [it.get("clean_X") for it in items]
        batch = Batch(
            X=torch.stack([it["X"] for it in items]),
            clean=torch.stack(clean) if all(c is not None for c in clean) else None,
            phase=torch.stack([it["phase"] for it in items]),
            length=int(lengths.pop()),
            valid=torch.stack([it["valid"] for it in items]),
            labels=torch.tensor([it["label"] for it in items]),
            captions=[it["captions"] for it in items] if all("captions" in it for it in items) else None,
            index=torch.tensor([it["index"] for it in items]),
        )
        return self.transform(batch) if self.transform is not None else batch


class FeatureTransform:
    """Batch transform into a classifier's own feature domain: ``X ← features(X)`` (and the clean
    part likewise), no phase (the feature-domain model does not need one). Runs without gradients."""

    def __init__(self, features: Callable[[Tensor], Tensor]) -> None:
        self.features = features

    def __call__(self, batch: Batch) -> Batch:
        with torch.no_grad():  # contiguous, as a slice of an in-memory tensor would be (same numerics)
            X = self.features(batch.X).contiguous()
            clean = self.features(batch.clean).contiguous() if batch.clean is not None else None
        valid = batch.valid if batch.valid is not None and batch.valid.shape[-1] == X.shape[-1] else None
        return Batch(X, clean, None, None, None, valid, batch.labels, batch.captions, batch.index)


class StreamingSpectrograms:
    r"""A training set for ``fit`` computed on the fly, batch by batch (see the module documentation).

    Args:
        reader (Dataset): Items ``(waveform, label, meta)`` — :class:`~captum_lmac.data.ESC50`,
            :class:`~captum_lmac.data.UrbanSound8K`, :class:`~captum_lmac.data.FSDD`,
            :class:`~captum_lmac.data.AudioFolder`, :class:`~captum_lmac.data.WhamMixtures`
            (fine-tuning pairs: ``meta["clean"]`` becomes ``Batch.clean``), any Dataset of that form.
        stft (STFT): The analysis (its sample rate must be the reader's).
        clip_seconds, crop, pad, seed, keep_clean, captions: See :class:`ClipSpectrograms`.
        num_workers (int): Worker processes reading and analysing clips (0: in this process).
        index (sequence of int, optional): The reader's items to use (default: all), in this order.
        transform (callable, optional): Applied to every collated :class:`Batch` in the loading
            process (e.g. :class:`FeatureTransform`).
        batch_size (int): Batch size when iterated directly (``for batch in stream``); ``fit``
            uses its own ``batch_size``.
        prefetch_factor (int): Batches loaded ahead per worker.
        pin_memory (bool): Page-locked batches (faster copies to a GPU).
        device (str or torch.device, optional): Move every batch there (the fit loop sets it to
            the classifier's device).

    Attributes:
        rank, world_size: The shard this view reads (set by :meth:`shard`).
        epoch: The epoch of the next pass (set by the fit loop with :meth:`set_epoch`; drives
            the random crops).
    """

    def __init__(self, reader: Dataset, stft: STFT, clip_seconds: Optional[float] = None, crop: Optional[str] = None,
                 pad: Optional[str] = None, seed: int = 0, num_workers: int = 0,
                 index: Optional[Sequence[int]] = None, keep_clean: bool = True, captions: Optional[CaptionFn] = None,
                 transform: Optional[Callable[[Batch], Batch]] = None, batch_size: int = 16, prefetch_factor: int = 2,
                 pin_memory: bool = False, device: Optional[Union[str, torch.device]] = None) -> None:
        if int(num_workers) < 0:
            raise InputError(f"num_workers must be >= 0, got {num_workers}")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.clips = ClipSpectrograms(reader, stft, clip_seconds, crop, pad, seed, keep_clean, captions)
        n = len(reader)
        self.index = list(range(n)) if index is None else [int(i) for i in index]
        bad = [i for i in self.index if not 0 <= i < n]
        if bad:
            raise InputError(f"index {bad[0]} out of range for a reader of {n} items")
        if not self.index:
            raise InputError("the streaming data set is empty (no items selected)")
        self.num_workers = int(num_workers)
        self.transform = transform
        self.batch_size = int(batch_size)
        self.prefetch_factor = int(prefetch_factor)
        self.pin_memory = bool(pin_memory)
        self.device = torch.device(device) if device is not None else None
        self.rank, self.world_size = 0, 1
        self.epoch = 0
        self._skip = 0

    # ------------------------------------------------------------------ what it holds
    def __len__(self) -> int:
        return len(self.index)

    @property
    def reader(self) -> Dataset:
        return self.clips.reader

    @property
    def stft(self) -> STFT:
        return self.clips.stft

    @property
    def classes(self) -> List[str]:
        return list(getattr(self.reader, "classes", []) or [])

    @property
    def labels(self) -> List[int]:
        """Labels of the selected items (from the reader's ``labels`` without reading audio, else by reading)."""
        labels = getattr(self.reader, "labels", None)
        if labels is not None:
            return [int(labels[i]) for i in self.index]
        return [int(self.reader[i][1]) for i in self.index]

    def __repr__(self) -> str:
        shard = f", rank {self.rank}/{self.world_size}" if self.world_size > 1 else ""
        secs = (f"{self.clips.n_samples / self.stft.sample_rate:g} s" if self.clips.n_samples else "own length")
        return (f"StreamingSpectrograms({len(self)} clips of {type(self.reader).__name__}, {secs}, crop "
                f"{self.clips.crop}, {self.num_workers} workers{shard})")

    # ------------------------------------------------------------------ views
    def _copy(self, **changes: Any) -> "StreamingSpectrograms":
        other = copy.copy(self)
        for k, v in changes.items():
            setattr(other, k, v)
        other._skip = 0
        return other

    def subset(self, positions: Sequence[int]) -> "StreamingSpectrograms":
        """The clips at ``positions`` of this set (positions into :attr:`index`), e.g. the first ``n``."""
        positions = [int(p) for p in positions]
        bad = [p for p in positions if not 0 <= p < len(self)]
        if bad:
            raise InputError(f"position {bad[0]} out of range for {len(self)} clips")
        if not positions:
            raise InputError("subset: no clips selected")
        return self._copy(index=[self.index[p] for p in positions])

    def with_transform(self, transform: Optional[Callable[[Batch], Batch]]) -> "StreamingSpectrograms":
        """The same clips with another batch transform (e.g. :class:`FeatureTransform`)."""
        return self._copy(transform=transform)

    def shard(self, rank: int, world_size: int) -> "StreamingSpectrograms":
        """A view that reads only rank ``rank``'s rows of every global batch (of ``world_size`` ranks)."""
        if not 0 <= int(rank) < int(world_size):
            raise InputError(f"rank {rank} out of range for world size {world_size}")
        return self._copy(rank=int(rank), world_size=int(world_size))

    def unsharded(self) -> "StreamingSpectrograms":
        """All clips, whatever shard this view reads (e.g. to learn L2I's dictionary identically on every rank)."""
        return self._copy(rank=0, world_size=1)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass (random crops depend on it)."""
        self.epoch = int(epoch)

    def resume_at(self, batches_done: int) -> None:
        """Skip the first ``batches_done`` global batches of the next :meth:`fit_batches` pass (resuming
        a fit in the middle of an epoch, without reading the skipped clips)."""
        self._skip = max(0, int(batches_done))

    # ------------------------------------------------------------------ iteration
    def _loader(self, keys: List[List[Tuple[int, int]]]) -> Iterator[Batch]:
        if not keys:
            return iter(())
        kwargs: Dict[str, Any] = {}
        if self.num_workers > 0:
            kwargs = {"prefetch_factor": self.prefetch_factor}
        # its own generator: creating a loader iterator draws a seed, which must not move the global RNG
        # (the fit loop seeds the decoder's initialisation with it)
        own = torch.Generator().manual_seed(self.clips.seed * 1_000_003 + self.epoch)
        loader = DataLoader(self.clips, batch_sampler=keys, num_workers=self.num_workers, generator=own,
                            collate_fn=CollateBatch(self.transform), pin_memory=self.pin_memory, **kwargs)
        return iter(loader)

    def _to_device(self, batch: Batch) -> Batch:
        return batch.to(self.device) if self.device is not None else batch

    def fit_batches(self, batch_size: int, generator: Optional[torch.Generator] = None,
                    shuffle: bool = True) -> Iterator[Batch]:
        """One epoch of training batches, as the fit loop asks for them.

        The order is ``torch.randperm(len(self), generator=generator)`` split into ``batch_size``
        global batches (exactly as for an in-memory tensor); a sharded view yields its rows of each
        (every :class:`Batch` carries ``global_size``). Under sharding, a trailing global batch with
        fewer clips than ranks is dropped (no rank may get an empty batch).
        """
        batch_size = int(batch_size)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        skip, self._skip = self._skip, 0
        globals_ = [order[s : s + batch_size] for s in range(0, n, batch_size)][skip:]
        if self.world_size > 1:
            globals_ = [g for g in globals_ if g.numel() >= self.world_size]
        local = [g[shard_rows(g.numel(), self.rank, self.world_size)] for g in globals_]
        keys = [[(self.index[int(p)], self.epoch) for p in part] for part in local]
        for g, batch in zip(globals_, self._loader(keys)):
            batch.global_size = int(g.numel())
            yield self._to_device(batch)

    def __iter__(self) -> Iterator[Batch]:
        """Every clip once, in order, in batches of :attr:`batch_size` (not sharded, epoch unchanged)."""
        n = len(self)
        keys = [[(self.index[p], self.epoch) for p in range(s, min(n, s + self.batch_size))]
                for s in range(0, n, self.batch_size)]
        for batch in self._loader(keys):
            yield self._to_device(batch)

    def first_batch(self, n: int = 1) -> Batch:
        """The first ``n`` clips as one batch, read in this process (for shape checks and set-up)."""
        items = [self.clips[(self.index[p], self.epoch)] for p in range(min(int(n), len(self)))]
        return self._to_device(CollateBatch(self.transform)(items))

    def frames(self, max_frames: int, seed: int = 0, batch_size: int = 32) -> Tensor:
        """Up to ``max_frames`` valid STFT frames (F, M) of the whole set (all shards), a seeded
        uniform subsample when there are more: what dictionary learning (L2I) reads, in bounded memory."""
        src = self.unsharded()
        T = int(src.first_batch(1).X.shape[-1])
        estimate = max(1, len(src) * T)
        keep_p = min(1.0, float(max_frames) / estimate)
        g = torch.Generator().manual_seed(int(seed))
        parts, have = [], 0
        src.batch_size = int(batch_size)
        for batch in src:
            X = batch.X.detach().to("cpu").float()
            if X.dim() != 4 or X.shape[1] != 1:
                raise InputError(f"streaming batches must be (B, 1, F, T), got {tuple(X.shape)}")
            cols = X[:, 0].permute(1, 0, 2).reshape(X.shape[2], -1)  # (F, B·T)
            valid = batch.valid.reshape(-1) if batch.valid is not None else torch.ones(cols.shape[1], dtype=torch.bool)
            if keep_p < 1.0:
                valid = valid & (torch.rand(valid.shape[0], generator=g) < keep_p)
            parts.append(cols[:, valid])
            have += int(valid.sum())
            if have >= max_frames:
                break
        if not parts or have == 0:
            raise InputError("the streaming data set has no valid frames")
        return torch.cat(parts, dim=1)[:, : int(max_frames)]


class LabelCaptions:
    """A picklable caption function for :class:`StreamingSpectrograms`: ``fn(classes[label])``
    (e.g. :func:`captum_lmac.data.captions.esc10_captions`), or the clip's ``meta["captions"]``."""

    def __init__(self, classes: Sequence[str], fn: Callable[[str], Sequence[str]]) -> None:
        self.classes = list(classes)
        self.fn = fn

    def __call__(self, label: int, meta: Dict[str, Any]) -> List[str]:
        if "captions" in meta:
            return list(meta["captions"])
        if not 0 <= int(label) < len(self.classes):
            raise InputError(f"label {label} has no class name (classes: {len(self.classes)})")
        return list(self.fn(self.classes[int(label)]))


class ConcatReaders(Dataset):
    """Several ``(waveform, label, meta)`` readers as one (e.g. FSDD + ESC-10 to fit one interpreter).

    Labels are offset so that they index the concatenated ``classes``; ``raw(i)`` reads a folder
    reader's item at its own length (for cropping by :class:`StreamingSpectrograms`); ``meta`` gains
    ``part`` (which reader). All readers must share one sample rate.
    """

    def __init__(self, readers: Sequence[Dataset]) -> None:
        readers = list(readers)
        if not readers:
            raise InputError("ConcatReaders needs at least one reader")
        rates = {getattr(r, "sample_rate", None) for r in readers} - {None}
        if len(rates) > 1:
            raise InputError(f"the readers have different sample rates {sorted(rates)}; build them with one sample_rate")
        self.readers = readers
        self.sample_rate = rates.pop() if rates else None
        self.classes: List[str] = []
        self._offsets, self._label_offsets, n = [], [], 0
        for r in readers:
            self._offsets.append(n)
            self._label_offsets.append(len(self.classes))
            self.classes += list(getattr(r, "classes", []) or [])
            n += len(r)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def _locate(self, i: int) -> Tuple[int, int]:
        if not 0 <= int(i) < self._n:
            raise IndexError(f"index {i} out of range for {self._n} items")
        k = max(j for j, o in enumerate(self._offsets) if o <= int(i))
        return k, int(i) - self._offsets[k]

    def _item(self, i: int, raw: bool) -> Tuple[Tensor, int, Dict[str, Any]]:
        k, j = self._locate(i)
        reader = self.readers[k]
        wave, label, meta = reader.raw(j) if raw and callable(getattr(reader, "raw", None)) else reader[j]
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta["part"] = k
        label = int(label)
        return wave, label + self._label_offsets[k] if label >= 0 else label, meta

    def __getitem__(self, i: int) -> Tuple[Tensor, int, Dict[str, Any]]:
        return self._item(i, raw=False)

    def raw(self, i: int) -> Tuple[Tensor, int, Dict[str, Any]]:
        return self._item(i, raw=True)

    @property
    def labels(self) -> List[int]:
        out: List[int] = []
        for r, off in zip(self.readers, self._label_offsets):
            labels = getattr(r, "labels", None)
            labels = labels if labels is not None else [int(r[j][1]) for j in range(len(r))]
            out += [int(v) + off if int(v) >= 0 else int(v) for v in labels]
        return out


def is_stream(data: Any) -> bool:
    """True for batch sources the fit loop iterates with ``fit_batches`` (e.g. :class:`StreamingSpectrograms`)."""
    return callable(getattr(data, "fit_batches", None))


def stream_clips(reader: Dataset, stft: STFT, **kwargs: Any) -> StreamingSpectrograms:
    """Shorthand for :class:`StreamingSpectrograms` ``(reader, stft, **kwargs)``."""
    return StreamingSpectrograms(reader, stft, **kwargs)


__all__ = ["StreamingSpectrograms", "ClipSpectrograms", "CollateBatch", "FeatureTransform", "LabelCaptions", "ConcatReaders",
           "valid_frames", "is_stream", "stream_clips"]
