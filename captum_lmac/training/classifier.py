"""Seeded classifier training with early stopping, plus pickle-free classifier checkpoints."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._io import load_checkpoint, load_state_checked, save_checkpoint
from .._validate import check_number, check_positive_int
from ..audio import STFT, LogMel
from ..errors import CheckpointError, InputError
from ..nn.classifier import SpectrogramClassifier
from ..nn.cnn import CNN14, CompactCNN
from ..nn.zoo import ARCHITECTURES, build_architecture

_NETS = {"CompactCNN": CompactCNN, "CNN14": CNN14}


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global generator and return a dedicated generator for data order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def predict(model: nn.Module, X: Tensor, batch_size: int = 16) -> Tensor:
    """Logits of ``model`` on X in eval mode, in batches (small ones keep a CNN's activations in the CPU
    caches). Returns (N, C)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[s : s + batch_size]) for s in range(0, X.shape[0], batch_size)])
    model.train(was_training)
    return out


def accuracy(model: nn.Module, X: Tensor, y: Tensor, batch_size: int = 16) -> float:
    """Top-1 accuracy (fraction) of ``model`` on (X, y)."""
    return float((predict(model, X, batch_size).argmax(1) == y).float().mean())


def _augment(X: Tensor, y1h: Tensor, g: torch.Generator, mixup: float) -> tuple:
    """Random circular time shift (along the last axis), random gain (±6 dB) and mixup of the inputs —
    magnitudes (N, 1, F, T) or waveforms (N, samples)."""
    n, T = X.shape[0], X.shape[-1]
    ones = (1,) * (X.dim() - 1)
    shifts = torch.randint(0, T, (n,), generator=g)
    idx = (torch.arange(T).unsqueeze(0) - shifts.unsqueeze(1)) % T
    X = torch.gather(X, X.dim() - 1, idx.view(n, *ones[:-1], T).expand_as(X))
    X = X * 10 ** (torch.empty(n, *ones).uniform_(-6, 6, generator=g) / 20)
    if mixup > 0 and n > 1:
        lam = torch.distributions.Beta(mixup, mixup).sample((n,)).clamp(0.0, 1.0)
        lam = torch.maximum(lam, 1 - lam)
        perm = torch.randperm(n, generator=g)
        X = lam.view(n, *ones) * X + (1 - lam.view(n, *ones)) * X[perm]
        y1h = lam.view(n, 1) * y1h + (1 - lam.view(n, 1)) * y1h[perm]
    return X, y1h


