r"""``layers="auto"``: pick decoder layers for an unknown model by one documented rule (:data:`AUTO_RULE`)."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..errors import InputError
from .hooks import (
    _SEQUENCE_MODULES,
    Hook,
    _batch_size_of,
    _is_torchscript,
    _pick_tensor,
    infer_layout,
    normalize_output,
)

AUTO_RULE = (
    "one forward pass on the example with a hook on every module; each output read with the default Hook "
    "rules; dropped: the front end (modules that finish before the first module with parameters starts), "
    "normalisation / dropout / identity layers, outputs without a time axis of length >= 2 and outputs that "
    "cannot be read; modules returning the very same tensor count once, under the highest-level name that is "
    "not a plain container (ModuleList / ModuleDict / an nn.Sequential of blocks); activations take the "
    "layout of the layer that fed them; a sequence of F'*T' + k tokens (k <= 4) with the D channels of an "
    "earlier (N, D, F', T') map (or any token sequence of that length) is read as that grid without its k "
    "leading tokens; per distinct resolution (F', T') the highest-level module wins (the last to run on ties), "
    "the last n resolutions in execution order are taken, topped up with the highest-level remaining modules "
    "(latest first) when there are fewer than n; the result is in execution order (shallowest first)"
)
"""The documented rule of :func:`auto_layers`."""

_PASS_THROUGH = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.modules.dropout._DropoutNd,
    nn.Identity,
)


def _is_plain_container(module: nn.Module) -> bool:
    """ModuleList / ModuleDict, or an nn.Sequential of blocks (a child with children of its own)."""
    if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return True
    return isinstance(module, nn.Sequential) and any(len(list(c.children())) for c in module.children())


def _is_elementwise(module: nn.Module, in_shape: Optional[tuple], out: Any) -> bool:
    """Activations, pass-through layers, and parameter-free leaves that keep their input's shape
    (e.g. HF ``GELUActivation``): their 3-D output has the layout of their input."""
    if isinstance(module, _SEQUENCE_MODULES):
        return False
    if type(module).__module__ == "torch.nn.modules.activation" or isinstance(module, _PASS_THROUGH):
        return True
    leaf = not any(True for _ in module.children()) and not any(True for _ in module.parameters())
    return leaf and torch.is_tensor(out) and in_shape == tuple(out.shape)


@dataclasses.dataclass
class AutoLayers:
    """What :func:`auto_layers` chose: ``names``, ``hooks`` (with any reading options), ``explanation``.

    Unpacks as ``names, explanation = auto_layers(...)``; ``str()`` gives the explanation.
    """

    names: List[str]
    hooks: List[Hook]
    explanation: str
    candidates: List[Dict[str, Any]]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.names, self.explanation))

    def __str__(self) -> str:
        return self.explanation


@contextmanager
def _all_eval(model: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _trace_modules(model: nn.Module, args: tuple) -> Dict[str, Dict[str, Any]]:
    """Run ``model(*args)`` once; per module: start/end order, last output, number of calls."""
    records: Dict[str, Dict[str, Any]] = {}
    clock = [0]

    def tick() -> int:
        clock[0] += 1
        return clock[0]

    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def pre(_m, a, name=name):
            rec = records.setdefault(name, {"calls": 0})
            rec["start"] = tick()
            rec["in_id"] = id(a[0]) if a and torch.is_tensor(a[0]) else None
            rec["in_shape"] = tuple(a[0].shape) if a and torch.is_tensor(a[0]) else None

        def post(m, _a, out, name=name):
            rec = records[name]
            rec.update(end=tick(), out=out, module=m)
            rec["calls"] += 1

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        with torch.no_grad(), _all_eval(model):
            model(*args)
    finally:
        for h in handles:
            h.remove()
    return {k: v for k, v in records.items() if "end" in v}


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _infer_grid(t: Tensor, layout: str, maps: List[Tuple[int, ...]]) -> Optional[Tuple[str, int, int]]:
    """(layout, leading tokens, F') if the 3-D output ``t`` holds the patches of an earlier (N, D, F', T') map.

    First a sequence with the map's D channels in either layout and F'·T' + k tokens (k <= 4),
    latest map first; then, for a sequence already read as tokens (NTC), F'·T' + k tokens alone.
    """
    grids = [(d, f, tt) for _, d, f, tt in reversed(maps) if f > 1]
    for d, f, tt in grids:
        for lay, length, channels in (("NTC", t.shape[1], t.shape[2]), ("NCT", t.shape[2], t.shape[1])):
            if channels == d and 0 <= length - f * tt <= 4:
                return lay, int(length - f * tt), int(f)
    if layout == "NTC":
        for d, f, tt in grids:
            if 0 <= t.shape[1] - f * tt <= 4:
                return "NTC", int(t.shape[1] - f * tt), int(f)
    return None


def auto_layers(model: nn.Module, example_input: Union[Tensor, Tuple[Any, ...]], n: int = 4) -> AutoLayers:
    r"""Pick decoder layers for an unknown model (``layers="auto"``) by the rule in :data:`AUTO_RULE`.

    In words: keep the modules whose output, read as (N, C, F', T') or (N, C, T'), has a time axis,
    skip the front end and pass-through layers, count identical outputs once (the block rather than
    its last sub-layer), and take the last ``n`` distinct resolutions — the deepest blocks that
    still have time structure, as the L-MAC paper takes CNN14's four deepest blocks.

    Args:
        model (nn.Module): The classifier (X → logits; a waveform model inside
            :class:`~captum_lmac.nn.adapters.WaveformClassifier` is fine).
        example_input: One input, or a tuple of forward arguments (e.g. ``(X, phase)``). A batch of
            one is repeated to two so chunks folded into the batch can be told from the batch.
        n (int): Layers to pick.

    Returns:
        AutoLayers: ``names`` (dotted, in execution order), ``hooks`` (:class:`Hook` specs to
        pass as ``layers``; they carry ``grid``/``drop_tokens`` for token sequences),
        ``explanation`` (printable) and ``candidates`` (one dict per module considered). A
        TorchScript model gives no layers (it cannot be hooked; use ``layers=[]``).

    Examples::

        >>> names, why = auto_layers(model, X[:2])
        >>> print(why)
        >>> lmac = LMAC(model, layers=auto_layers(model, X[:2]).hooks)
    """
    if int(n) < 1:
        raise InputError(f"n must be >= 1, got {n}")
    title = type(model).__name__
    if _is_torchscript(model):
        text = (f"layers='auto' on {title}: a TorchScript model has no hookable layers; "
                "use layers=[] (the decoder reads the input spectrogram only)")
        return AutoLayers([], [], text, [])
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    args = tuple(a.repeat(2, *[1] * (a.dim() - 1)) if torch.is_tensor(a) and a.dim() and a.shape[0] == 1 else a
                 for a in args)
    batch = _batch_size_of(args, {})
    records = _trace_modules(model, args)
    starts = [r["start"] for r in records.values() if _owns_parameters(r["module"])]
    first_param = min(starts) if starts else 0
    maps: List[Tuple[int, ...]] = []  # shapes of the (N, D, F', T') maps seen so far
    rows: List[Dict[str, Any]] = []
    skipped: Dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1
    groups: Dict[int, List[Dict[str, Any]]] = {}
    layout_of: Dict[int, str] = {}  # id of a picked output tensor → the layout it was read with
    for name, rec in sorted(records.items(), key=lambda kv: kv[1]["end"]):
        module = rec["module"]
        row = {"name": name, "type": type(module).__name__, "depth": name.count("."), "end": rec["end"],
               "start": rec["start"], "calls": rec["calls"], "hook": Hook(name)}
        try:
            t, key = _pick_tensor(rec["out"], None, batch, name)
            default = infer_layout(module, key)
            layout = default
            if _is_elementwise(module, rec.get("in_shape"), rec["out"]) and rec.get("in_id") in layout_of:
                layout = layout_of[rec["in_id"]]
            grid = _infer_grid(t, layout, maps) if t.dim() == 3 and t.shape[0] == batch else None
            if grid is not None:
                layout = grid[0]
                row["hook"] = Hook(name, drop_tokens=grid[1], grid=(grid[2], -1))
            if layout != default and t.dim() == 3:
                row["hook"] = dataclasses.replace(row["hook"], layout=layout)
            layout_of[id(t)] = layout
            h = normalize_output(rec["out"], batch, row["hook"], module, name)
        except Exception:  # noqa: BLE001 - an unreadable output is simply not a candidate
            skip("output not readable as a map or sequence")
            continue
        if h.dim() == 4:
            maps.append(tuple(h.shape))
        if rec["end"] < first_param:
            skip("front end")
            continue
        if isinstance(module, _PASS_THROUGH):
            skip("normalisation / dropout / identity")
            continue
        if h.shape[-1] < 2:
            skip("no time axis of length >= 2")
            continue
        row.update(shape=tuple(h.shape), resolution=(int(h.shape[2]) if h.dim() == 4 else 1, int(h.shape[-1])))
        groups.setdefault(id(t), []).append(row)
    for members in groups.values():
        keep = [m for m in members if not _is_plain_container(records[m["name"]]["module"])] or members
        best = min(keep, key=lambda m: (m["depth"], -m["end"]))
        for m in members:
            if m is not best:
                m["status"] = f"same output as {best['name']}"
        rows.extend(members)
    rows.sort(key=lambda r: r["end"])
    cands = [r for r in rows if "status" not in r]
    by_res: Dict[Tuple[int, int], Dict[str, Any]] = {}
    for r in cands:
        cur = by_res.get(r["resolution"])
        if cur is None or (r["depth"], -r["end"]) < (cur["depth"], -cur["end"]):
            by_res[r["resolution"]] = r
    chosen = sorted(by_res.values(), key=lambda r: r["end"])[-int(n):]
    for r in sorted((r for r in cands if r not in chosen), key=lambda r: (r["depth"], -r["end"])):
        if len(chosen) >= int(n):
            break
        chosen.append(r)
    chosen.sort(key=lambda r: r["end"])
    for r in cands:
        if r in chosen:
            r["status"] = "chosen"
        elif by_res.get(r["resolution"]) is r:
            r["status"] = f"not among the last {int(n)} resolutions"
        else:
            r["status"] = f"resolution {r['resolution']} taken by {by_res[r['resolution']]['name']}"
    hooks = [r["hook"] for r in chosen]
    names = [r["name"] for r in chosen]
    lines = [f"layers='auto' chose {len(names)} layer(s) of {title}: {names}"]
    for r in chosen:
        opts = "" if r["hook"] == Hook(r["name"]) else f"  read as {r['hook']!r}"
        lines.append(f"  {r['name']:<32} {r['type']:<24} output {r['shape']}{opts}")
    lines.append(f"rule: {AUTO_RULE}.")
    lines.append(f"{len(cands)} candidate(s) with a time axis ({len(rows)} modules):")
    shown = rows[-40:]
    if len(rows) > len(shown):
        lines.append(f"  ... {len(rows) - len(shown)} earlier modules not shown")
    for r in shown:
        calls = f" ({r['calls']} calls, last used)" if r["calls"] > 1 else ""
        lines.append(f"  {r['name']:<32} {str(r['shape']):<22} {r['status']}{calls}")
    if skipped:
        lines.append("not candidates: " + ", ".join(f"{k}: {v}" for k, v in skipped.items()))
    if not names:
        lines.append("no layer has a time axis: use layers=[] (the decoder reads the input only) or name layers")
    return AutoLayers(names, hooks, "\n".join(lines), [{k: v for k, v in r.items() if k != "hook"} for r in rows])


__all__ = ["AUTO_RULE", "AutoLayers", "auto_layers"]
