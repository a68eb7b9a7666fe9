"""A suite's data: the waveform data sets its configuration names, read as in-memory spectrograms."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..audio import STFT
from ..data.contamination import dataset_labels
from ..data.folders import ReaderSubset, default_data_root
from ..data.streaming import StreamingSpectrograms
from ..data.tensors import SpectrogramSet, to_spectrograms
from .conditions import stratified_indices
from .config import READERS, SuiteConfig

PathLike = Union[str, Path]


def suite_datasets(cfg: SuiteConfig, sample_rate: int, data_root: Optional[PathLike] = None) -> Dict[str, Dataset]:
    """The waveform data sets ``{"train", "val", "test"}`` described by ``cfg.data``."""
    d = cfg.data
    cls = READERS[d.reader]
    kwargs = dict(d.kwargs or {})
    if d.reader == "SyntheticEvents":  # generated, no folder: splits give n_items / seed
        return {split: cls(sample_rate=sample_rate, **kwargs, **(spec or {})) for split, spec in d.splits.items()}
    root = Path(data_root) if data_root is not None else default_data_root()
    folder = Path(d.root)
    folder = folder if folder.is_absolute() else root / folder
    return {split: cls(folder, sample_rate=sample_rate, **kwargs, **(spec or {})) for split, spec in d.splits.items()}


def _labels(ds: Dataset) -> Tensor:
    return torch.tensor(dataset_labels(ds))


def train_stream(cfg: SuiteConfig, ds: Dataset, stft: STFT, index: Optional[Sequence[int]] = None,
                 keep_clean: bool = True) -> StreamingSpectrograms:
    """The training clips ``index`` of ``ds`` as a stream with the suite's ``streaming`` settings."""
    st = cfg.streaming
    return StreamingSpectrograms(ds, stft, clip_seconds=st.clip_seconds, crop=st.crop, seed=cfg.seed,
                                 num_workers=st.workers, index=index, keep_clean=keep_clean)


def load_data(cfg: SuiteConfig, stft: STFT, data_root: Optional[PathLike] = None, progress: bool = True,
              full: bool = False, keep_extra: bool = True,
              stream_train: Optional[bool] = None,
              phase_splits: Optional[Sequence[str]] = None) -> Dict[str, Union[SpectrogramSet, StreamingSpectrograms]]:
    """Read a configuration's splits as spectrograms: the stratified ``n_test`` test clips, the first
    ``n_train`` training clips and ``n_val`` validation clips (all clips of every split when ``full``).

    ``keep_extra`` keeps the clean sources and interferers where the data set has them (ground truth).
    The training split is a :class:`~captum_lmac.data.StreamingSpectrograms` (nothing read yet) when
    ``stream_train`` is true, or, by default, when ``cfg.streaming`` says so for its size.

    ``phase_splits`` names the splits that keep their STFT phase (all by default): a classifier without a
    phase input reads the training and validation clips' magnitudes only, and their phase is a third of
    their memory (:func:`~captum_lmac.data.with_phase` computes it again where needed)."""
    sets = suite_datasets(cfg, stft.sample_rate, data_root)
    out: Dict[str, Union[SpectrogramSet, StreamingSpectrograms]] = {}
    limits = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    keep = {"train": ("clean",), "val": (), "test": ("clean", "background", "interferer")}
    for split in ("train", "val", "test"):
        if split not in sets:
            continue
        ds = sets[split]
        n = None if full else limits[split]
        if split == "train":
            n_clips = len(ds) if n is None else min(n, len(ds))
            if stream_train if stream_train is not None else cfg.streaming.applies(n_clips):
                out[split] = train_stream(cfg, ds, stft, range(n_clips), keep_clean=keep_extra)
                continue
        if n is not None and n < len(ds):
            index = stratified_indices(_labels(ds), n) if split == "test" else list(range(n))
            ds = ReaderSubset(ds, index)
        out[split] = to_spectrograms(ds, stft, keep=keep[split] if keep_extra else (), progress=progress,
                                     phase=phase_splits is None or split in phase_splits)
        out[split].classes = list(getattr(sets[split], "classes", []))
    return out


__all__ = ["suite_datasets", "load_data", "train_stream"]