def train_classifier(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    X_val: Optional[Tensor] = None,
    y_val: Optional[Tensor] = None,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    patience: int = 10,
    augment: bool = True,
    mixup: float = 0.4,
    seed: int = 0,
    progress: bool = True,
) -> Dict[str, List[float]]:
    r"""Train a classifier on spectrogram tensors with Adam; keep the weights of the best validation epoch.

    Args:
        model: Maps X to logits, e.g. a :class:`SpectrogramClassifier` on magnitudes (N, 1, F, T), or
            a waveform model on waveforms (N, samples) (train the model inside a
            :class:`~captum_lmac.WaveformClassifier`, not the wrapper).
        X, y: Training inputs and integer labels.
        X_val, y_val: Validation set for early stopping (optional; without it the last epoch is kept).
        epochs: Maximum epochs. patience: stop after this many epochs without validation gain.
        augment: Random time shift, gain and mixup. seed: Makes the run reproducible.

    Returns:
        dict: per-epoch ``loss``, ``train_acc``, ``val_acc`` and ``best_epoch``, ``seconds``.
    """
    if not torch.is_tensor(X) or not torch.is_tensor(y):
        raise InputError("train_classifier needs tensors X (inputs) and y (integer labels)")
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise InputError(f"X has {X.shape[0]} items but y has {y.shape[0]}")
    if not X.is_floating_point():
        raise InputError(f"training inputs must be floating point, got dtype {X.dtype}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"labels must be integer class indices, got dtype {y.dtype}")
    epochs, batch_size = check_positive_int(epochs, "epochs"), check_positive_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", minimum=0.0, strict_minimum=True)
    if not torch.isfinite(X).all():
        raise InputError("training inputs contain NaN or infinite values")
    g = seed_everything(seed)
    n_classes = int(predict(model, X[:1]).shape[1])
    if int(y.max()) >= n_classes or int(y.min()) < 0:
        raise InputError(f"labels must lie in [0, {n_classes}); got range [{int(y.min())}, {int(y.max())}]")
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    hist: Dict[str, list] = {"loss": [], "train_acc": [], "val_acc": []}
    best, best_state, since_best = -1.0, None, 0
    t0 = time.time()
    bar = tqdm(range(epochs), desc="training classifier", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(X.shape[0], generator=g)
        total, correct, seen = 0.0, 0, 0
        for s in range(0, X.shape[0], batch_size):
            idx = order[s : s + batch_size]
            if len(idx) < 2:
                continue
            xb, yb = X[idx], F.one_hot(y[idx], n_classes).float()
            if augment:
                xb, yb = _augment(xb, yb, g, mixup)
            logits = model(xb)
            loss = torch.sum(-yb * F.log_softmax(logits, 1), 1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb.argmax(1)).sum())
            seen += len(idx)
        sched.step()
        hist["loss"].append(total / max(seen, 1))
        hist["train_acc"].append(correct / max(seen, 1))
        if X_val is not None:
            acc = accuracy(model, X_val, y_val)
            hist["val_acc"].append(acc)
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", val_acc=f"{acc:.3f}")
            if acc > best:
                best, best_state, since_best = acc, copy.deepcopy(model.state_dict()), 0
                hist["best_epoch"] = epoch
            else:
                since_best += 1
                if since_best >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    hist["seconds"] = time.time() - t0
    return hist


def build_classifier(
    n_classes: int,
    stft: Optional[STFT] = None,
    n_mels: int = 80,
    net: str = "CompactCNN",
    **net_kwargs,
) -> SpectrogramClassifier:
    """Build a :class:`SpectrogramClassifier` = LogMel + reference net (``CompactCNN`` or ``CNN14``)."""
    if net not in _NETS:
        raise InputError(f"unknown network {net!r}; choose one of {sorted(_NETS)}")
    stft = stft or STFT()
    return SpectrogramClassifier(LogMel(stft, n_mels=n_mels), _NETS[net](n_classes=n_classes, n_mels=n_mels, **net_kwargs))


def save_classifier(path: Union[str, Path], model: nn.Module, stft: STFT, classes: Sequence[str],
                    info: Optional[dict] = None, architecture: Optional[Dict[str, Any]] = None) -> Path:
    """Save a classifier (weights + everything needed to rebuild it), atomically, pickle-free.

    Handles the reference classifiers (LogMel + CompactCNN / CNN14) and, with ``architecture =
    {"name": ..., "kwargs": {...}}``, every model :func:`captum_lmac.nn.zoo.build_architecture` builds.
    """
    if architecture is not None:
        if architecture.get("name") not in ARCHITECTURES or architecture.get("name") == "torchscript":
            raise InputError(f"unknown architecture {architecture.get('name')!r}; choose one of {sorted(ARCHITECTURES)}")
        meta = {"stft": stft.config(), "architecture": {"name": architecture["name"],
                                                        "kwargs": dict(architecture.get("kwargs") or {})},
                "classes": list(classes), "info": info or {}}
        return save_checkpoint(path, "classifier", model.state_dict(), meta)
    if type(getattr(model, "net", None)).__name__ not in _NETS or not isinstance(getattr(model, "features", None), LogMel):
        raise InputError("save_classifier handles LogMel + CompactCNN/CNN14 models and the zoo architectures "
                         "(architecture=...); save other models with torch.save(state_dict)")
    meta = {
        "stft": stft.config(),
        "features": model.features.config(),
        "net": type(model.net).__name__,
        "net_config": model.net.config(),
        "classes": list(classes),
        "info": info or {},
    }
    return save_checkpoint(path, "classifier", model.state_dict(), meta)


def load_classifier(path: Union[str, Path]) -> tuple:
    """Load a classifier saved by :func:`save_classifier`. Returns ``(model, stft, classes, info)``.

    Raises:
        CheckpointError: besides what :func:`captum_lmac._io.load_checkpoint` checks (version, kind,
            metadata, finite tensors): an unknown network or architecture name (listing the known
            ones), a malformed stored configuration, or weights that do not fit it.
    """
    state, meta = load_checkpoint(path, "classifier", required=("stft", "classes"))
    classes = meta["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{path}: malformed metadata ('classes' must be a list of class names)")
    try:
        if not isinstance(meta["stft"], dict):
            raise TypeError("'stft' is not an object")
        stft = STFT(**meta["stft"])
        if "architecture" in meta:
            arch = meta["architecture"]
            name = arch.get("name") if isinstance(arch, dict) else None
            if name not in ARCHITECTURES or name == "torchscript":
                known = sorted(a for a in ARCHITECTURES if a != "torchscript")
                raise CheckpointError(f"{path}: unknown architecture {name!r} in the classifier file; known "
                                      f"architectures: {known}")
            model, arch_info = build_architecture(name, len(classes), stft, **(arch.get("kwargs") or {}))
            info = {**arch_info, **(meta.get("info") or {})}
        else:
            for key in ("net", "net_config", "features"):
                if key not in meta:
                    raise CheckpointError(f"{path}: malformed metadata: it lacks {key!r} (and has no 'architecture')")
            if meta["net"] not in _NETS:
                raise CheckpointError(f"{path}: unknown network {meta['net']!r} in the classifier file; known "
                                      f"networks: {sorted(_NETS)} (and the architectures {sorted(ARCHITECTURES)})")
            net = _NETS[meta["net"]](**meta["net_config"])
            model = SpectrogramClassifier(LogMel(stft, **meta["features"]), net)
            info = meta.get("info") or {}
    except CheckpointError:
        raise
    except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed stored configuration: {exc!r}") from None
    load_state_checked(model, state, str(path))
    model.eval()
    return model, stft, classes, info
