"""Shared plumbing of the learned-decoder attributions (L-MAC, LMAC-ZS, L2I).

Holds what every method with a ``fit`` step needs: hooking the classifier's layers, freezing the
classifier while the decoder trains, checking inputs and targets the Captum way, iterating over
training batches, and saving/loading with a fingerprint of the classifier.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr import Attribution
from torch import Tensor, nn

from .._io import fingerprint_mismatch, load_checkpoint, model_fingerprint, save_checkpoint
from ..data.tensors import SpectrogramSet
from ..errors import CheckpointError, InputError, NotFittedError
from ._hooks import LayerRecorder, LayerSpec, resolve_layers

TargetType = Union[None, int, Tensor, Sequence[int]]


def unpack_inputs(inputs: Union[Tensor, Tuple[Tensor, ...]], n_freqs: Optional[int] = None) -> Tuple[Tensor, bool]:
    """Accept a tensor or a 1-tuple (Captum style); check it is a finite (N, 1, F, T) batch.

    Returns ``(tensor, was_tuple)``.
    """
    was_tuple = isinstance(inputs, tuple)
    if was_tuple:
        if len(inputs) != 1:
            raise InputError(f"this method explains one input tensor; got a tuple of {len(inputs)}")
        inputs = inputs[0]
    if not torch.is_tensor(inputs):
        raise InputError(f"inputs must be a tensor (N, 1, F, T), got {type(inputs).__name__}")
    if inputs.dim() != 4 or inputs.shape[1] != 1:
        raise InputError(f"inputs must have shape (N, 1, F, T), got {tuple(inputs.shape)}")
    if inputs.shape[0] == 0 or inputs.shape[-1] == 0:
        raise InputError(f"inputs are empty (shape {tuple(inputs.shape)})")
    if n_freqs is not None and inputs.shape[2] != n_freqs:
        raise InputError(
            f"inputs have {inputs.shape[2]} frequency bins but the decoder was fitted on {n_freqs}; "
            "use the same STFT / feature settings as in fit"
        )
    if not torch.isfinite(inputs).all():
        raise InputError("inputs contain NaN or infinite values")
    return inputs, was_tuple


def format_target(target: TargetType, n: int, n_classes: Optional[int] = None) -> Optional[Tensor]:
    """Captum targets → LongTensor (N,) on the CPU, or None for ``target=None``.

    Accepts an int, a 0-d/1-d integer tensor, a list/tuple/range or a numpy array of ints; a single
    value is broadcast to every sample. The one place targets are checked, for every method and
    metric.

    Raises:
        InputError: on a bool or float target, a per-sample list of the wrong length, a negative
            index or (when ``n_classes`` is given) an index ≥ ``n_classes``.
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise InputError("target must be a class index, not a bool")
    if isinstance(target, int):
        t = torch.tensor([target], dtype=torch.long)
    elif torch.is_tensor(target) or isinstance(target, np.ndarray):
        t = torch.as_tensor(target).detach().flatten().cpu()
        if t.is_floating_point() or t.dtype == torch.bool:
            raise InputError("target tensor must hold integer class indices")
        t = t.long()
    elif isinstance(target, (list, tuple, range)):
        if not all(isinstance(v, (int, np.integer)) or (torch.is_tensor(v) and v.numel() == 1) for v in target):
            raise InputError(f"target list must hold one integer class index per sample, got {target!r}")
        t = torch.tensor([int(v) for v in target], dtype=torch.long)
    else:
        raise InputError(f"target must be None, int, tensor or list of ints, got {type(target).__name__}")
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise InputError(f"target has {t.numel()} entries for {n} inputs")
    if bool((t < 0).any()):
        raise InputError(f"unknown target {int(t[t < 0][0])}: target indices must be non-negative")
    if n_classes is not None:
        bad = (t >= n_classes).nonzero().flatten()
        if len(bad):
            raise InputError(f"unknown target {int(t[bad[0]])}: the model has {n_classes} outputs (0..{n_classes - 1})")
    return t


def iterate_batches(
    batches: Any, batch_size: int, generator: torch.Generator, pairs_key: str = "clean_X"
) -> Iterator[Union[Tensor, Tuple[Tensor, ...]]]:
    """One epoch over training data given as a tensor, a tuple of tensors, a SpectrogramSet or an iterable.

    Tensors (and tuples of tensors sharing the first dimension) are shuffled with ``generator`` and
    split into ``batch_size`` chunks; a :class:`SpectrogramSet` yields ``X`` or, when it carries
    ``extra[pairs_key]``, ``(X, extra[pairs_key])`` pairs; any other iterable (list, DataLoader) is
    iterated as it is.
    """
    if isinstance(batches, SpectrogramSet):
        batches = (batches.X, batches.extra[pairs_key]) if pairs_key in batches.extra else batches.X
    if torch.is_tensor(batches):
        batches = (batches,)
    if isinstance(batches, tuple) and batches and all(torch.is_tensor(b) for b in batches):
        n = batches[0].shape[0]
        if any(b.shape[0] != n for b in batches):
            raise InputError(f"paired tensors differ in length: {[b.shape[0] for b in batches]}")
        order = torch.randperm(n, generator=generator)
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            yield batches[0][idx] if len(batches) == 1 else tuple(b[idx] for b in batches)
        return
    yield from batches


