"""The base class of the learned-decoder attributions (L-MAC, LMAC-ZS, L2I) and its helpers.

:class:`LearnedAttribution` runs the pipeline every method with a ``fit`` step shares — hooking the
classifier's layers, the one training loop (seeding, batching, progress bar, frozen classifier,
validation, best-epoch keeping, history) and one save / load with a fingerprint of the classifier —
and a method supplies only its networks and its loss through a few hooks (the template-method
pattern): :meth:`~LearnedAttribution._fit_setup`, :meth:`~LearnedAttribution._train_step`,
:meth:`~LearnedAttribution._config` and :meth:`~LearnedAttribution._build`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import distributed
from .._io import fingerprint_mismatch, load_checkpoint, load_state_checked, model_fingerprint, save_checkpoint
from .._utils import TargetType, eval_mode, format_target, release_memory, to_jsonable
from .._validate import check_finite_module, check_int, check_number, check_positive_int, check_spectrogram, guarded_forward
from ..data.batch import Batch
from ..data.streaming import is_stream
from ..data.tensors import SpectrogramSet
from ..errors import CheckpointError, FitInterrupted, InputError, NotFittedError
from ..nn.adapters import bound_slice, needs_phase, using_phase
from ..nn.auto_layers import auto_layers
from ..nn.hooks import Hook, LayerRecorder, LayerSpec, resolve_hooks
from ._fit_state import (FitCheckpointer, StopRequest, check_resumable, json_float, load_fit_state,
                         load_optimizer_state, optimizer_state, stop_on_signals)

#: Clips per pass when a fit runs the frozen classifier (and decoder) outside its training steps —
#: caching the classifier's outputs, validating: small enough for the activations to stay in the CPU
#: caches (80 validation clips of the esc10 L-MAC: 3.2-3.5 s in batches of 32, 1.7-2.1 s in 16 or 8).
PASS_BATCH = 16


def unpack_inputs(inputs: Union[Tensor, Tuple[Tensor, ...]], n_freqs: Optional[int] = None,
                  allow_silent: bool = True, name: str = "inputs") -> Tuple[Tensor, bool]:
    """Accept a tensor or a 1-tuple (Captum style); check it is a finite (N, 1, F, T) magnitude batch
    (:func:`captum_lmac._validate.check_spectrogram`: float64 / float16 are cast to float32;
    integer, complex, mostly negative and — unless ``allow_silent`` — all-zero inputs are refused).

    Returns ``(tensor, was_tuple)``.
    """
    was_tuple = isinstance(inputs, tuple)
    if was_tuple:
        if len(inputs) != 1:
            raise InputError(f"this method explains one input tensor; got a tuple of {len(inputs)}")
        inputs = inputs[0]
    X = check_spectrogram(inputs, name, n_freqs=n_freqs, allow_silent=allow_silent,
                          what="the decoder was fitted on")
    return X, was_tuple


def _data_freqs(data: Any) -> Optional[int]:
    """F of in-memory data (a tensor, a SpectrogramSet, a tuple/list whose first item is one), else None."""
    x = data.X if isinstance(data, SpectrogramSet) else data
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
        x = x.X if isinstance(x, SpectrogramSet) else x
        if isinstance(x, (tuple, list)) and x:  # a list of (X, X_clean) / (X, captions) batches
            x = x[0]
    return int(x.shape[2]) if torch.is_tensor(x) and x.dim() == 4 else None


def _checked_fit(run_fit: Callable[..., Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
    """Validate the arguments of the shared fit loop before any work, and make a fit all-or-nothing.

    ``epochs`` and ``batch_size`` must be positive integers, 0 < ``lr`` <= 1e6, ``weight_decay`` >= 0
    finite numbers, ``seed`` an integer, and validation inputs must have the training data's
    frequency bins (checked before the first epoch). A fit whose decoder ends with NaN / inf weights
    (a diverged loss: lower ``lr``) raises InputError. If the fit raises (or is interrupted) the
    method is restored to its state before the call — an unfitted method stays unfitted — so a
    failed fit never leaves a half-trained decoder that counts as fitted.
    """

    @functools.wraps(run_fit)
    def wrapper(self: "LearnedAttribution", data: Any, epochs: int, batch_size: int, lr: float,
                weight_decay: float, val: Any, seed: int, progress: bool, **checkpointing: Any) -> Dict[str, Any]:
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        lr = check_number(lr, "lr", minimum=0.0, maximum=1e6, strict_minimum=True)
        weight_decay = check_number(weight_decay, "weight_decay", minimum=0.0)
        seed = check_int(seed, "seed")
        if val is not None:
            fitted = getattr(self.decoder, "out_freqs", None) or getattr(self.decoder, "n_freqs", None)
            train_f, val_f = fitted or _data_freqs(data), _data_freqs(val)
            if train_f is not None and val_f is not None and train_f != val_f:
                raise InputError(
                    f"the validation inputs have {val_f} frequency bins but the training inputs "
                    f"{'(and the fitted decoder) ' if fitted else ''}have {train_f}; use the same STFT for both"
                )
        saved = dict(self.__dict__)
        decoder_state = copy.deepcopy(self.decoder.state_dict()) if self.decoder is not None else None
        try:
            hist = run_fit(self, data, epochs, batch_size, lr, weight_decay, val, seed, progress, **checkpointing)
            check_finite_module(self.decoder, f"the {type(self).__name__} decoder after fitting",
                                hint="the training diverged: lower lr (or check the loss weights)")
            return hist
        except BaseException:
            decoder = saved.get("decoder")
            self.__dict__.clear()
            self.__dict__.update(saved)
            if decoder is not None and decoder_state is not None:
                decoder.load_state_dict(decoder_state)
            raise

    return wrapper


def as_batch(item: Any) -> Batch:
    """A user's batch as a :class:`Batch`: a tensor X, an ``(X, X_clean)`` pair, a dict with keys
    ``X`` / ``clean_X`` / ``phase`` / ``length`` / ``valid`` (e.g. from a DataLoader with the
    default collate), a :class:`SpectrogramSet`, or a Batch."""
    if isinstance(item, Batch):
        return item
    if torch.is_tensor(item):
        return Batch(item)
    if isinstance(item, SpectrogramSet):
        return Batch(item.X, item.extra.get("clean_X"), item.phase, int(item.waveform.shape[-1]))
    if isinstance(item, dict):
        if "X" not in item:
            raise InputError(f"a dict batch needs an 'X' entry, got keys {sorted(item)}")
        return Batch(item["X"], item.get("clean_X"), item.get("phase"), _one_length(item.get("length")),
                     valid=item.get("valid"), labels=item.get("label", item.get("labels")),
                     captions=item.get("captions"))
    if isinstance(item, (tuple, list)) and item and torch.is_tensor(item[0]):
        return Batch(item[0], item[1] if len(item) > 1 and torch.is_tensor(item[1]) else None)
    raise InputError(f"a training batch must be a tensor, an (X, X_clean) pair or a dict, got {type(item).__name__}")


def _one_length(length: Any) -> Optional[int]:
    """A batch's clip length: an int, or a tensor of per-clip lengths that must all agree (default collate)."""
    if length is None or isinstance(length, int):
        return length
    values = {int(v) for v in torch.as_tensor(length).flatten().tolist()}
    if len(values) != 1:
        raise InputError(f"the clips of one batch have different lengths {sorted(values)[:4]}; crop or pad them")
    return values.pop()


