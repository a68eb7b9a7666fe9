"""Resumable fits: the fit-state checkpoint (pickle-free) and a graceful stop on SIGTERM / Ctrl-C.

A fit-state checkpoint (``<checkpoint_dir>/last.pt``, replaced atomically) holds everything the one
fit loop needs to continue exactly where it stopped: the decoder's weights and configuration, the
best epoch's weights, the optimiser state, the RNG states (the global torch RNG and the loop's batch
generator at the start of the epoch and now), the history, the running sums of the epoch and the
method's own sampling state. It is written with :func:`captum_lmac._io.save_checkpoint`, so it loads
with ``torch.load(weights_only=True)``: tensors plus one JSON string.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor

from .._io import load_checkpoint, save_checkpoint
from ..errors import CheckpointError, InputError

#: Artefact kind of a fit-state checkpoint.
FIT_STATE_KIND = "fit_state"
#: File name of the latest fit state in a checkpoint folder.
LAST = "last.pt"
#: Settings a resumed fit must share with the checkpoint (the number of epochs may grow).
RESUME_KEYS = ("kind", "lr", "weight_decay", "batch_size", "seed")


class StopRequest:
    """Set by the first SIGTERM / SIGINT while a checkpointed fit runs; the loop stops at the next step."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals(enabled: bool = True) -> Iterator[StopRequest]:
    """Inside the block the first SIGTERM or SIGINT (Ctrl-C) only sets the yielded :class:`StopRequest`
    (the fit loop then writes a checkpoint at the end of the current step and raises
    :class:`~captum_lmac.errors.FitInterrupted`); a second one acts at once (KeyboardInterrupt /
    SystemExit). Outside the main thread, or with ``enabled=False``, nothing is installed."""
    stop = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {}

    def handler(signum, frame):  # noqa: ARG001
        if stop.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        stop.signum = signum

    # a first signal only sets a flag: an atomic write in progress (a checkpoint) is let finish rather
    # than aborted (see captum_lmac._io.atomic_write); a second one still removes its partial file
    handler._captum_lmac = True  # type: ignore[attr-defined]
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def optimizer_state(opt: torch.optim.Optimizer) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """An optimiser's ``state_dict`` split into tensors (``optim.<param>.<name>``) and JSON."""
    sd = opt.state_dict()
    tensors: Dict[str, Tensor] = {}
    scalars: Dict[str, Dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: Dict[str, Tensor], meta: Dict[str, Any]) -> None:
    """Restore what :func:`optimizer_state` stored."""
    state: Dict[int, Dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"the stored optimiser state does not fit the decoder: {exc}") from None


def json_float(x: float) -> Optional[float]:
    """A float for JSON (None for ±inf / NaN)."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


class FitCheckpointer:
    """Where and when a fit writes its state.

    Args:
        directory (path): The checkpoint folder (``last.pt`` inside).
        every (int): Write at the end of every ``every``-th epoch (and always after the last one).
        every_steps (int, optional): Also write every ``every_steps`` optimisation steps.
        write (bool): Whether this process writes (only rank 0 of a distributed fit does).
    """

    def __init__(self, directory: Union[str, Path], every: int = 1, every_steps: Optional[int] = None,
                 write: bool = True) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError(f"checkpoint_every must be a positive number of epochs, got {every!r}")
        if every_steps is not None and (isinstance(every_steps, bool) or not isinstance(every_steps, int)
                                        or every_steps < 1):
            raise InputError(f"checkpoint_steps must be a positive number of steps or None, got {every_steps!r}")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"checkpoint_dir {self.directory} is a file, not a folder")
        self.every = every
        self.every_steps = every_steps
        self.write = bool(write)

    @property
    def path(self) -> Path:
        return self.directory / LAST

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: Dict[str, Tensor], meta: Dict[str, Any]) -> Path:
        """Write (rank 0 only) atomically; returns the path."""
        if self.write:
            save_checkpoint(self.path, FIT_STATE_KIND, state, meta)
        return self.path

    def load(self) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
        return load_fit_state(self.path)


def load_fit_state(path: Union[str, Path]) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """``(tensors, meta)`` of a fit-state checkpoint (a file or its folder), loaded with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    return load_checkpoint(path, FIT_STATE_KIND)


def check_resumable(meta: Dict[str, Any], key: Dict[str, Any], path: Path) -> None:
    """Refuse to resume a checkpoint written by another method or with other fit settings."""
    stored = meta.get("fit", {})
    diff = [f"{k} {stored.get(k)!r} → {key.get(k)!r}" for k in RESUME_KEYS if stored.get(k) != key.get(k)]
    if diff:
        raise CheckpointError(f"{path} was written by a fit with other settings ({'; '.join(diff)}); "
                              "resume with the same settings or use another checkpoint_dir")


__all__ = ["FIT_STATE_KIND", "LAST", "StopRequest", "stop_on_signals", "optimizer_state", "load_optimizer_state",
           "FitCheckpointer", "load_fit_state", "check_resumable", "json_float"]
