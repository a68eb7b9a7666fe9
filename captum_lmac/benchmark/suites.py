"""Benchmark suites: their data splits and their (cached) reference classifiers.

A *suite* names a data set with fixed train / validation / test splits and a recipe for the
compact reference classifier explained in the benchmarks:

- ``"synthetic"`` — :class:`~captum_lmac.data.SyntheticEvents` (no files needed): train 800 items
  (seed 0), validation 200 (seed 1), test 400 (seed 2); clips carry their clean event.
- ``"esc10"`` — ESC-10 in the ESC-50 layout (``<data root>/esc10``): folds 1-3 train, fold 4
  validation, fold 5 test.
- ``"fsdd"`` — Free Spoken Digit Dataset (``<data root>/fsdd``): the conventional split (takes 0-4
  test); takes 5-9 of every speaker and digit (300 clips, 11 % of the training takes, stratified by
  speaker and digit) are held out for validation, takes 10-49 train.

:func:`load_suite_data` builds the in-memory :class:`~captum_lmac.data.SpectrogramSet` splits;
:func:`get_classifier` loads ``<cache_dir>/<suite>.pt`` or trains and saves it (with
``<suite>.json`` holding accuracies and CPU training time).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset

from .._io import atomic_write
from ..audio import STFT
from ..data.folders import ESC50, FSDD, default_data_root
from ..data.synthetic import SyntheticEvents
from ..data.tensors import SpectrogramSet, to_spectrograms
from ..errors import CheckpointError, InputError
from ..train import accuracy, build_classifier, load_classifier, save_classifier, train_classifier

PathLike = Union[str, Path]

#: Suite names.
SUITES = ("synthetic", "esc10", "fsdd")

#: The reference STFT (SpeechBrain L-MAC recipe at 16 kHz).
STFT_DEFAULTS = dict(sample_rate=16000, n_fft=1024, hop_length=186, win_length=372, window="hamming")

#: Training recipe of each suite's reference classifier (``build_classifier`` + ``train_classifier``).
#: ``channels`` / ``dropout`` go to :class:`~captum_lmac.nn.CompactCNN`; the rest to
#: :func:`~captum_lmac.train.train_classifier`.
TRAIN_CONFIGS: Dict[str, dict] = {
    "synthetic": dict(channels=(8, 16, 32, 64), n_mels=80, epochs=10, batch_size=32, lr=2e-3,
                      weight_decay=1e-4, patience=5, mixup=0.4, augment=True),
    "esc10": dict(channels=(8, 16, 32, 64), n_mels=80, epochs=25, batch_size=16, lr=2e-3,
                  weight_decay=1e-4, patience=20, mixup=0.4, augment=True),
    "fsdd": dict(channels=(8, 16, 32, 64), n_mels=80, epochs=15, batch_size=32, lr=2e-3,
                 weight_decay=1e-4, patience=5, mixup=0.2, augment=True),
}

#: FSDD takes held out of the training split for validation.
FSDD_VAL_TAKES = tuple(range(5, 10))

_NET_KEYS = ("channels", "dropout")
_TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "mixup", "augment")


def _check_name(name: str) -> str:
    if name not in SUITES:
        raise InputError(f"unknown suite {name!r}; choose one of {list(SUITES)}")
    return name


def suite_datasets(name: str, data_root: Optional[PathLike] = None, sample_rate: int = 16000) -> Dict[str, Dataset]:
    """The waveform data sets ``{"train", "val", "test"}`` of a suite.

    Args:
        name (str): ``"synthetic"``, ``"esc10"`` or ``"fsdd"``.
        data_root (path, optional): Folder holding ``esc10/`` and ``fsdd/`` (default
            :func:`~captum_lmac.data.default_data_root`); unused by ``"synthetic"``.
        sample_rate (int): Sample rate of the returned audio.

    Raises:
        DataNotFoundError: when the suite's folder is missing.
    """
    _check_name(name)
    root = Path(data_root) if data_root is not None else default_data_root()
    if name == "synthetic":
        kw = dict(sample_rate=sample_rate)
        return {
            "train": SyntheticEvents(800, seed=0, **kw),
            "val": SyntheticEvents(200, seed=1, **kw),
            "test": SyntheticEvents(400, seed=2, **kw),
        }
    if name == "esc10":
        kw = dict(sample_rate=sample_rate)
        return {
            "train": ESC50(root / "esc10", folds=[1, 2, 3], **kw),
            "val": ESC50(root / "esc10", folds=[4], **kw),
            "test": ESC50(root / "esc10", folds=[5], **kw),
        }
    kw = dict(sample_rate=sample_rate)
    train_takes = [t for t in range(5, 50) if t not in FSDD_VAL_TAKES]
    return {
        "train": FSDD(root / "fsdd", "train", takes=train_takes, **kw),
        "val": FSDD(root / "fsdd", "train", takes=list(FSDD_VAL_TAKES), **kw),
        "test": FSDD(root / "fsdd", "test", **kw),
    }


def load_suite_data(
    name: str,
    stft: Optional[STFT] = None,
    data_root: Optional[PathLike] = None,
    keep: Sequence[str] = ("clean", "interferer", "background"),
    splits: Sequence[str] = ("train", "val", "test"),
    progress: bool = True,
) -> Dict[str, SpectrogramSet]:
    """Read a suite's splits into memory as spectrograms.

    Args:
        name (str): Suite name (see :data:`SUITES`).
        stft (STFT, optional): Analysis to use (default: the reference STFT, :data:`STFT_DEFAULTS`).
        data_root (path, optional): Data root (default :func:`~captum_lmac.data.default_data_root`).
        keep (sequence of str): Meta entries to keep in ``extra`` (e.g. the synthetic ``clean``
            event); pass ``()`` to save memory when only training a classifier.
        splits (sequence of str): Which of ``"train"``, ``"val"``, ``"test"`` to load.
        progress (bool): Show tqdm progress.

    Returns:
        dict: split name → :class:`~captum_lmac.data.SpectrogramSet`.

    Examples::

        >>> data = load_suite_data("synthetic", splits=["test"])
        >>> data["test"].X.shape
        torch.Size([400, 1, 513, 130])
    """
    stft = stft or STFT(**STFT_DEFAULTS)
    sets = suite_datasets(name, data_root, sample_rate=stft.sample_rate)
    out = {}
    for split in splits:
        if split not in sets:
            raise InputError(f"unknown split {split!r}; choose from {sorted(sets)}")
        out[split] = to_spectrograms(sets[split], stft, keep=keep, progress=progress)
    return out


def classifier_paths(name: str, cache_dir: PathLike) -> Tuple[Path, Path]:
    """``(<cache_dir>/<name>.pt, <cache_dir>/<name>.json)``."""
    cache_dir = Path(cache_dir)
    return cache_dir / f"{name}.pt", cache_dir / f"{name}.json"


def train_suite_classifier(
    name: str,
    data: Dict[str, SpectrogramSet],
    stft: Optional[STFT] = None,
    seed: int = 0,
    progress: bool = True,
    **overrides,
) -> Tuple[torch.nn.Module, dict]:
    """Train a suite's reference classifier on ``data`` (train / val / test) with its recipe.

    ``overrides`` replace entries of :data:`TRAIN_CONFIGS` (e.g. ``epochs=5``, ``channels=(32, 64,
    128, 256)``). Returns ``(model, info)`` with validation/test accuracy and the CPU training
    time in ``info``.
    """
    _check_name(name)
    cfg = dict(TRAIN_CONFIGS[name])
    unknown = set(overrides) - set(cfg) - set(_NET_KEYS)
    if unknown:
        raise InputError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(set(cfg) | set(_NET_KEYS))}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    stft = stft or STFT(**STFT_DEFAULTS)
    train, val, test = data["train"], data.get("val"), data.get("test")
    classes = list(train.classes)
    torch.manual_seed(seed)
    net_kwargs = {k: cfg[k] for k in _NET_KEYS if k in cfg}
    model = build_classifier(len(classes), stft, n_mels=cfg["n_mels"], **net_kwargs)
    train_kwargs = {k: cfg[k] for k in _TRAIN_KEYS}
    t0, cpu0 = time.time(), time.process_time()
    hist = train_classifier(
        model, train.X, train.y,
        val.X if val is not None else None, val.y if val is not None else None,
        seed=seed, progress=progress, **train_kwargs,
    )
    wall, cpu = time.time() - t0, time.process_time() - cpu0
    info = {
        "suite": name,
        "seed": int(seed),
        "classes": classes,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "n_train": len(train),
        "n_val": len(val) if val is not None else 0,
        "n_test": len(test) if test is not None else 0,
        "epochs_run": len(hist["loss"]),
        "best_epoch": int(hist.get("best_epoch", len(hist["loss"]) - 1)),
        "history": {k: [round(float(x), 5) for x in hist[k]] for k in ("loss", "train_acc", "val_acc")},
        "train_seconds": round(wall, 2),
        "train_cpu_seconds": round(cpu, 2),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.machine(),
    }
    info["val_acc"] = round(accuracy(model, val.X, val.y), 5) if val is not None else None
    info["test_acc"] = round(accuracy(model, test.X, test.y), 5) if test is not None else None
    return model, info


def get_classifier(
    name: str,
    cache_dir: PathLike = "cache/classifiers",
    data: Optional[Dict[str, SpectrogramSet]] = None,
    seed: int = 0,
    epochs: Optional[int] = None,
    data_root: Optional[PathLike] = None,
    retrain: bool = False,
    progress: bool = True,
    stft: Optional[STFT] = None,
    **overrides,
) -> Tuple[torch.nn.Module, STFT, list, dict]:
    """A suite's reference classifier: loaded from ``<cache_dir>/<name>.pt``, or trained and saved there.

    When training, ``<cache_dir>/<name>.json`` receives the accuracies, training time and recipe.

    Args:
        name (str): Suite name (see :data:`SUITES`).
        cache_dir (path): Folder of cached classifiers.
        data (dict, optional): Pre-loaded :func:`load_suite_data` splits (loaded if needed).
        seed (int): Training seed.
        epochs (int, optional): Maximum epochs (default: the suite recipe).
        data_root (path, optional): Data root for loading the suite.
        retrain (bool): Train even if a cached classifier exists (and overwrite it).
        progress (bool): Show progress bars.
        stft (STFT, optional): Analysis for a newly trained classifier (default: the reference
            STFT); must be the one ``data`` was computed with. A cached classifier keeps its own.
        **overrides: Other recipe entries (see :data:`TRAIN_CONFIGS`).

    Returns:
        tuple: ``(model, stft, classes, info)``; the model is in eval mode.

    Examples::

        >>> model, stft, classes, info = get_classifier("synthetic", "cache/classifiers")
        >>> info["test_acc"] > 0.9
        True
    """
    _check_name(name)
    pt, js = classifier_paths(name, cache_dir)
    if pt.is_file() and not retrain:
        model, stft, classes, info = load_classifier(pt)
        if info.get("suite", name) != name:
            raise CheckpointError(f"{pt} holds a classifier for suite {info.get('suite')!r}, not {name!r}")
        return model, stft, classes, info
    stft = stft or STFT(**STFT_DEFAULTS)
    t0 = time.time()
    if data is None:
        data = load_suite_data(name, stft, data_root, keep=(), progress=progress)
    data_seconds = time.time() - t0
    model, info = train_suite_classifier(name, data, stft, seed=seed, progress=progress, epochs=epochs, **overrides)
    info["data_seconds"] = round(data_seconds, 2)
    classes = info["classes"]
    save_classifier(pt, model, stft, classes, info)
    report = {k: v for k, v in info.items() if k != "history"}
    report["history"] = info["history"]
    report["checkpoint"] = str(pt)
    atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    model.eval()
    return model, stft, classes, info