def iterate_batches(
    batches: Any, batch_size: int, generator: torch.Generator, pairs_key: str = "clean_X"
) -> Iterator[Batch]:
    """One epoch over training data given as a tensor, a tuple of tensors, a SpectrogramSet or an iterable.

    Tensors (and tuples of tensors sharing the first dimension) are shuffled with ``generator`` and
    split into ``batch_size`` chunks; a :class:`SpectrogramSet` likewise, with its phase and, when it
    carries ``extra[pairs_key]``, the clean parts; a streaming source
    (:class:`~captum_lmac.data.streaming.StreamingSpectrograms`, anything with ``fit_batches``) draws
    its order from ``generator`` the same way and reads the clips on the fly; any other iterable
    (list, DataLoader) is iterated as it is (each item through :func:`as_batch`).
    """
    if is_stream(batches):
        yield from batches.fit_batches(batch_size, generator)
        return
    phase, length = None, None
    if isinstance(batches, SpectrogramSet):
        phase, length = batches.phase, int(batches.waveform.shape[-1])
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
            yield Batch(batches[0][idx], batches[1][idx] if len(batches) > 1 else None,
                        phase[idx] if phase is not None else None, length)
        return
    for item in batches:
        yield as_batch(item)


def materialise(batches: Any) -> Any:
    """Turn a one-shot iterator into a list so it can be iterated once per epoch (streaming sources
    and other re-iterables are kept as they are)."""
    if isinstance(batches, Iterator) and not is_stream(batches):
        return list(batches)
    return batches


@dataclass
class InMemory:
    """Training data held as tensors (a tensor, a tuple of tensors or a :class:`SpectrogramSet`):
    inputs, clean parts of mixtures, phase and clip length (the last three may be None)."""

    X: Tensor
    clean: Optional[Tensor] = None
    phase: Optional[Tensor] = None
    length: Optional[int] = None


def in_memory(data: Any, pairs_key: str = "clean_X") -> Optional[InMemory]:
    """``data`` as :class:`InMemory` when :func:`iterate_batches` would shuffle it from tensors, else None."""
    if isinstance(data, SpectrogramSet):
        return InMemory(data.X, data.extra.get(pairs_key), data.phase, int(data.waveform.shape[-1]))
    if torch.is_tensor(data):
        return InMemory(data)
    if isinstance(data, tuple) and data and all(torch.is_tensor(b) for b in data):
        return InMemory(data[0], data[1] if len(data) > 1 else None)
    return None


