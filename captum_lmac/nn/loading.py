r"""Load a user's classifier for the command line, with no Python to write.

:func:`load_model` builds the model from a *spec*:

- ``"pkg.module:factory"`` — an importable module and a callable in it (a class or a function;
  dotted attributes such as ``"pkg.models:Zoo.small"`` work), called with ``**factory_kwargs``;
- ``"path/to/file.py:factory"`` — the same from a Python file (its folder is put on ``sys.path``
  while it runs, so it can import its neighbours);
- ``"path/to/model.pt"`` (any file that is not ``.py``) — a TorchScript model saved with
  ``torch.jit.save`` (detected by trying ``torch.jit.load``).

Weights (optional) are read with ``torch.load(weights_only=True)`` — no pickle code execution:
a plain ``state_dict``, a dict holding one under ``"state_dict"`` / ``"model_state_dict"`` /
``"model"`` (Lightning, PANNs), or a captum_lmac checkpoint (:mod:`captum_lmac._io`). A ``module.``
(DataParallel) or ``model.`` prefix shared by every key is removed when that makes the keys fit.

:func:`adapt_model` then makes the X → logits module the methods explain (a
:class:`~captum_lmac.nn.adapters.WaveformClassifier` for waveform models) and checks on a probe
input that the output is (N, classes) logits. Every failure is an
:class:`~captum_lmac.InputError` (the spec, the module, the factory, the output) or a
:class:`~captum_lmac.CheckpointError` (the weights file) that names the problem.

Examples::

    >>> model = load_model("mypkg.models:build_crnn", "crnn.pt", n_classes=10)
    >>> model = adapt_model(model, STFT(sample_rate=16000), input="auto")
    >>> layers = qualify_layers(model, ["block3", "gru"])     # names inside the user's model
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .hooks import Hook, LayerSpec
from ..audio import STFT
from .._io import first_names, nonfinite_tensors, state_misfit
from .._validate import check_finite_module, check_number, check_positive_int
from ..errors import CheckpointError, InputError
from .adapters import (
    OutputSpec,
    PickLogits,
    SpectrogramInputClassifier,
    WaveformClassifier,
    model_sample_rate,
    select_logits,
)

PathLike = Union[str, Path]

_SPEC_FORMS = "'pkg.module:factory', 'path/to/file.py:factory' or a TorchScript file saved with torch.jit.save"
_STATE_KEYS = ("state_dict", "model_state_dict", "model")


# --- building the model from a spec ---------------------------------------------------------------------------


@contextlib.contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def _import_file(path: Path, spec: str) -> ModuleType:
    if path.is_dir():
        raise InputError(f"--model {spec!r}: {path} is a directory, not a Python file")
    if not path.is_file():
        raise InputError(f"--model {spec!r}: the Python file {path} does not exist")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"_captum_lmac_user_{path.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, str(path))
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"--model {spec!r}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        with _on_sys_path(path.parent):
            module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InputError(f"--model {spec!r}: running {path} failed: {type(exc).__name__}: {exc}") from None
    return module


def _import_module(target: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise InputError(f"--model {spec!r}: cannot import module {target!r}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # the module itself raised while being imported
        raise InputError(f"--model {spec!r}: importing {target!r} failed: {type(exc).__name__}: {exc}") from None


def _public_callables(module: Any) -> List[str]:
    """Public classes and functions of a module, those defined in it first."""
    names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
    own = [n for n in names if getattr(getattr(module, n), "__module__", None) == getattr(module, "__name__", None)]
    return own + [n for n in names if n not in own]


def _get_attribute(module: ModuleType, attr: str, spec: str) -> Any:
    obj: Any = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = module.__name__ if i == 0 else ".".join(attr.split(".")[:i])
            available = _public_callables(obj)
            close = difflib.get_close_matches(part, available, n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            shown = available[:20] + (["..."] if len(available) > 20 else [])
            raise InputError(
                f"--model {spec!r}: {where!r} has no attribute {part!r}{hint} It has: {shown}"
            )
        obj = getattr(obj, part)
    return obj


def _call_factory(factory: Any, spec: str, kwargs: Dict[str, Any]) -> nn.Module:
    if isinstance(factory, nn.Module):
        if kwargs:
            raise InputError(f"--model {spec!r} names a model instance, which takes no arguments (got {sorted(kwargs)})")
        return factory
    if not callable(factory):
        raise InputError(f"--model {spec!r} names a {type(factory).__name__}, not a callable that builds a model")
    try:
        out = factory(**kwargs)
    except Exception as exc:
        try:
            signature = f"{getattr(factory, '__name__', 'factory')}{inspect.signature(factory)}"
        except (TypeError, ValueError):
            signature = str(factory)
        raise InputError(
            f"--model {spec!r}: the factory raised {type(exc).__name__}: {exc} "
            f"(called with {kwargs or 'no arguments'}; signature {signature})"
        ) from None
    if isinstance(out, tuple) and out and isinstance(out[0], nn.Module):
        out = out[0]  # (model, info) as build_architecture returns
    if not isinstance(out, nn.Module):
        raise InputError(f"--model {spec!r}: the factory returned a {type(out).__name__}, not a torch.nn.Module")
    return out


def _load_torchscript(path: Path, spec: str) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        payload = None
    if isinstance(payload, dict):
        raise CheckpointError(
            f"--model {spec!r}: {path} holds weights (a dict with keys {list(payload)[:5]}), not a TorchScript model; "
            "give the architecture as --model pkg.module:factory (or file.py:factory) and this file as --weights"
        )
    raise CheckpointError(f"--model {spec!r}: {path} is not a TorchScript file ({reason}); expected {_SPEC_FORMS}")


def load_model(spec: Union[PathLike, nn.Module], weights: Optional[PathLike] = None, **factory_kwargs: Any) -> nn.Module:
    r"""Build (or load) a user's model from a spec string and optional weights; returns it in eval mode.

    Args:
        spec (str or Path): ``"pkg.module:factory"``, ``"path/to/file.py:factory"`` or the path of
            a TorchScript file (see the module docstring). An ``nn.Module`` is passed through.
        weights (str or Path, optional): A file read with ``torch.load(weights_only=True)``: a
            state dict, a dict holding one (``state_dict`` / ``model_state_dict`` / ``model``),
            or a captum_lmac checkpoint.
        **factory_kwargs: Keyword arguments of the factory (e.g. ``n_classes=10``).

    Returns:
        nn.Module: the model, with the weights loaded, in eval mode.

    Raises:
        InputError: a spec of the wrong form, a file or module that does not exist or cannot be
            imported (with the ImportError text), a missing attribute (listing what the module
            has), a factory that raises (with its message) or returns no ``nn.Module``.
        CheckpointError: a weights file that is missing, unsafe to load, of an unknown layout,
            or that does not fit the model (missing / unexpected keys and shape mismatches, the
            first few of each); a TorchScript file that is not one.

    Examples::

        >>> load_model("captum_lmac.nn.zoo:CRNN", n_classes=10, n_mels=64)
        >>> load_model("models/my_net.py:build", "my_net_weights.pt")
        >>> load_model("exported/model.ts")
    """
    if isinstance(spec, nn.Module):
        model = spec
    else:
        model = _build(str(spec), factory_kwargs)
    if weights is not None:
        load_weights(model, weights)
    check_finite_module(model, f"the model of --model {str(spec)!r}" if not isinstance(spec, nn.Module) else "the model",
                        hint="it cannot be explained (check its weights)")
    return model.eval()


def _build(spec: str, factory_kwargs: Dict[str, Any]) -> nn.Module:
    if not spec.strip():
        raise InputError(f"--model is empty; expected {_SPEC_FORMS}")
    path = Path(spec)
    if ":" in spec and not path.is_file():
        target, attr = spec.rsplit(":", 1)
        if not attr:
            raise InputError(f"--model {spec!r} names no factory after ':'; expected {_SPEC_FORMS}")
        looks_like_file = target.endswith(".py") or "/" in target or "\\" in target
        module = _import_file(Path(target), spec) if looks_like_file else _import_module(target, spec)
        return _call_factory(_get_attribute(module, attr, spec), spec, factory_kwargs)
    if path.is_file():
        if path.suffix == ".py":
            module = _import_file(path, spec)
            raise InputError(
                f"--model {spec!r}: a Python file needs the factory to call, e.g. '{spec}:<factory>'; "
                f"its callables are {_public_callables(module)[:20]}"
            )
        if factory_kwargs:
            raise InputError(f"--model {spec!r} is a TorchScript file, which takes no factory arguments "
                             f"(got {sorted(factory_kwargs)})")
        return _load_torchscript(path, spec)
    if path.suffix in (".py", ".pt", ".pth", ".ts", ".jit", ".bin") or "/" in spec:
        raise InputError(f"--model {spec!r}: the file {path} does not exist")
    raise InputError(f"--model {spec!r} is not of a known form; expected {_SPEC_FORMS}")


# --- weights ----------------------------------------------------------------------------------------------------


def _state_dict_of(payload: Any, path: Path) -> Dict[str, Tensor]:
    if isinstance(payload, dict) and "kind" in payload and "state" in payload and "format_version" in payload:
        payload = payload["state"]  # a captum_lmac checkpoint (captum_lmac._io.save_checkpoint)
    elif isinstance(payload, dict):
        for key in _STATE_KEYS:
            inner = payload.get(key)
            if isinstance(inner, dict) and inner and all(torch.is_tensor(v) for v in inner.values()):
                payload = inner
                break
    if not (isinstance(payload, dict) and payload and all(torch.is_tensor(v) for v in payload.values())):
        keys = list(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} holds no state dict (top level: {keys}); save one with torch.save(model.state_dict(), path)"
        )
    return payload


def _strip_prefix(state: Dict[str, Tensor], own: Sequence[str]) -> Dict[str, Tensor]:
    own_set = set(own)
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in state) and not own_set & set(state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if len(own_set & set(stripped)) > 0:
                return stripped
    return state


def load_weights(model: nn.Module, weights: PathLike, strict: bool = True) -> nn.Module:
    r"""Load a weights file into ``model`` (``torch.load(weights_only=True)``), explaining any misfit.

    Args:
        model (nn.Module): The model (eager or TorchScript).
        weights (str or Path): See :func:`load_model`.
        strict (bool): Refuse missing or unexpected keys (shape mismatches are always refused).

    Raises:
        CheckpointError: naming the file and, for a misfit, the missing keys, the unexpected keys
            and the shape mismatches (the first few of each).
    """
    path = Path(weights)
    if path.is_dir():
        raise CheckpointError(f"the weights path {path} is a directory, not a weights file")
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"{path} cannot be loaded safely with torch.load(weights_only=True) ({type(exc).__name__}: {first}); "
            "save the weights as a state dict: torch.save(model.state_dict(), path)"
        ) from None
    own = model.state_dict()
    state = _strip_prefix(_state_dict_of(payload, path), list(own))
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"the weights in {path} hold NaN or infinite values in {first_names(bad)}")
    reason = state_misfit(model, state, strict=strict, sides=("file", "model"))
    if reason:
        raise CheckpointError(
            f"the weights in {path} do not fit the {type(model).__name__} built by --model: {reason}"
            " (is it the same architecture and the same factory arguments, e.g. n_classes?)"
        )
    model.load_state_dict(state, strict=strict)
    return model


# --- the model the methods explain -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def adapt_model(
    model: nn.Module,
    stft: STFT,
    input: str = "auto",
    output: OutputSpec = None,
    from_probabilities: bool = False,
    n_classes: Optional[int] = None,
    probe_seconds: float = 1.0,
) -> nn.Module:
    r"""Make the X (N, 1, F, T) → logits module the methods explain, and check it on a probe input.

    Args:
        model (nn.Module): The user's classifier (e.g. from :func:`load_model`).
        stft (STFT): The analysis of X (for a waveform model also the clips' sample rate).
        input (str): What the model takes: ``"spectrogram"`` (X itself), ``"waveform"`` (wrapped in
            :class:`~captum_lmac.nn.adapters.WaveformClassifier`) or ``"auto"``: a model declaring a
            ``sample_rate`` is a waveform model; otherwise X is tried first, then waveforms.
        output: How to find the logits in the model's output (see
            :func:`~captum_lmac.nn.adapters.select_logits`); a spectrogram model whose output is
            not a plain tensor is wrapped in :class:`~captum_lmac.nn.adapters.PickLogits`.
        from_probabilities (bool): The model outputs probabilities; explain their logits.
        n_classes (int, optional): Expected number of classes (e.g. of the data set).
        probe_seconds (float): Length of the two random probe clips.

    Returns:
        nn.Module: the model, or a wrapper around it (then the user's layer names get a
        ``model.`` prefix: :func:`qualify_layers`).

    Raises:
        InputError: if the model does not give (N, classes) logits on the probe, naming the shape
            it gave, or gives another number of classes than ``n_classes``; a waveform model whose
            sample rate differs from the STFT's.
    """
    if input not in ("auto", "spectrogram", "waveform"):
        raise InputError(f"input must be 'auto', 'spectrogram' or 'waveform', got {input!r}")
    if not isinstance(stft, STFT):
        raise InputError(f"stft must be a captum_lmac.STFT, got {type(stft).__name__}")
    if not isinstance(model, nn.Module) and not callable(model):
        raise InputError(f"model must be an nn.Module, got {type(model).__name__}")
    check_finite_module(model, "the model", hint="it cannot be explained (check its weights)")
    probe_seconds = check_number(probe_seconds, "probe_seconds", minimum=0.0, strict_minimum=True)
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(2, max(int(probe_seconds * stft.sample_rate), stft.n_fft), generator=g)
    X, phase = stft.analyze(wav)
    if input == "auto":
        kinds = ["waveform"] if model_sample_rate(model) is not None else ["spectrogram", "waveform"]
    else:
        kinds = [input]
    errors = []
    for kind in kinds:
        probe = X if kind == "spectrogram" else wav
        if kind == "waveform":  # a sample-rate mismatch is reported as it is
            wf = WaveformClassifier(model, stft, output=output, from_probabilities=from_probabilities)
        try:
            if kind == "waveform":
                adapted: nn.Module = wf
                with _eval(adapted), wf.using_phase(phase, length=wav.shape[-1]):
                    logits = adapted(X)
            else:
                with _eval(model):
                    raw = model(X)
                logits = select_logits(raw, output, X.shape[0], from_probabilities, where="the model")
                plain = torch.is_tensor(raw) and output is None and not from_probabilities
                adapted = model if plain else PickLogits(model, output, from_probabilities)
        except InputError as exc:
            if len(kinds) == 1:
                raise InputError(f"on a probe {kind} input of shape {tuple(probe.shape)}: {exc}") from None
            errors.append(f"as a {kind} model: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - the user's forward failed on this kind of input
            msg = f"it fails on a probe input of shape {tuple(probe.shape)}: {type(exc).__name__}: {exc}"
            if len(kinds) == 1:
                raise InputError(f"as a {kind} model, {msg}") from None
            errors.append(f"as a {kind} model: {msg}")
            continue
        if not torch.isfinite(logits).all():
            raise InputError(f"as a {kind} model, it returns NaN or infinite scores on a probe input of shape "
                             f"{tuple(probe.shape)}; it cannot be explained (check its weights)")
        if n_classes is not None and logits.shape[1] != int(n_classes):
            raise InputError(f"the model returns {logits.shape[1]} class scores but the data has {n_classes} classes")
        return adapted
    raise InputError("the model gives no (N, classes) logits on a probe input: " + " | ".join(errors))


def qualify_layers(model: nn.Module, layers: Sequence[LayerSpec]) -> List[LayerSpec]:
    """Layer names of the user's model → names in the adapted model (``model.`` prefix of a wrapper).

    A name that exists in ``model`` itself is kept; otherwise, if ``model`` wraps the user's model
    (:class:`WaveformClassifier`, :class:`PickLogits`) and the name exists there, it is prefixed
    with ``model.``; any other name is returned unchanged (resolving it then reports the closest
    existing names). :class:`~captum_lmac.nn.hooks.Hook` specs are rewritten the same way.
    """
    inner = getattr(model, "model", None) if isinstance(model, (WaveformClassifier, PickLogits, SpectrogramInputClassifier)) else None
    names = {n for n, _ in model.named_modules()}
    inner_names = {n for n, _ in inner.named_modules()} if isinstance(inner, nn.Module) else set()

    def qualify(name: str) -> str:
        return f"model.{name}" if name not in names and name in inner_names else name

    out: List[LayerSpec] = []
    for spec in layers:
        if isinstance(spec, str):
            out.append(qualify(spec))
        elif isinstance(spec, Hook) and isinstance(spec.layer, str):
            out.append(Hook(qualify(spec.layer), spec.pick, spec.layout, spec.drop_tokens, spec.grid, spec.fold))
        else:
            out.append(spec)
    return out


__all__ = ["load_model", "load_weights", "adapt_model", "qualify_layers"]