def materialise(batches: Any) -> Any:
    """Turn a one-shot iterator into a list so it can be iterated once per epoch."""
    if isinstance(batches, Iterator):
        return list(batches)
    return batches


class LearnedAttribution(Attribution):
    """Base class: a Captum ``Attribution`` whose explainer is trained by ``fit`` on a frozen model.

    Subclasses set ``kind`` and implement ``_config``/``_build`` (and ``fit``/``attribute``).
    """

    kind = "learned"

    def __init__(self, forward_func: nn.Module, layers: Sequence[LayerSpec]) -> None:
        if not isinstance(forward_func, nn.Module):
            raise InputError(
                f"{type(self).__name__} needs the classifier as an nn.Module (its layers are hooked), "
                f"got {type(forward_func).__name__}"
            )
        super().__init__(forward_func)
        self.model: nn.Module = forward_func
        self.layer_modules, self.layer_names = resolve_layers(forward_func, layers)
        self.recorder = LayerRecorder(self.layer_modules)
        self.decoder: Optional[nn.Module] = None
        self.history: Dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def forward_with_features(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Run the classifier on ``x``; return its output and the hooked layers' outputs."""
        with self.recorder.capture() as feats:
            out = self.model(x)
        return out, list(feats)

    @contextmanager
    def frozen_model(self) -> Iterator[None]:
        """Classifier in eval mode with gradients off for its parameters; restored afterwards."""
        was_training = self.model.training
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
            self.model.train(was_training)

    def n_parameters(self) -> int:
        """Trainable parameters of the fitted decoder / interpreter."""
        return sum(p.numel() for p in self._require_fitted().parameters())

    def _record_validation(self, hist: Dict[str, Any], values: Dict[str, float], epoch: int) -> None:
        """Log ``val_*`` values of an epoch; keep the decoder weights of the lowest validation loss."""
        for k, value in values.items():
            hist.setdefault(f"val_{k}", []).append(value)
        if values["loss"] < getattr(self, "_best_val", float("inf")):
            self._best_val = values["loss"]
            self._best_state = {k: t.clone() for k, t in self.decoder.state_dict().items()}
            hist["best_epoch"] = epoch

    def _start_fit(self) -> float:
        """Reset the best-epoch bookkeeping; returns the start time."""
        self._best_val, self._best_state = float("inf"), None
        return time.time()

    def _finish_fit(self, hist: Dict[str, Any], epochs: int, t0: float) -> Dict[str, Any]:
        """Restore the best validation epoch (else keep the last), set eval mode, record time and size."""
        if self._best_state is not None:
            self.decoder.load_state_dict(self._best_state)
        else:
            hist["best_epoch"] = int(epochs) - 1
        self._best_val, self._best_state = float("inf"), None
        self.decoder.eval()
        hist["seconds"] = time.time() - t0
        hist["decoder_parameters"] = self.n_parameters()
        self.history = hist
        return hist

    def _require_fitted(self) -> nn.Module:
        if self.decoder is None:
            raise NotFittedError(f"{type(self).__name__} has no trained decoder: call fit(...) or load(...) first")
        return self.decoder

    # ------------------------------------------------------------------ persistence
    def _config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _build(self, config: Dict[str, Any]) -> None:
        raise NotImplementedError

    def _state(self) -> Dict[str, Tensor]:
        return {f"decoder.{k}": v for k, v in self._require_fitted().state_dict().items()}

    def _load_state(self, state: Dict[str, Tensor]) -> None:
        self.decoder.load_state_dict({k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")})

    def save(self, path: Union[str, Path]) -> Path:
        """Save the fitted explainer (weights, configuration, history, classifier fingerprint).

        The file is written atomically and loads with ``torch.load(weights_only=True)``.
        """
        self._require_fitted()
        meta = {
            "config": self._config(),
            "layers": self.layer_names,
            "fingerprint": model_fingerprint(self.model),
            "history": self.history,
        }
        return save_checkpoint(path, self.kind, self._state(), meta)

    @classmethod
    def load(cls, path: Union[str, Path], model: nn.Module, layers: Optional[Sequence[LayerSpec]] = None, **kwargs):
        """Load an explainer saved by :meth:`save` for ``model``.

        Args:
            path: The checkpoint.
            model: The classifier it explains; refused if it is not the one it was fitted for.
            layers: The hooked layers (default: the names stored in the checkpoint).
        """
        state, meta = load_checkpoint(path, cls.kind)
        reason = fingerprint_mismatch(meta["fingerprint"], model)
        if reason:
            raise CheckpointError(f"{path} was fitted for a different classifier: {reason}")
        obj = cls(model, layers if layers is not None else meta["layers"], **{**meta["config"].get("init", {}), **kwargs})
        obj._build(meta["config"])
        try:
            obj._load_state(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: stored weights do not fit the stored configuration: {exc}") from None
        obj.history = meta.get("history", {})
        return obj