def iterate_cached(data: InMemory, cache: Any, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """One epoch over in-memory data with precomputed per-clip values (``cache``: a tensor, or a tuple /
    list of tensors and lists of tensors, indexed along the first dimension) in ``Batch.extra``.

    The batches are those :func:`iterate_batches` gives for the same data and generator (same order)."""

    def take(c: Any, idx: Tensor) -> Any:
        if torch.is_tensor(c):
            return c[idx]
        return type(c)(take(v, idx) for v in c)

    n = data.X.shape[0]
    order = torch.randperm(n, generator=generator)
    for s in range(0, n, batch_size):
        idx = order[s : s + batch_size]
        yield Batch(data.X[idx], data.clean[idx] if data.clean is not None else None,
                    data.phase[idx] if data.phase is not None else None, data.length, extra=take(cache, idx))


@dataclass
class FitPlan:
    """What a method's :meth:`LearnedAttribution._fit_setup` hands to the shared training loop.

    Attributes:
        batches: ``batches(generator)`` → the training batches of one epoch (shuffled with the
            generator the loop seeds once per fit).
        validate: ``validate()`` → validation values of the current decoder (must hold ``loss``;
            the epoch with the lowest one is kept), or None without validation data.
        history: Entries recorded before training (e.g. dictionary-learning time).
        state: ``state()`` → JSON-able sampling state the method keeps outside the loop's
            generator (e.g. LMAC-ZS's caption choice), saved in fit-state checkpoints; or None.
        load_state: ``load_state(value)`` restores it.
    """

    batches: Callable[[torch.Generator], Iterator[Any]]
    validate: Optional[Callable[[], Dict[str, float]]] = None
    history: Dict[str, Any] = field(default_factory=dict)
    state: Optional[Callable[[], Any]] = None
    load_state: Optional[Callable[[Any], None]] = None


def evaluate_stream(stream: Any, evaluate: Callable[[Batch], Dict[str, float]]) -> Dict[str, float]:
    """Validation values over a streaming set: ``evaluate(batch)`` (per-clip means) for every batch,
    in order, combined as means over all clips (keys whose values are NaN in a batch are skipped there)."""
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for batch in stream:
        values = evaluate(batch)
        n = int(batch.X.shape[0])
        for k, v in values.items():
            if v == v:
                sums[k] = sums.get(k, 0.0) + float(v) * n
                counts[k] = counts.get(k, 0) + n
    if not counts:
        raise InputError("the validation stream holds no clips")
    return {k: sums[k] / counts[k] for k in sums}


def _module_device(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


class _OnDevice:
    """A re-iterable of batches moved to ``device`` (user iterables when the classifier is on a GPU)."""

    def __init__(self, data: Any, device: torch.device) -> None:
        self.data, self.device = data, device

    def __iter__(self):
        for item in self.data:
            yield as_batch(item).to(self.device)


def _data_on(data: Any, device: torch.device) -> Any:
    """Training or validation data on the classifier's device (nothing moves on the CPU)."""
    if data is None or device.type == "cpu":
        return data
    if is_stream(data):
        data.device = device
        return data
    if torch.is_tensor(data):
        return data.to(device)
    if isinstance(data, tuple) and data and all(torch.is_tensor(t) for t in data):
        return tuple(t.to(device) for t in data)
    if isinstance(data, SpectrogramSet):
        return SpectrogramSet(data.waveform, data.X.to(device), data.phase.to(device) if data.phase is not None else None, data.y,
                              {k: v.to(device) for k, v in data.extra.items()}, list(data.classes))
    if isinstance(data, tuple):  # (X, captions) pairs
        return tuple(t.to(device) if torch.is_tensor(t) else t for t in data)
    return _OnDevice(data, device)


_END = object()


def _plain(obj: Any) -> Any:
    """Plain JSON data (tensors and numpy values as numbers / lists; floats kept as they are, NaN included)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if torch.is_tensor(obj):
        return _plain(obj.tolist()) if obj.dim() else obj.item()
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    return to_jsonable(obj)


class _RunState:
    """Where the fit loop stands (what a fit-state checkpoint stores and restores)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.step = 0
        self.global_step = 0
        self.seconds = 0.0
        self.sums: Dict[str, float] = {}
        self.n = 0
        self.best_val = float("inf")
        self.best_state: Optional[Dict[str, Tensor]] = None
        self.epoch_gen: Optional[Tensor] = None
        self.epoch_plan: Any = None
        self.mid: Optional[Dict[str, Any]] = None
        self.hist: Dict[str, Any] = {}

    @property
    def hist_ref(self) -> Dict[str, Any]:
        return self.hist


class LearnedAttribution(Attribution):
    """Base class: a Captum ``Attribution`` whose explainer is trained by ``fit`` on a frozen model.

    Subclasses set ``kind`` (the checkpoint kind), ``history_keys`` (the loss terms and diagnostics
    recorded per epoch, ``"loss"`` first) and ``progress_keys`` (shown on the progress bar), and
    implement:

    - ``_fit_setup(data, val, batch_size, seed, progress) -> FitPlan``: check the data, build the
      decoder (the global RNG is seeded just before, so its initialisation is reproducible);
    - ``_train_step(batch) -> (terms, n)``: the loss terms of one batch (``terms["loss"]`` is
      back-propagated unless the step already did) and its number of samples, or None to skip it;
    - ``_config()`` / ``_build(config)``: the JSON configuration that rebuilds the decoder.

    Their public ``fit`` documents the method's own options and calls :meth:`_run_fit`.
    """

    kind = "learned"
    history_keys: Tuple[str, ...] = ("loss",)
    progress_keys: Tuple[str, ...] = ("loss",)

    def __init__(self, forward_func: nn.Module, layers: Union[str, Sequence[LayerSpec]],
                 layout: Optional[str] = None) -> None:
        if not isinstance(forward_func, nn.Module):
            raise InputError(
                f"{type(self).__name__} needs the classifier as an nn.Module (its layers are hooked), "
                f"got {type(forward_func).__name__}"
            )
        check_finite_module(forward_func)
        super().__init__(forward_func)
        self.model: nn.Module = forward_func
        self.decoder: Optional[nn.Module] = None
        self.history: Dict[str, Any] = {}
        self.auto_choice: Optional[str] = None
        self._layout = layout
        self._set_layers([] if isinstance(layers, str) and layers == "auto" else layers)
        self._auto = isinstance(layers, str) and layers == "auto"

    def _set_layers(self, layers: Sequence[LayerSpec]) -> None:
        if isinstance(layers, (str, nn.Module, Hook)):
            layers = [layers]
        self.hooks = resolve_hooks(self.model, list(layers), layout=self._layout)
        self.layer_modules = [h.module for h in self.hooks]
        self.layer_names = [h.name for h in self.hooks]
        self.recorder = LayerRecorder(self.hooks, model=self.model)

    def _resolve_auto(self, batch: Batch) -> None:
        """``layers="auto"``: pick the decoder layers on the first training batch (:func:`auto_layers`) and say so."""
        if not self._auto:
            return
        with self.bound(batch.phase[:1] if batch.phase is not None else None, batch.length):
            choice = auto_layers(self.model, batch.X[:1])
        self.auto_choice = choice.explanation
        if distributed.current().is_main:
            tqdm.write(f"[{type(self).__name__}] layers='auto': {choice.explanation}")
        self._set_layers(choice.hooks)
        self._auto = False

    def bound(self, phase: Optional[Tensor], length: Optional[int] = None):
        """Bind ``phase`` to a classifier that needs it (waveform models); a no-op for the others."""
        if not needs_phase(self.model):
            return contextlib.nullcontext()
        return using_phase(self.model, phase, length)

    def layer_specs(self) -> List[Any]:
        """The hooked layers as stored in a checkpoint: names, or Hook configurations where options are set."""
        out: List[Any] = []
        for h in self.hooks:
            hook = Hook(h.name, pick=h.hook.pick, layout=h.hook.layout, drop_tokens=h.hook.drop_tokens,
                        grid=h.hook.grid, fold=h.hook.fold)
            cfg = hook.config()
            out.append(cfg["layer"] if list(cfg) == ["layer"] else cfg)
        return out

    # ------------------------------------------------------------------ copies
    def _copy_model(self) -> nn.Module:
        """The model a copy is built on by default (the one this explainer was constructed with)."""
        return self.model

    def _copy_kwargs(self, model: nn.Module) -> Dict[str, Any]:
        """Constructor arguments of a copy on ``model`` besides ``layers`` (default: :attr:`init_keys`)."""
        return {k: getattr(self, k) for k in self.init_keys}

    def unfitted_copy(self, model: Optional[nn.Module] = None) -> "LearnedAttribution":
        """A new, unfitted explainer with this one's settings (layers, constructor arguments) on
        ``model`` (default: the same classifier). ``copy.fit(data, ...)`` with this one's fit
        settings (L-MAC records them in ``history["fit_args"]``) repeats the procedure that fitted
        it — the like-with-like randomisation check refits so on the randomised classifier."""
        model = self._copy_model() if model is None else model
        return type(self)(model, layers=[Hook.from_config(c) for c in self.layer_specs()],
                          **self._copy_kwargs(model))

    def on(self, model: nn.Module) -> "LearnedAttribution":
        """This explainer on another classifier of the same architecture, sharing the fitted decoder
        (e.g. a randomised copy: the decoder then reads that classifier's layers)."""
        other = self.unfitted_copy(model)
        other.decoder = self._require_fitted()
        return other

    # ------------------------------------------------------------------ helpers
    def forward_with_features(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Run the classifier on ``x``; return its output and the hooked layers' outputs."""
        with self.recorder.capture() as feats:
            out = guarded_forward(self.model, x)
        if torch.is_tensor(out) and not torch.isfinite(out).all():
            raise InputError(f"the classifier returned NaN or infinite outputs for inputs of shape {tuple(x.shape)}; "
                             "refusing to explain them")
        return out, list(feats)

    def _classifier_outputs(
        self, X: Tensor, batch_size: int, max_bytes: float
    ) -> Optional[Tuple[Tensor, List[Tensor]]]:
        """Logits and hooked outputs of the frozen classifier for all of X, or None if they would
        take more than ``max_bytes`` (then they are recomputed per batch). Exact: the classifier is
        frozen and in eval mode, so its outputs do not change between epochs. A classifier that
        needs the clips' phase must have it bound for all of X (each chunk takes its rows)."""
        if max_bytes <= 0:
            return None
        with torch.no_grad(), bound_slice(self.model, 0, 1):
            logits, feats = self.forward_with_features(X[:1])
        per_clip = sum(f.numel() * f.element_size() for f in [logits, *feats])
        if per_clip * X.shape[0] > max_bytes:
            return None
        logits, parts = [], []
        with torch.no_grad():
            for s in range(0, X.shape[0], batch_size):
                with bound_slice(self.model, s, s + batch_size):
                    lg, fs = self.forward_with_features(X[s : s + batch_size])
                logits.append(lg)
                parts.append(fs)
        return torch.cat(logits), [torch.cat([fs[i] for fs in parts]) for i in range(len(parts[0]))]

    def n_parameters(self) -> int:
        """Trainable parameters of the fitted decoder / interpreter."""
        return sum(p.numel() for p in self._require_fitted().parameters())

    def _require_fitted(self) -> nn.Module:
        if self.decoder is None:
            raise NotFittedError(f"{type(self).__name__} has no trained decoder: call fit(...) or load(...) first")
        return self.decoder

    # ------------------------------------------------------------------ the training loop
    def _fit_setup(self, data: Any, val: Any, batch_size: int, seed: int, progress: bool) -> FitPlan:
        raise NotImplementedError

    def _train_step(self, batch: Any) -> Optional[Tuple[Dict[str, Any], int]]:
        raise NotImplementedError

    #: True for methods whose ``_train_step`` back-propagates itself (several backward passes per
    #: step, e.g. LMAC-ZS clip by clip); a distributed fit then all-reduces their gradients after the step.
    backward_in_step = False

    @_checked_fit
    def _run_fit(self, data: Any, epochs: int, batch_size: int, lr: float, weight_decay: float, val: Any,
                 seed: int, progress: bool, checkpoint_dir: Optional[Union[str, Path]] = None,
                 checkpoint_every: int = 1, checkpoint_steps: Optional[int] = None,
                 resume: bool = False) -> Dict[str, Any]:
        """The training loop every learned method shares; returns the history.

        Seeds the global RNG (decoder initialisation) and one generator (batch order), asks the
        method for its :class:`FitPlan`, trains the decoder with Adam on the frozen classifier (eval
        mode, no parameter gradients), validates after every epoch and keeps the weights of the
        lowest validation loss (else the last epoch's).

        Scale (see ``docs/scale.md``):

        - ``data`` may be a streaming source (:class:`~captum_lmac.data.streaming.StreamingSpectrograms`):
          clips are read and analysed batch by batch, ``set_epoch`` is called every epoch.
        - Inside an initialised process group of W > 1 processes (``torchrun``), the decoder trains
          with DistributedDataParallel: ``batch_size`` is the global batch, each rank trains on its
          rows of every global batch (a streaming source reads only those), each rank's loss is
          weighted by its share of the global batch, rank 0 alone validates, shows progress and
          writes checkpoints. The result equals a one-process fit with the same global batch up to
          floating-point summation order (LMAC-ZS excepted: its contrastive loss pairs the clips of
          the local batch).
        - ``checkpoint_dir``: a fit-state checkpoint (:mod:`._fit_state`) is written every
          ``checkpoint_every`` epochs, every ``checkpoint_steps`` steps and on SIGTERM / Ctrl-C
          (the fit then raises :class:`~captum_lmac.errors.FitInterrupted`); ``resume=True``
          continues from it exactly (a missing checkpoint starts a new fit).
        """
        info = distributed.current()
        epochs = int(epochs)
        if epochs < 0:
            raise InputError(f"epochs must be >= 0, got {epochs}")
        if resume and checkpoint_dir is None:
            raise InputError("resume=True needs the checkpoint_dir of the fit to resume")
        ckpt = (FitCheckpointer(checkpoint_dir, checkpoint_every, checkpoint_steps, write=info.is_main)
                if checkpoint_dir is not None else None)
        key = {"kind": self.kind, "lr": float(lr), "weight_decay": float(weight_decay), "batch_size": int(batch_size),
               "seed": int(seed)}
        saved = ckpt.load() if resume and ckpt.exists() else None
        if saved is not None:
            check_resumable(saved[1], key, ckpt.path)
            self._restore_decoder(*saved, ckpt.path)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        sharded = False
        if info.active and is_stream(data):
            data, sharded = data.shard(info.rank, info.world_size), True
        device = _module_device(self.model)
        data, val = _data_on(data, device), _data_on(val, device)
        plan = self._fit_setup(data, val, batch_size, seed, progress and info.is_main)
        decoder = self.decoder.to(device)
        opt = torch.optim.Adam(decoder.parameters(), lr=lr, weight_decay=weight_decay)
        hist: Dict[str, Any] = dict(plan.history)
        for k in self.history_keys:
            hist[k] = []
        run = _RunState()
        run.hist = hist
        if saved is not None:
            run = self._restore_run(saved, opt, gen, plan, info)
            hist = run.hist
        ddp = None
        if info.active:
            ddp = distributed.DecoderDDP(decoder, device_ids=[device.index] if device.type == "cuda" else None,
                                         broadcast_buffers=False)
        t0 = time.time() - run.seconds
        bar = tqdm(total=epochs, initial=run.epoch, desc=f"fitting {type(self).__name__}",
                   disable=not (progress and info.is_main))
        try:
            with eval_mode(self.model, freeze=True), stop_on_signals(ckpt is not None) as stop:
                if ddp is not None:
                    self.decoder = ddp
                for epoch in range(run.epoch, epochs):
                    if callable(getattr(data, "set_epoch", None)):
                        data.set_epoch(epoch)
                    decoder.train()
                    it = self._loop_epoch(plan, data, gen, run, epoch)
                    for batch in it:
                        self._fit_step(batch, opt, decoder, ddp, info, sharded, device, run)
                        run.step += 1
                        run.global_step += 1
                        due = ckpt is not None and ckpt.every_steps and run.global_step % ckpt.every_steps == 0
                        stopping = ckpt is not None and distributed.any_rank(stop.requested)
                        if due or stopping:
                            path = self._save_fit_state(ckpt, decoder, opt, gen, plan, run, key, info, t0, epoch)
                            if stopping:
                                raise self._interrupted(path, stop, epoch, run.step)
                    self._end_epoch(epoch, plan, decoder, run, hist, info, ddp, bar)
                    release_memory()
                    run.epoch, run.step = epoch + 1, 0
                    run.sums, run.n = {k: 0.0 for k in self.history_keys}, 0
                    if ckpt is None:
                        continue
                    stopping = distributed.any_rank(stop.requested) and epoch + 1 < epochs
                    if stopping or (epoch + 1) % ckpt.every == 0 or epoch + 1 == epochs:
                        path = self._save_fit_state(ckpt, decoder, opt, gen, plan, run, key, info, t0, epoch + 1,
                                                    complete=epoch + 1 == epochs)
                        if stopping:
                            raise self._interrupted(path, stop, epoch + 1, 0)
                if (ckpt is not None and saved is not None and not saved[1].get("complete")
                        and saved[1].get("epoch", 0) >= epochs):
                    # resumed a fit stopped at an epoch boundary with all the epochs asked for done: nothing
                    # ran, so mark its last checkpoint complete here
                    run.sums = {k: run.sums.get(k, 0.0) for k in self.history_keys}
                    self._save_fit_state(ckpt, decoder, opt, gen, plan, run, key, info, t0, run.epoch, complete=True)
        finally:
            bar.close()
            self.decoder = decoder
        if run.best_state is not None:
            decoder.load_state_dict(run.best_state)
        else:
            hist["best_epoch"] = epochs - 1
        decoder.eval()
        hist["seconds"] = time.time() - t0
        hist["decoder_parameters"] = self.n_parameters()
        if info.active:
            hist["world_size"] = info.world_size
        self.history = hist
        return hist

    # ------------------------------------------------------------------ the loop's parts
    def _loop_epoch(self, plan: FitPlan, data: Any, gen: torch.Generator, run: "_RunState", epoch: int):
        """The batches of ``epoch``; when resuming in its middle, the order of the interrupted epoch
        with its first ``run.step`` batches skipped (a streaming source skips them unread)."""
        if run.step == 0 or run.mid is None:
            run.step = 0
            run.sums, run.n = {k: 0.0 for k in self.history_keys}, 0
            run.epoch_gen = gen.get_state()
            run.epoch_plan = plan.state() if plan.state is not None else None
            return iter(plan.batches(gen))
        mid, run.mid = run.mid, None
        gen.set_state(mid["epoch_gen"])
        if plan.load_state is not None and mid.get("epoch_plan") is not None:
            plan.load_state(mid["epoch_plan"])
        run.epoch_gen, run.epoch_plan = mid["epoch_gen"], mid.get("epoch_plan")
        if plan.state is None and callable(getattr(data, "resume_at", None)):
            data.resume_at(run.step)
            it = iter(plan.batches(gen))
            first = next(it, _END)  # the order is drawn on the first batch
            rest = iter(()) if first is _END else itertools.chain([first], it)
        else:
            it = iter(plan.batches(gen))
            for _ in range(run.step):
                if next(it, _END) is _END:
                    break
            rest = it
        gen.set_state(mid["gen"])
        torch.set_rng_state(mid["torch_rng"])
        return rest

    def _fit_step(self, batch: Any, opt: torch.optim.Optimizer, decoder: nn.Module, ddp: Optional[nn.Module],
                  info: distributed.DistInfo, sharded: bool, device: torch.device, run: "_RunState") -> None:
        """One optimisation step (on this rank's part of the global batch)."""
        global_n = getattr(batch, "global_size", None) or distributed.batch_length(batch)
        if info.active and not sharded:
            if global_n is None or global_n < info.world_size:
                return  # a trailing global batch with fewer clips than ranks (no rank may get none)
            batch = distributed.shard_batch(batch, info.rank, info.world_size)
        if isinstance(batch, Batch) and device.type != "cpu":
            batch = batch.to(device)
        opt.zero_grad()
        sync_inside = ddp is not None and self.backward_in_step
        with self.bound(getattr(batch, "phase", None), getattr(batch, "length", None)):
            with (ddp.no_sync() if sync_inside else contextlib.nullcontext()):
                step = self._train_step(batch)
        if step is None:
            if info.active:
                raise InputError(f"{type(self).__name__} skipped a batch during a distributed fit; every rank must "
                                 "train on every global batch")
            return
        terms, size = step
        share = float(size) / float(global_n) if info.active and global_n else 1.0
        loss = terms["loss"]
        if torch.is_tensor(loss) and loss.requires_grad:
            (loss * (share * info.world_size) if info.active else loss).backward()
        elif sync_inside:
            distributed.all_reduce_gradients(decoder, weight=share)
        opt.step()
        for k in self.history_keys:
            v = float(terms[k].detach()) if torch.is_tensor(terms[k]) else float(terms[k])
            run.sums[k] += (v if v == v else 0.0) * size  # NaN (an undefined diagnostic) counts as 0
        run.n += size

    def _end_epoch(self, epoch: int, plan: FitPlan, decoder: nn.Module, run: "_RunState", hist: Dict[str, Any],
                   info: distributed.DistInfo, ddp: Optional[nn.Module], bar: Any) -> None:
        """Epoch means (over all ranks), validation (rank 0, broadcast), best-epoch keeping."""
        totals = distributed.all_reduce_sum([run.sums[k] for k in self.history_keys] + [float(run.n)])
        for k, v in zip(self.history_keys, totals):
            hist[k].append(v / max(totals[-1], 1.0))
        if plan.validate is not None:
            values = None
            if info.is_main:
                self.decoder = decoder  # validate the plain decoder (no DDP collectives on one rank)
                try:
                    values = plan.validate()
                finally:
                    self.decoder = ddp if ddp is not None else decoder
            values = distributed.broadcast_json(values)
            for k, value in values.items():
                hist.setdefault(f"val_{k}", []).append(value)
            if values["loss"] < run.best_val:
                run.best_val = values["loss"]
                run.best_state = {k: t.detach().clone() for k, t in decoder.state_dict().items()}
                hist["best_epoch"] = epoch
            bar.set_postfix({f"val_{k}": f"{values[k]:.3f}" for k in self.progress_keys if k in values})
        else:
            bar.set_postfix({k: f"{hist[k][-1]:.3f}" for k in self.progress_keys if k in hist})
        bar.update(1)

    def _interrupted(self, path: Path, stop: StopRequest, epoch: int, step: int) -> FitInterrupted:
        name = signal.Signals(stop.signum).name if stop.signum else "a signal"
        return FitInterrupted(f"{type(self).__name__} fit stopped by {name} at epoch {epoch}, step {step}; "
                              f"checkpoint {path} (resume with resume=True / --resume)",
                              checkpoint=path, signum=stop.signum, epoch=epoch, step=step)

    # ------------------------------------------------------------------ fit-state checkpoints
    def _save_fit_state(self, ckpt: FitCheckpointer, decoder: nn.Module, opt: torch.optim.Optimizer,
                        gen: torch.Generator, plan: FitPlan, run: "_RunState", key: Dict[str, Any],
                        info: distributed.DistInfo, t0: float, epoch: int, complete: bool = False) -> Path:
        """Write the fit state (rank 0); every rank takes part in reducing the epoch's running sums."""
        totals = distributed.all_reduce_sum([run.sums[k] for k in self.history_keys] + [float(run.n)])
        if not ckpt.write:
            return ckpt.path
        state: Dict[str, Tensor] = {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
        if run.best_state is not None:
            state.update({f"best.{k}": v for k, v in run.best_state.items()})
        opt_tensors, opt_meta = optimizer_state(opt)
        state.update(opt_tensors)
        state["rng.torch"] = torch.get_rng_state()
        state["rng.gen"] = gen.get_state()
        if run.epoch_gen is not None:
            state["rng.epoch_gen"] = run.epoch_gen
        meta = {
            "fit": key, "epoch": int(epoch), "step": int(run.step), "global_step": int(run.global_step),
            "complete": bool(complete), "history": self._hist_for_json(run.hist_ref),
            "sums": dict(zip(self.history_keys, totals[:-1])), "n": totals[-1],
            "best_val": json_float(run.best_val), "optim": opt_meta,
            "plan_state": plan.state() if plan.state is not None else None, "epoch_plan_state": run.epoch_plan,
            "config": self._config_of(decoder), "layers": self.layer_specs(), "auto_choice": self.auto_choice,
            "fingerprint": model_fingerprint(self._fingerprinted(self.model)), "world_size": info.world_size,
            "seconds": time.time() - t0,
        }
        return ckpt.save(state, meta)

    @staticmethod
    def _hist_for_json(hist: Dict[str, Any]) -> Dict[str, Any]:
        """The history as JSON (NaN kept: the checkpoint's JSON allows it, so a resumed history equals
        an uninterrupted one)."""
        return _plain(hist)

    def _config_of(self, decoder: nn.Module) -> Dict[str, Any]:
        current, self.decoder = self.decoder, decoder
        try:
            return self._config()
        finally:
            self.decoder = current

    def _restore_decoder(self, state: Dict[str, Tensor], meta: Dict[str, Any], path: Path) -> None:
        """Rebuild the checkpoint's decoder (layers, configuration, weights) before the fit set-up."""
        reason = fingerprint_mismatch(meta["fingerprint"], self._fingerprinted(self.model))
        if reason:
            raise CheckpointError(f"{path} was written for a different {self.fitted_for}: {reason}")
        self._set_layers([Hook.from_config(c) for c in meta["layers"]])
        self._auto = False
        self.auto_choice = meta.get("auto_choice")
        self._build(meta["config"])
        try:
            self._load_state({k: v for k, v in state.items() if k.startswith("decoder.")})
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: stored weights do not fit the stored configuration: {exc}") from None

    def _restore_run(self, saved: Tuple[Dict[str, Tensor], Dict[str, Any]], opt: torch.optim.Optimizer,
                     gen: torch.Generator, plan: FitPlan, info: distributed.DistInfo) -> "_RunState":
        state, meta = saved
        load_optimizer_state(opt, {k: v for k, v in state.items() if k.startswith("optim.")}, meta["optim"])
        run = _RunState()
        run.hist = dict(meta["history"])
        for k in self.history_keys:
            run.hist.setdefault(k, [])
        run.epoch, run.step, run.global_step = int(meta["epoch"]), int(meta["step"]), int(meta["global_step"])
        run.seconds = float(meta.get("seconds", 0.0))
        best = {k[len("best."):]: v for k, v in state.items() if k.startswith("best.")}
        run.best_state = best or None
        run.best_val = float("inf") if meta.get("best_val") is None else float(meta["best_val"])
        gen.set_state(state["rng.gen"])
        torch.set_rng_state(state["rng.torch"])
        if plan.load_state is not None and meta.get("plan_state") is not None:
            plan.load_state(meta["plan_state"])
        run.epoch_gen = state.get("rng.epoch_gen")
        run.epoch_plan = meta.get("epoch_plan_state")
        if run.step > 0:
            run.mid = {"epoch_gen": state["rng.epoch_gen"], "epoch_plan": meta.get("epoch_plan_state"),
                       "gen": state["rng.gen"], "torch_rng": state["rng.torch"]}
            main = info.rank == 0
            run.sums = {k: float(meta["sums"][k]) if main else 0.0 for k in self.history_keys}
            run.n = int(meta["n"]) if main else 0
        return run

    @classmethod
    def from_fit_state(cls, path: Union[str, Path], model: nn.Module, **kwargs: Any) -> "LearnedAttribution":
        """The explainer of a fit-state checkpoint (``checkpoint_dir`` or its ``last.pt``): its best
        epoch's decoder so far (else the latest), e.g. to look at an interrupted fit."""
        state, meta = load_fit_state(path)
        if meta["fit"].get("kind") != cls.kind:
            raise CheckpointError(f"{path} holds a {meta['fit'].get('kind')!r} fit, not {cls.kind!r}")
        reason = fingerprint_mismatch(meta["fingerprint"], cls._fingerprinted(model))
        if reason:
            raise CheckpointError(f"{path} was written for a different {cls.fitted_for}: {reason}")
        obj = cls(model, layers=[Hook.from_config(c) for c in meta["layers"]],
                  **cls._init_kwargs(model, meta, kwargs))
        obj._build(meta["config"])
        best = {f"decoder.{k[len('best.'):]}": v for k, v in state.items() if k.startswith("best.")}
        obj._load_state(best or {k: v for k, v in state.items() if k.startswith("decoder.")})
        obj.decoder.eval()
        obj.history = meta.get("history", {})
        return obj

    # ------------------------------------------------------------------ persistence
    #: Constructor arguments stored in a checkpoint (as attributes of the same names).
    init_keys: Tuple[str, ...] = ()

    def _config(self) -> Dict[str, Any]:
        """The stored configuration: the constructor arguments and the decoder's own ``config()``."""
        return {"init": {k: getattr(self, k) for k in self.init_keys}, "decoder": self._require_fitted().config()}

    def _build(self, config: Dict[str, Any]) -> None:
        raise NotImplementedError

    def _state(self) -> Dict[str, Tensor]:
        return {f"decoder.{k}": v for k, v in self._require_fitted().state_dict().items()}

    def _load_state(self, state: Dict[str, Tensor]) -> None:
        load_state_checked(self.decoder, {k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")})

    @classmethod
    def _fingerprinted(cls, model: nn.Module) -> nn.Module:
        """The module of ``model`` whose fingerprint a checkpoint stores (the hooked classifier)."""
        return model

    @classmethod
    def _init_kwargs(cls, model: nn.Module, meta: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Constructor arguments of a loaded explainer: the stored ones, overridden by ``kwargs``."""
        return {**meta["config"].get("init", {}), **kwargs}

    def _check_loaded(self, meta: Dict[str, Any], path: Union[str, Path], **options: Any) -> None:
        """Further checks of a loaded checkpoint against this object (override; default none).

        ``options`` are the :attr:`load_options` given to :meth:`load`."""

    #: Keyword arguments of :meth:`load` that go to :meth:`_check_loaded` instead of the constructor.
    load_options: Tuple[str, ...] = ()
    #: What a checkpoint's fingerprint identifies (for messages).
    fitted_for = "classifier"

    def save(self, path: Union[str, Path]) -> Path:
        """Save the fitted explainer (weights, configuration, history, classifier fingerprint).

        The file is written atomically and loads with ``torch.load(weights_only=True)``.
        """
        self._require_fitted()
        meta = {
            "config": self._config(),
            "layers": self.layer_specs(),
            "fingerprint": model_fingerprint(self._fingerprinted(self.model)),
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
            **kwargs: Constructor arguments overriding the stored ones.
        """
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.load_options}
        state, meta = load_checkpoint(path, cls.kind, required=("config", "layers", "fingerprint"))
        if not isinstance(meta["config"], dict) or not isinstance(meta["layers"], list):
            raise CheckpointError(f"{path}: malformed metadata ('config' must be an object and 'layers' a list)")
        if not isinstance(model, nn.Module):
            raise InputError(f"{cls.__name__}.load needs the classifier as an nn.Module, got {type(model).__name__}")
        check_finite_module(model)
        reason = fingerprint_mismatch(meta["fingerprint"], cls._fingerprinted(model))
        if reason:
            raise CheckpointError(f"{path} was fitted for a different {cls.fitted_for}: {reason}")
        try:
            stored = [Hook.from_config(c) for c in meta["layers"]]
        except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path}: malformed metadata (the stored layers {meta['layers']!r}: {exc})") from None
        try:
            init = cls._init_kwargs(model, meta, kwargs)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: malformed metadata (constructor arguments: {exc!r})") from None
        try:
            obj = cls(model, layers=layers if layers is not None else stored, **init)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InputError) and (layers is not None or kwargs):
                raise  # the caller's own arguments
            raise CheckpointError(f"{path}: malformed metadata (constructor arguments {init}: {exc})") from None
        obj._check_loaded(meta, path, **options)
        try:
            obj._build(meta["config"])
        except (InputError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"{path}: malformed metadata (the stored decoder configuration: {exc!r})") from None
        try:
            obj._load_state(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: stored weights do not fit the stored configuration: {exc}") from None
        obj.decoder.eval()
        obj.history = meta.get("history", {})
        return obj


__all__ = ["PASS_BATCH", "LearnedAttribution", "FitPlan", "Batch", "as_batch", "TargetType", "format_target",
           "unpack_inputs", "iterate_batches", "materialise", "evaluate_stream", "InMemory", "in_memory",
           "iterate_cached"]
