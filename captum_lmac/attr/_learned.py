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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._io import fingerprint_mismatch, load_checkpoint, load_state_checked, model_fingerprint, save_checkpoint
from .._utils import TargetType, eval_mode, format_target
from .._validate import check_finite_module, check_int, check_number, check_positive_int, check_spectrogram, guarded_forward
from ..data.tensors import SpectrogramSet
from ..errors import CheckpointError, InputError, NotFittedError
from ..nn.adapters import bound_slice, needs_phase, using_phase
from ..nn.auto_layers import auto_layers
from ..nn.hooks import Hook, LayerRecorder, LayerSpec, resolve_hooks


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
                weight_decay: float, val: Any, seed: int, progress: bool) -> Dict[str, Any]:
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
            hist = run_fit(self, data, epochs, batch_size, lr, weight_decay, val, seed, progress)
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


@dataclass
class Batch:
    """One training batch as the fit loop sees it.

    Attributes:
        X: Inputs (B, 1, F, T).
        clean: The clean part of a mixture (L-MAC fine-tuning pairs), or None.
        phase: The clips' phase (B, 1, F, T) for classifiers that need it (waveform models), or None.
        length: The clips' length in samples (ISTFT output length), or None.
        extra: Method-specific precomputed data (e.g. cached classifier outputs), or None.
    """

    X: Tensor
    clean: Optional[Tensor] = None
    phase: Optional[Tensor] = None
    length: Optional[int] = None
    extra: Any = None


def as_batch(item: Any) -> Batch:
    """A user's batch as a :class:`Batch`: a tensor X, an ``(X, X_clean)`` pair, a dict with keys
    ``X`` / ``clean_X`` / ``phase`` / ``length``, a :class:`SpectrogramSet`, or a Batch."""
    if isinstance(item, Batch):
        return item
    if torch.is_tensor(item):
        return Batch(item)
    if isinstance(item, SpectrogramSet):
        return Batch(item.X, item.extra.get("clean_X"), item.phase, int(item.waveform.shape[-1]))
    if isinstance(item, dict):
        if "X" not in item:
            raise InputError(f"a dict batch needs an 'X' entry, got keys {sorted(item)}")
        return Batch(item["X"], item.get("clean_X"), item.get("phase"), item.get("length"))
    if isinstance(item, (tuple, list)) and item and torch.is_tensor(item[0]):
        return Batch(item[0], item[1] if len(item) > 1 and torch.is_tensor(item[1]) else None)
    raise InputError(f"a training batch must be a tensor, an (X, X_clean) pair or a dict, got {type(item).__name__}")


def iterate_batches(
    batches: Any, batch_size: int, generator: torch.Generator, pairs_key: str = "clean_X"
) -> Iterator[Batch]:
    """One epoch over training data given as a tensor, a tuple of tensors, a SpectrogramSet or an iterable.

    Tensors (and tuples of tensors sharing the first dimension) are shuffled with ``generator`` and
    split into ``batch_size`` chunks; a :class:`SpectrogramSet` likewise, with its phase and, when it
    carries ``extra[pairs_key]``, the clean parts; any other iterable (list, DataLoader) is iterated
    as it is (each item through :func:`as_batch`).
    """
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
    """Turn a one-shot iterator into a list so it can be iterated once per epoch."""
    if isinstance(batches, Iterator):
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
    """

    batches: Callable[[torch.Generator], Iterator[Any]]
    validate: Optional[Callable[[], Dict[str, float]]] = None
    history: Dict[str, Any] = field(default_factory=dict)


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

    @_checked_fit
    def _run_fit(self, data: Any, epochs: int, batch_size: int, lr: float, weight_decay: float, val: Any,
                 seed: int, progress: bool) -> Dict[str, Any]:
        """The training loop every learned method shares; returns the history.

        Seeds the global RNG (decoder initialisation) and one generator (batch order), asks the
        method for its :class:`FitPlan`, trains the decoder with Adam on the frozen classifier (eval
        mode, no parameter gradients), validates after every epoch and keeps the weights of the
        lowest validation loss (else the last epoch's).
        """
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        plan = self._fit_setup(data, val, batch_size, seed, progress)
        opt = torch.optim.Adam(self.decoder.parameters(), lr=lr, weight_decay=weight_decay)
        hist: Dict[str, Any] = dict(plan.history)
        for k in self.history_keys:
            hist[k] = []
        best_val, best_state = float("inf"), None
        t0 = time.time()
        with eval_mode(self.model, freeze=True):
            bar = tqdm(range(int(epochs)), desc=f"fitting {type(self).__name__}", disable=not progress)
            for epoch in bar:
                self.decoder.train()
                sums = {k: 0.0 for k in self.history_keys}
                n = 0
                for batch in plan.batches(gen):
                    opt.zero_grad()
                    with self.bound(getattr(batch, "phase", None), getattr(batch, "length", None)):
                        step = self._train_step(batch)
                    if step is None:
                        continue
                    terms, size = step
                    loss = terms["loss"]
                    if torch.is_tensor(loss) and loss.requires_grad:
                        loss.backward()
                    opt.step()
                    for k in self.history_keys:
                        v = float(terms[k].detach()) if torch.is_tensor(terms[k]) else float(terms[k])
                        sums[k] += (v if v == v else 0.0) * size  # NaN (an undefined diagnostic) counts as 0
                    n += size
                for k in self.history_keys:
                    hist[k].append(sums[k] / max(n, 1))
                if plan.validate is not None:
                    values = plan.validate()
                    for k, value in values.items():
                        hist.setdefault(f"val_{k}", []).append(value)
                    if values["loss"] < best_val:
                        best_val = values["loss"]
                        best_state = {k: t.clone() for k, t in self.decoder.state_dict().items()}
                        hist["best_epoch"] = epoch
                    bar.set_postfix({f"val_{k}": f"{values[k]:.3f}" for k in self.progress_keys if k in values})
                else:
                    bar.set_postfix({k: f"{hist[k][-1]:.3f}" for k in self.progress_keys if k in hist})
        if best_state is not None:
            self.decoder.load_state_dict(best_state)
        else:
            hist["best_epoch"] = int(epochs) - 1
        self.decoder.eval()
        hist["seconds"] = time.time() - t0
        hist["decoder_parameters"] = self.n_parameters()
        self.history = hist
        return hist

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


__all__ = ["LearnedAttribution", "FitPlan", "Batch", "as_batch", "TargetType", "format_target", "unpack_inputs",
           "iterate_batches", "materialise", "InMemory", "in_memory", "iterate_cached"]
