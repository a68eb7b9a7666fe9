"""Shared machinery of the whole package (our own small equivalents of ``captum._utils``).

One place for what every layer needs: the Captum ``target`` type and its parser, the guard that
puts a model in eval mode (and optionally freezes its parameters), Captum's tuple conventions,
the one JSON sanitiser used by every artefact and report, and handing freed memory back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .errors import InputError

TargetType = Union[None, int, Tuple[int, ...], Tensor, List[Any], np.ndarray, range]
"""Captum's ``target``: None, a class index, a tuple of indices (outputs with more than two
dimensions), a tensor, or a list with one entry per sample."""


def format_target(target: TargetType, n: int, n_classes: Optional[int] = None,
                  default: Optional[Tensor] = None) -> Optional[Tensor]:
    """Captum targets → LongTensor (N,) on the CPU; ``default`` for ``target=None``.

    Accepts an int, a 0-d/1-d integer tensor, a list/tuple/range or a numpy array of ints; a single
    value is broadcast to every sample. The one place class targets are checked, for every method
    and metric.

    Raises:
        InputError: on a bool or float target, a per-sample list of the wrong length, a negative
            index or (when ``n_classes`` is given) an index ≥ ``n_classes``.
    """
    if target is None:
        return default
    if isinstance(target, bool):
        raise InputError("target must be a class index, not a bool")
    if isinstance(target, (int, np.integer)):
        t = torch.tensor([int(target)], dtype=torch.long)
    elif torch.is_tensor(target) or isinstance(target, np.ndarray):
        t = torch.as_tensor(target).detach().flatten().cpu()
        if t.is_floating_point() or t.dtype == torch.bool:
            raise InputError("target tensor must hold integer class indices")
        t = t.long()
    elif isinstance(target, (list, tuple, range)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   or (torch.is_tensor(v) and v.numel() == 1) for v in target):
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


def _dense_channels_last(x: Tensor) -> bool:
    """A 4-D tensor laid out channels-last with no size-1 spatial axis (so no ambiguous stride)."""
    return x.dim() == 4 and min(x.shape[2:]) > 1 and x.is_contiguous(memory_format=torch.channels_last)


def _contiguous_input(module: nn.Module, args: Tuple[Any, ...]) -> Optional[Tuple[Any, ...]]:
    """Forward pre-hook: the first input as a contiguous tensor unless it already is contiguous or
    densely channels-last (None: leave the inputs alone)."""
    x = args[0] if args else None
    if torch.is_tensor(x) and not (x.is_contiguous() or _dense_channels_last(x)):
        return (x.contiguous(),) + tuple(args[1:])
    return None


@contextmanager
def eval_mode(model: Any, freeze: bool = False) -> Iterator[None]:
    """Every submodule of ``model`` in eval mode (and, with ``freeze``, its parameters without
    gradients) inside the block; each module's flag and each parameter's ``requires_grad`` are
    restored afterwards. Anything that is not an ``nn.Module`` passes through untouched.

    Inside the block every BatchNorm layer also receives its input as a contiguous tensor. This
    works around a PyTorch CPU bug (seen in torch 2.9.1): eval-mode ``BatchNorm2d`` given an input
    strided like ``(N, C, 1, T)`` with stride 1 along C — what ``bn0(x.transpose(1, 2))`` gets
    from a torchaudio ``MelSpectrogram`` output, the PANNs layout — returns a wrong *input*
    gradient (the forward is right, and our classifiers still train to normal accuracy), which silently
    corrupts every input-gradient method and the learned methods' fits on such a model. The
    copy changes no value; the hooks are removed on exit. Channels-last inputs without a size-1
    spatial axis (the reference CNNs' blocks) get correct gradients and pass through uncopied.

    The one eval/freeze guard of the package: attributions, metrics, fits and the harness use it.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()] if freeze else []
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    hooks = [m.register_forward_pre_hook(_contiguous_input) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in flags:
            m.training = flag


def as_tuple(x: Any) -> Tuple[Any, ...]:
    """Wrap a single object into a 1-tuple; leave tuples alone (Captum's input convention)."""
    return x if isinstance(x, tuple) else (x,)


def additional_args(args: Any) -> Tuple[Any, ...]:
    """Captum's ``additional_forward_args``: None → no extra args, a tuple → several, else one."""
    if args is None:
        return ()
    return as_tuple(args)


def to_jsonable(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: the one sanitiser of results, reports, caches and checkpoints.

    Mappings get string keys; tuples become lists; tensors and numpy arrays become (nested) lists
    and one-element ones numbers; numpy scalars become Python numbers; NaN and infinities become
    None; paths become strings; any other object its ``str``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if torch.is_tensor(obj) or isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist()) if obj.ndim else to_jsonable(obj.item())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


@functools.lru_cache(maxsize=1)
def _glibc() -> Any:
    """glibc through ctypes, or None (not Linux, or another C library such as musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # both are glibc's
    except (OSError, AttributeError):
        return None
    return libc


def release_memory() -> bool:
    """Collect garbage and hand the C heap's free pages back to the operating system.

    Tensors freed in a long run (a fit's activations, the temporaries of building a data set) leave
    free pages inside glibc's heap that still count as resident memory until something reuses
    them; ``malloc_trim(0)`` returns them. The benchmark calls this between its phases so that its
    peak RSS reflects what is alive. Returns whether trimming was available (glibc on Linux).
    """
    gc.collect()
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`reuse_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 64 << 20}


def reuse_freed_memory() -> bool:
    """Let glibc keep freed blocks for reuse instead of handing each back to the operating system.

    By default glibc maps every block above a (self-adjusting) threshold of its own and unmaps it on
    free, and shrinks its heap whenever its free top passes another threshold: a loop that allocates
    and frees batch-sized tensors then takes a fresh page fault for every page of every batch (the
    default esc10 suite: 150 million faults, a fifth of its CPU time in the kernel). This puts blocks
    up to 32 MB on the heap, keeps up to 1 GB of its free top and grows it 64 MB at a time; memory
    still goes back at :func:`release_memory`. The command-line entry points call it: a process
    setting, not made on import. Returns whether it applied (glibc on Linux)."""
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in _MALLOC_SETTINGS.items())


def peak_rss_mb() -> Optional[float]:
    """This process's peak resident memory so far in MB (10^6 bytes; its high-water mark from
    ``getrusage``, children such as data-loader workers not included), or None where unavailable."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return round(peak / (1e6 if sys.platform == "darwin" else 1e3), 1)


__all__ = ["TargetType", "format_target", "eval_mode", "as_tuple", "additional_args", "to_jsonable",
           "release_memory", "reuse_freed_memory", "peak_rss_mb"]
