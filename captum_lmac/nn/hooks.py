r"""Capture the outputs of classifier layers with temporary forward hooks, in one canonical shape.

Decoders (L-MAC, LMAC-ZS, L2I) read the outputs of user-named classifier layers. Real models
return many shapes; :func:`normalize_output` turns each into a tensor the decoders understand:
a 2-D map (N, C, F', T') or a 1-D sequence (N, C, T'), with N the batch size of the *input*.

A layer is named by a dotted string (``"net.block3"``), the module itself, or a :class:`Hook`
that also says how to read its output:

- **pick** — which tensor of a tuple / dict / dataclass / HF ``ModelOutput`` (a key, an attribute
  name, an index or a callable). Default: a tensor as is; a dict or dataclass gives its
  ``last_hidden_state``, else its first tensor with the batch dimension; a tuple (``nn.GRU`` /
  ``nn.LSTM``: ``(output, h_n)``) its first tensor with the batch dimension.
- **layout** of 3-D outputs — ``"NCT"`` (channels first, e.g. ``nn.Conv1d``), ``"NTC"`` (token
  sequences, e.g. transformers) or ``"TNC"`` (batch second); of 4-D outputs — ``"NCFT"`` (default)
  or ``"NCTF"`` (time before frequency, as in PANNs, whose conv blocks output (N, C, T', F')). Default: inferred from the module —
  ``"NTC"`` for batch-first ``nn.RNN/GRU/LSTM``, ``nn.TransformerEncoder(Layer)`` and
  ``nn.MultiheadAttention``, for ``nn.Linear`` / ``nn.LayerNorm`` / ``nn.Embedding`` and for a
  module whose last registered shape-defining sub-layer is one of those, and for a picked
  ``last_hidden_state`` / ``hidden_states``; ``"TNC"`` for the same modules with
  ``batch_first=False``; a module may declare ``output_layout = "NTC"`` itself; otherwise ``"NCT"``.
- **drop_tokens** — leading tokens to drop (CLS / distillation tokens): ``k`` or ``(k_front, k_back)``.
- **grid** — ``(F', T')`` of a token sequence that is a flattened patch grid (the order of
  ``conv(x).flatten(2).transpose(1, 2)``, as in AST); one entry may be ``-1``. The tokens become
  a (N, C, F', T') map.
- **fold** — outputs whose batch dimension is a multiple of the input's (a streaming model that
  folds C chunks of each clip into the batch, N·C rows ordered clip-major as ``x.reshape(N * C,
  ...)`` gives). Default (``None``) detects it from the input batch size; an ``int`` states C;
  ``False`` forbids it. The chunks are put back along time: per-chunk maps (N·C, D, F', T'c) become
  (N, D, F', C·T'c), per-chunk sequences (N·C, D, T'c) become (N, D, C·T'c), and per-chunk vectors
  (N·C, D) become (N, D, C) sequences over chunks.

A (N, D) vector output (no time axis, not folded) becomes a (N, D, 1) sequence. Where the shape
cannot be resolved, :class:`~captum_lmac.InputError` names the layer, what it returned, the input
batch size, and the ``Hook`` option that fixes it.

:func:`~captum_lmac.nn.auto_layers.auto_layers` picks decoder layers for an unknown model.
TorchScript models cannot be hooked (hooks register but never fire), so they are refused.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..errors import InputError

LAYOUTS = ("NCT", "NTC", "TNC", "NCFT", "NCTF")
"""Layouts of hooked outputs: 3-D channels first, tokens (batch first), batch second; 4-D maps with
frequency before time (the default) or time before frequency (PANNs)."""
_MAP_LAYOUTS = ("NCFT", "NCTF")

PickSpec = Union[None, str, int, Callable[[Any], Tensor]]


@dataclasses.dataclass(frozen=True, repr=False)
class Hook:
    r"""One classifier layer for a decoder, and how to read its output.

    Args:
        layer (str or nn.Module): Dotted name inside the model, or the module.
        pick: Which tensor of a tuple / dict / dataclass output (key, attribute name, index or
            callable). Default: see the module docstring.
        layout (str, optional): ``"NCT"``, ``"NTC"`` or ``"TNC"`` for 3-D outputs (default:
            inferred), ``"NCFT"`` (default) or ``"NCTF"`` for 4-D maps.
        drop_tokens (int or (int, int)): Tokens to drop from the front (and back) of the sequence.
        grid (tuple of int, optional): ``(F', T')`` of flattened patch tokens (one may be -1).
        fold (None, bool or int): Chunks folded into the batch: None = detect, int = chunks per
            clip, False = never.

    Examples::

        >>> Hook("net.gru")                                   # (output, h_n), batch-first → NCT
        >>> Hook("encoder.layer.3", drop_tokens=2, grid=(12, -1))   # AST tokens → (N, C, 12, T')
        >>> Hook("chunk_encoder", fold=31)                    # 31 chunks per clip folded into the batch
        >>> Hook("backbone", pick="last_hidden_state", layout="NTC")
    """

    layer: Union[str, nn.Module]
    pick: PickSpec = None
    layout: Optional[str] = None
    drop_tokens: Union[int, Tuple[int, int]] = 0
    grid: Optional[Tuple[int, int]] = None
    fold: Union[None, bool, int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.layer, (str, nn.Module)):
            raise InputError(f"Hook layer must be a dotted name or an nn.Module, got {type(self.layer).__name__}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise InputError(f"Hook layout must be one of {list(LAYOUTS)} or None, got {self.layout!r}")
        d = self.drop_tokens
        pair = (d, 0) if isinstance(d, int) and not isinstance(d, bool) else d
        ok = isinstance(pair, (tuple, list)) and len(pair) == 2
        if not (ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)):
            raise InputError(f"Hook drop_tokens must be an int >= 0 or a pair of them, got {d!r}")
        object.__setattr__(self, "drop_tokens", tuple(int(v) for v in pair) if pair[1] else int(pair[0]))
        if self.grid is not None:
            g = tuple(self.grid)
            if len(g) != 2 or not all(isinstance(v, int) and (v > 0 or v == -1) for v in g) or g == (-1, -1):
                raise InputError(f"Hook grid must be (F', T') with positive ints (one may be -1), got {self.grid!r}")
            object.__setattr__(self, "grid", g)
        if not (self.fold is None or isinstance(self.fold, bool) or (isinstance(self.fold, int) and self.fold >= 1)):
            raise InputError(f"Hook fold must be None, False, True or a chunk count >= 1, got {self.fold!r}")

    def __repr__(self) -> str:
        layer = repr(self.layer) if isinstance(self.layer, str) else type(self.layer).__name__
        opts = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)[1:]
                if getattr(self, f.name) != f.default]
        return f"Hook({', '.join([layer] + opts)})"

    @property
    def drop(self) -> Tuple[int, int]:
        """``drop_tokens`` as (front, back)."""
        d = self.drop_tokens
        return (d, 0) if isinstance(d, int) else d

    def config(self) -> Dict[str, Any]:
        """JSON-serialisable form (for checkpoints); the layer must be a name and ``pick`` not a callable."""
        if not isinstance(self.layer, str):
            raise InputError("only a Hook that names its layer by a string can be saved; use the dotted name")
        if callable(self.pick):
            raise InputError(f"Hook({self.layer!r}) has a callable pick, which cannot be saved; use a key or an index")
        cfg: Dict[str, Any] = {"layer": self.layer}
        for f in ("pick", "layout", "grid", "fold"):
            v = getattr(self, f)
            if v is not None:
                cfg[f] = list(v) if isinstance(v, tuple) else v
        if self.drop != (0, 0):
            cfg["drop_tokens"] = list(self.drop)
        return cfg

    @classmethod
    def from_config(cls, cfg: Union[str, Dict[str, Any]]) -> "Hook":
        """Inverse of :meth:`config` (a plain string is a layer name)."""
        if isinstance(cfg, str):
            return cls(cfg)
        cfg = dict(cfg)
        for k in ("grid", "drop_tokens"):
            if isinstance(cfg.get(k), list):
                cfg[k] = tuple(cfg[k])
        return cls(**cfg)


LayerSpec = Union[nn.Module, str, Hook]


# --- resolving names --------------------------------------------------------------------------------------


def _is_torchscript(model: Any) -> bool:
    return isinstance(model, torch.jit.ScriptModule)


def unknown_layer_message(model: nn.Module, name: str, n_close: int = 5) -> str:
    """Error text for a layer name that does not exist: the closest names and the top-level children."""
    names = [n for n, _ in model.named_modules() if n]
    close = difflib.get_close_matches(name, names, n=n_close, cutoff=0.5)
    children = [n for n, _ in model.named_children()]
    msg = f"the classifier has no layer named {name!r}"
    if close:
        msg += f"; closest names: {close}"
    msg += f"; its top-level children are {children}"
    if len(names) <= 40:
        msg += f"; all layers: {names}"
    return msg


def _resolve_one(model: nn.Module, spec: Any, by_module: Dict[int, str]) -> Tuple[nn.Module, str]:
    if isinstance(spec, str):
        try:
            return model.get_submodule(spec), spec
        except AttributeError:
            raise InputError(unknown_layer_message(model, spec)) from None
    if isinstance(spec, nn.Module):
        if id(spec) not in by_module:
            raise InputError(f"layer {type(spec).__name__} is not a submodule of the given classifier")
        return spec, by_module[id(spec)]
    raise InputError(f"layers must be nn.Module, str or Hook, got {type(spec).__name__}")


@dataclasses.dataclass
class ResolvedHook:
    """A :class:`Hook` bound to its module inside a model (from :func:`resolve_hooks`)."""

    module: nn.Module
    name: str
    hook: Hook

    def normalize(self, out: Any, batch_size: Optional[int] = None) -> Tensor:
        """This layer's output as (N, C, F', T') or (N, C, T'); see :func:`normalize_output`."""
        return normalize_output(out, batch_size, self.hook, self.module, self.name)


def resolve_hooks(model: nn.Module, layers: Sequence[LayerSpec], layout: Optional[str] = None) -> List[ResolvedHook]:
    """Resolve names, modules and :class:`Hook` specs inside ``model``; an empty list gives ``[]``.

    Args:
        model (nn.Module): The classifier.
        layers: Dotted names, modules or :class:`Hook` objects (or one of them).
        layout (str, optional): Layout given to plain names/modules (a method-wide
            ``sequence_layout``); a Hook's own ``layout`` wins.

    Raises:
        InputError: for an unknown name (listing the closest names and the top-level children),
            a module outside ``model``, or a TorchScript model (its hooks never fire).
    """
    if isinstance(layers, (nn.Module, str, Hook)):
        layers = [layers]
    layers = list(layers)
    if layers and _is_torchscript(model):
        raise InputError(
            "a TorchScript model cannot be hooked (forward hooks never fire inside it): "
            "use layers=[] so the decoder reads the input spectrogram only"
        )
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"layout must be one of {list(LAYOUTS)} or None, got {layout!r}")
    by_module = {id(m): n for n, m in model.named_modules()}
    out = []
    for spec in layers:
        if not isinstance(spec, (Hook, str, nn.Module)):
            raise InputError(f"layers must be nn.Module, str or Hook, got {type(spec).__name__}")
        hook = spec if isinstance(spec, Hook) else Hook(spec, layout=layout)
        module, name = _resolve_one(model, hook.layer, by_module)
        out.append(ResolvedHook(module, name, hook))
    return out


def resolve_layers(model: nn.Module, layers: Sequence[LayerSpec]) -> tuple:
    """Resolve modules, dotted names or :class:`Hook` specs inside ``model`` to ``(modules, names)``.

    (A Hook's reading options are carried by :func:`resolve_hooks`, not by this pair.)

    Raises:
        InputError: for an empty list, an unknown name (listing the names that exist), or a module
            that is not part of ``model``.
    """
    if isinstance(layers, (nn.Module, str, Hook)):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise InputError("give at least one classifier layer whose output feeds the decoder")
    hooks = resolve_hooks(model, layers)
    return [h.module for h in hooks], [h.name for h in hooks]


# --- normalising outputs ------------------------------------------------------------------------------------

_NTC_MODULES = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.Bilinear)
_NCT_MODULES = (
    nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.GroupNorm, nn.AvgPool1d, nn.MaxPool1d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.Upsample,
)
_SEQUENCE_MODULES = (nn.RNNBase, nn.TransformerEncoder, nn.TransformerEncoderLayer, nn.TransformerDecoder,
                     nn.TransformerDecoderLayer, nn.MultiheadAttention)


def _batch_first(module: nn.Module) -> bool:
    for obj in (module, getattr(module, "self_attn", None)):
        if obj is not None and getattr(obj, "batch_first", None) is not None:
            return bool(obj.batch_first)
    layers = getattr(module, "layers", None)
    if layers is not None and len(layers):
        return _batch_first(layers[0])
    return False


def infer_layout(module: Optional[nn.Module], picked_key: Optional[str] = None) -> str:
    """The layout a 3-D output of ``module`` is assumed to have (the rule in the module docstring)."""
    declared = getattr(module, "output_layout", None)
    if declared in LAYOUTS:
        return declared
    if picked_key in ("last_hidden_state", "hidden_states"):
        return "NTC"
    if module is None:
        return "NCT"
    if isinstance(module, _SEQUENCE_MODULES):
        return "NTC" if _batch_first(module) else "TNC"
    if isinstance(module, _NTC_MODULES):
        return "NTC"
    if isinstance(module, _NCT_MODULES):
        return "NCT"
    # A composite block: its last registered shape-defining sub-layer (registration order usually
    # follows the forward pass).
    for sub in reversed(list(module.modules())[1:]):
        if isinstance(sub, _SEQUENCE_MODULES):
            return "NTC" if _batch_first(sub) else "TNC"
        if isinstance(sub, _NTC_MODULES):
            return "NTC"
        if isinstance(sub, _NCT_MODULES) or isinstance(sub, (nn.Conv2d, nn.BatchNorm2d)):
            return "NCT"
    return "NCT"


def describe_output(out: Any) -> str:
    """Short description of a hooked output (type and tensor shapes) for error messages."""
    if torch.is_tensor(out):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, nn.utils.rnn.PackedSequence):
        return "a PackedSequence"
    if isinstance(out, Mapping):
        parts = [f"{k}: {tuple(v.shape) if torch.is_tensor(v) else type(v).__name__}" for k, v in out.items()]
        return f"a {type(out).__name__} {{{', '.join(parts)}}}"
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return f"a {type(out).__name__} with fields {[f.name for f in dataclasses.fields(out)]}"
    if isinstance(out, (tuple, list)):
        parts = [str(tuple(v.shape)) if torch.is_tensor(v) else describe_output(v) for v in out]
        return f"a {type(out).__name__} ({', '.join(parts)})"
    return f"a {type(out).__name__}"


def _items(out: Any) -> Optional[List[Tuple[Optional[str], Any]]]:
    """(key, value) pairs of a container output, or None if it is not a container."""
    if isinstance(out, Mapping):
        return [(str(k), v) for k, v in out.items()]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    if isinstance(out, (tuple, list)):
        return [(None, v) for v in out]
    return None


def _pick_tensor(out: Any, pick: PickSpec, n: Optional[int], name: str) -> Tuple[Tensor, Optional[str]]:
    where = f"hooked layer {name!r}"
    if isinstance(out, nn.utils.rnn.PackedSequence):
        raise InputError(f"{where} returned a PackedSequence; hook a module after pad_packed_sequence, "
                         "or pick the data with Hook(..., pick=callable)")
    if callable(pick):
        try:
            t = pick(out)
        except Exception as exc:
            raise InputError(f"{where}: its pick callable failed on {describe_output(out)}: {exc}") from None
        key = None
    elif pick is not None:
        items = _items(out)
        if isinstance(pick, bool) or items is None:
            raise InputError(f"{where} returned {describe_output(out)}, which Hook(pick={pick!r}) cannot index")
        if isinstance(pick, int):
            values = [v for _, v in items if v is not None]
            if not -len(values) <= pick < len(values):
                raise InputError(f"{where}: Hook(pick={pick}) is out of range for {describe_output(out)}")
            t, key = values[pick], None
        else:
            found = [v for k, v in items if k == pick]
            if not found and not isinstance(out, (Mapping, tuple, list)) and hasattr(out, pick):
                found = [getattr(out, pick)]
            if not found:
                raise InputError(f"{where} has no {pick!r} in {describe_output(out)}; use Hook(..., pick=<key>)")
            t, key = found[0], pick
    elif torch.is_tensor(out):
        return out, None
    else:
        items = _items(out)
        if items is None:
            raise InputError(f"{where} returned {describe_output(out)}; pass Hook(..., pick=callable) to get a tensor")
        tensors = [(k, v) for k, v in items if torch.is_tensor(v) and v.dim() >= 1]
        named = [(k, v) for k, v in tensors if k == "last_hidden_state"]
        if named:
            t, key = named[0][1], named[0][0]
        else:
            exact = [(k, v) for k, v in tensors if n is None or v.shape[0] == n]
            multiple = [(k, v) for k, v in tensors if n is not None and v.shape[0] % n == 0]
            chosen = exact or multiple
            if not chosen:
                raise InputError(
                    f"{where} returned {describe_output(out)} and no tensor in it has the input batch size {n} "
                    "(or a multiple) as its first dimension; pass Hook(..., pick=<key or index>)"
                )
            key, t = chosen[0]
    if not torch.is_tensor(t):
        raise InputError(f"{where}: the picked value is {describe_output(t)}, not a tensor")
    return t, key


def _fold_factor(rows: int, n: Optional[int], fold: Union[None, bool, int], name: str, shape: tuple) -> int:
    if fold is False or fold is None and n is None:
        if fold is False and n is not None and rows != n:
            raise InputError(
                f"hooked layer {name!r} gives shape {shape}, whose first dimension {rows} is not the input batch "
                f"size {n}, but the Hook says fold=False; use Hook({name!r}, fold=<chunks per clip>) "
                "or pick a tensor with the batch first"
            )
        return 1
    if isinstance(fold, int) and not isinstance(fold, bool):
        expect = None if n is None else n * fold
        if (expect is not None and rows != expect) or rows % fold:
            raise InputError(
                f"hooked layer {name!r} gives shape {shape}: its first dimension {rows} is not "
                f"{'the input batch size ' + str(n) + ' × ' if n is not None else 'a multiple of '}{fold} chunks "
                f"(Hook fold={fold}); fix the chunk count or use fold=None to detect it"
            )
        return fold
    if n is None:  # fold=True with no batch size known
        raise InputError(f"hooked layer {name!r}: fold=True needs the input batch size; give fold=<chunks per clip>")
    if rows == n:
        return 1
    if rows % n:
        raise InputError(
            f"hooked layer {name!r} gives shape {shape}: its first dimension {rows} is neither the input batch "
            f"size {n} nor a multiple of it (a streaming model folding chunks into the batch); "
            f"use Hook({name!r}, pick=...) to choose another tensor, layout='TNC' if the batch is second, "
            "or fold=<chunks per clip>"
        )
    return rows // n


def normalize_output(
    out: Any,
    batch_size: Optional[int] = None,
    hook: Optional[Hook] = None,
    module: Optional[nn.Module] = None,
    name: Optional[str] = None,
) -> Tensor:
    r"""One hooked layer output → (N, C, F', T') map or (N, C, T') sequence (N = input batch size).

    Args:
        out: What the layer returned (tensor, tuple, dict, dataclass, HF ``ModelOutput``).
        batch_size (int, optional): N of the classifier's input; needed to detect folded chunks
            and to check the result.
        hook (Hook, optional): Reading options (default: all automatic).
        module (nn.Module, optional): The layer (its type decides the default layout).
        name (str, optional): The layer's name, for error messages.

    Returns:
        Tensor: (N, C, F', T') or (N, C, T').

    Raises:
        InputError: naming the layer, what it returned, the input batch size and the Hook option
            that fixes it.

    Examples::

        >>> gru = nn.GRU(8, 16, batch_first=True)
        >>> normalize_output(gru(torch.randn(2, 30, 8)), 2, module=gru).shape
        torch.Size([2, 16, 30])
    """
    name = name or (hook.layer if hook is not None and isinstance(hook.layer, str) else type(module).__name__)
    hook = hook or Hook(name)
    t, key = _pick_tensor(out, hook.pick, batch_size, name)
    seen = f"{describe_output(out)}" + ("" if torch.is_tensor(out) else f" (picked {tuple(t.shape)})")
    layout = hook.layout or infer_layout(module, key)
    if t.dim() == 3 and layout in _MAP_LAYOUTS:
        raise InputError(f"hooked layer {name!r} returned {seen}, a 3-D output, but Hook layout={layout!r} is for "
                         "4-D maps; use 'NCT', 'NTC' or 'TNC'")
    if t.dim() == 4 and layout == "NCTF":
        t = t.transpose(2, 3)
    if t.dim() == 3 and layout == "TNC":
        t, layout = t.transpose(0, 1), "NTC"
    if t.dim() not in (2, 3, 4):
        raise InputError(
            f"hooked layer {name!r} returned {seen} for a batch of {batch_size}; the decoder needs "
            "(N, C, F', T') maps, (N, C, T') / (N, T', C) sequences or (N, C) vectors: "
            "use Hook(..., pick=callable) to reshape it"
        )
    k = _fold_factor(int(t.shape[0]), batch_size, hook.fold, name, tuple(t.shape))
    if t.dim() == 3:
        if layout == "NTC":
            t = t.transpose(1, 2)
        front, back = hook.drop
        if front or back:
            if front + back >= t.shape[-1]:
                raise InputError(f"hooked layer {name!r}: drop_tokens={hook.drop_tokens} leaves no tokens of {seen}")
            t = t[..., front : t.shape[-1] - back]
        if hook.grid is not None:
            t = _to_grid(t, hook.grid, name, seen)
    elif hook.grid is not None or hook.drop != (0, 0):
        raise InputError(f"hooked layer {name!r} returned {seen}: grid/drop_tokens apply to token sequences only")
    n = t.shape[0] // k
    if k > 1:
        if t.dim() == 2:  # one vector per chunk → a sequence over chunks
            t = t.reshape(n, k, t.shape[1]).transpose(1, 2)
        elif t.dim() == 3:
            d, tc = t.shape[1:]
            t = t.reshape(n, k, d, tc).permute(0, 2, 1, 3).reshape(n, d, k * tc)
        else:
            d, f, tc = t.shape[1:]
            t = t.reshape(n, k, d, f, tc).permute(0, 2, 3, 1, 4).reshape(n, d, f, k * tc)
    elif t.dim() == 2:
        t = t.unsqueeze(-1)
    return t


def _to_grid(t: Tensor, grid: Tuple[int, int], name: str, seen: str) -> Tensor:
    f, tt = grid
    L = t.shape[-1]
    f = L // tt if f == -1 and tt > 0 else f
    tt = L // f if tt == -1 else tt
    if f * tt != L:
        raise InputError(
            f"hooked layer {name!r} returned {seen}: {L} tokens (after drop_tokens) do not form the grid {grid}; "
            "check Hook grid and drop_tokens (CLS / distillation tokens)"
        )
    return t.reshape(t.shape[0], t.shape[1], f, tt)


# --- recording ---------------------------------------------------------------------------------------------


def _batch_size_of(args: tuple, kwargs: dict) -> Optional[int]:
    for v in list(args) + list(kwargs.values()):
        if torch.is_tensor(v) and v.dim() >= 1:
            return int(v.shape[0])
    return None


class LayerRecorder:
    """Record the outputs of layers during forward passes run inside :meth:`capture`.

    Hooks exist only inside the ``with`` block, so the model behaves normally elsewhere (other
    Captum methods, the user's own code).

    Args:
        layers: Plain modules (their outputs are recorded as they are, the first element of a
            tuple — the behaviour before :class:`Hook` existed) or :class:`ResolvedHook` objects
            from :func:`resolve_hooks` (outputs normalised by :func:`normalize_output`).
        model (nn.Module, optional): The classifier; a pre-hook on it records the input batch size
            (needed to restore chunks folded into the batch).

    Examples::

        >>> rec = LayerRecorder(resolve_hooks(model, ["net.block3", Hook("net.gru")]), model=model)
        >>> with rec.capture() as feats:
        ...     logits = model(X)
        >>> [f.shape for f in feats]
    """

    def __init__(self, layers: Sequence[Union[nn.Module, ResolvedHook]], model: Optional[nn.Module] = None) -> None:
        self.hooks: List[Optional[ResolvedHook]] = [l if isinstance(l, ResolvedHook) else None for l in layers]
        self.modules = [l.module if isinstance(l, ResolvedHook) else l for l in layers]
        self.names = [l.name if isinstance(l, ResolvedHook) else str(i) for i, l in enumerate(layers)]
        self.model = model

    @contextmanager
    def capture(self, batch_size: Optional[int] = None) -> Iterator[List[Tensor]]:
        """Record during the block; yields the list that holds each layer's latest output.

        Args:
            batch_size (int, optional): Input batch size (default: read by the model pre-hook).
        """
        outputs: List[Tensor] = [None] * len(self.modules)  # type: ignore[list-item]
        state = {"n": batch_size}

        def pre_hook(_module, args, kwargs):
            if batch_size is None:
                state["n"] = _batch_size_of(args, kwargs)

        def make_hook(i: int):
            spec = self.hooks[i]

            def hook(_module: nn.Module, _inp, out) -> None:
                if spec is not None:
                    outputs[i] = spec.normalize(out, state["n"])
                    return
                if isinstance(out, (tuple, list)):  # e.g. nn.GRU returns (output, h_n)
                    out = out[0]
                if not torch.is_tensor(out):
                    raise InputError(f"hooked layer {i} returned {type(out).__name__}, not a tensor")
                outputs[i] = out

            return hook

        handles = [m.register_forward_hook(make_hook(i)) for i, m in enumerate(self.modules)]
        if self.model is not None:
            handles.append(self.model.register_forward_pre_hook(pre_hook, with_kwargs=True))
        try:
            yield outputs
        finally:
            for h in handles:
                h.remove()
        missing = [self.names[i] for i, o in enumerate(outputs) if o is None]
        if missing:
            raise InputError(f"hooked layer(s) {missing} did not run in the classifier's forward pass")


__all__ = [
    "Hook", "LayerSpec", "LAYOUTS", "ResolvedHook", "resolve_hooks", "resolve_layers", "normalize_output",
    "infer_layout", "describe_output", "unknown_layer_message", "LayerRecorder",
]
