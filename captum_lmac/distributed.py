r"""torch.distributed helpers for fitting interpreters on several processes (``torchrun``, DDP).

The one fit loop (:meth:`captum_lmac.attr._learned.LearnedAttribution._run_fit`) trains the decoder
with :class:`~torch.nn.parallel.DistributedDataParallel` whenever a process group with more than one
process is initialised; this module holds the small pieces it needs: reading ``torchrun``'s
environment, initialising the group (gloo on CPU, nccl on GPUs), the rank information, the
collectives on plain Python values (JSON through byte tensors — nothing is pickled), and sharding a
global batch into the rank's part.

Conventions (what makes a distributed fit equal a one-process fit with the same global batch):

- ``batch_size`` of ``fit`` is the **global** batch; rank ``r`` of ``W`` trains on rows
  ``[r·n // W, (r + 1)·n // W)`` of every global batch of ``n`` clips (:func:`shard_rows`), so the
  global batches (and their order) are those of a one-process fit;
- each rank's loss is scaled by ``n_r · W / n`` before DDP averages the gradients, so the update is
  the gradient of the loss of the whole global batch even when ``n`` is not divisible by ``W``;
- rank 0 alone validates, logs and writes files; the validation values are broadcast so every
  rank keeps the same best epoch.

Examples::

    # one node, 4 processes (gloo on CPU; nccl when --device cuda and GPUs are present)
    torchrun --nproc_per_node=4 -m captum_lmac.fit --model m.py:net --data clips/ --out lmac.pt
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import InputError

#: The environment variables ``torchrun`` sets for every worker.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its node), ``backend``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def active(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs, validates and writes files)."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """The device collectives run on: this rank's GPU for nccl, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def launched_by_torchrun() -> bool:
    """True when the environment is that of a ``torchrun`` worker (``WORLD_SIZE`` etc. set)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE"))


def current() -> DistInfo:
    """The :class:`DistInfo` of the initialised process group (a single process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())), backend=dist.get_backend())


def init_distributed(backend: Optional[str] = None, device: str = "cpu", timeout_minutes: float = 30.0) -> DistInfo:
    """Initialise the process group from ``torchrun``'s environment (``env://``) and return this rank.

    Args:
        backend (str, optional): ``"gloo"`` (CPU) or ``"nccl"`` (GPUs); default nccl for
            ``device="cuda"``, else gloo.
        device (str): ``"cpu"`` or ``"cuda"`` (each rank takes GPU ``LOCAL_RANK``).
        timeout_minutes (float): How long a collective may wait for the other ranks (rank 0
            validates and writes checkpoints while the others wait).

    Raises:
        InputError: outside ``torchrun`` (no ``RANK`` / ``WORLD_SIZE``), for an unknown backend, or
            for nccl without GPUs.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched_by_torchrun():
        raise InputError(
            "a distributed fit needs torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): "
            "launch it with torchrun --nproc_per_node=N -m captum_lmac.fit ..."
        )
    if device not in ("cpu", "cuda"):
        raise InputError(f"device must be 'cpu' or 'cuda', got {device!r}")
    backend = backend or ("nccl" if device == "cuda" else "gloo")
    if backend not in ("gloo", "nccl"):
        raise InputError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if backend == "nccl" or device == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"backend {backend!r} / device 'cuda' needs GPUs, but torch sees none; use gloo on the CPU")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://",
                            timeout=datetime.timedelta(minutes=float(timeout_minutes)))
    return current()


def shutdown() -> None:
    """Destroy the process group (if one was initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if current().active:
        dist.barrier()


def all_reduce_sum(values: Sequence[float]) -> List[float]:
    """Element-wise sum of a list of floats over the ranks (float64)."""
    info = current()
    if not info.active:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def any_rank(flag: bool) -> bool:
    """True if ``flag`` is true on any rank (e.g. a stop request that must end every rank at the same step)."""
    info = current()
    if not info.active:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(int(t.item()))


def broadcast_json(obj: Any, src: int = 0) -> Any:
    """Send a JSON-able value from rank ``src`` to every rank (as UTF-8 bytes in a tensor; no pickle)."""
    info = current()
    if not info.active:
        return obj
    if info.rank == src:
        data = json.dumps(obj, allow_nan=True).encode("utf-8")
        size = torch.tensor([len(data)], dtype=torch.int64, device=info.device)
    else:
        size = torch.zeros(1, dtype=torch.int64, device=info.device)
    dist.broadcast(size, src)
    if info.rank == src:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(info.device)
    else:
        buf = torch.empty(int(size.item()), dtype=torch.uint8, device=info.device)
    dist.broadcast(buf, src)
    return json.loads(bytes(buf.cpu().tolist()).decode("utf-8"))


def all_reduce_gradients(module: nn.Module, weight: float = 1.0) -> None:
    """``grad ← Σ_ranks weight_r · grad_r`` for every parameter of ``module`` (missing grads count as 0).

    The fit loop uses it for methods that back-propagate inside their step (several backward passes
    per step, e.g. LMAC-ZS clip by clip), which run under DDP's ``no_sync``.
    """
    info = current()
    if not info.active:
        return
    for p in module.parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        if weight != 1.0:
            p.grad.mul_(weight)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


class DecoderDDP(DistributedDataParallel):
    """DistributedDataParallel whose attributes fall back to the wrapped decoder's.

    The methods read decoder attributes (``out_freqs``, ``dictionary``, ``reconstruct`` …) through
    ``self.decoder``; while the fit loop trains, ``self.decoder`` is this wrapper, so calls of the
    decoder go through DDP (gradient all-reduce) and everything else reaches the decoder itself.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def shard_rows(n: int, rank: int, world_size: int) -> slice:
    """Rows of a global batch of ``n`` that rank ``rank`` of ``world_size`` trains on (sizes differ by ≤ 1)."""
    return slice(rank * n // world_size, (rank + 1) * n // world_size)


def shard_batch(item: Any, rank: int, world_size: int) -> Any:
    """This rank's part of a global training batch: a :class:`~captum_lmac.attr._learned.Batch`, a
    tensor, or a tuple / list / dict of them (tensors and lists of the batch's length are sliced
    along their first dimension; everything else is kept)."""
    n = batch_length(item)
    if n is None:
        raise InputError(f"cannot split a training batch of type {type(item).__name__} over {world_size} ranks")
    rows = shard_rows(n, rank, world_size)
    return _slice(item, n, rows)


def batch_length(item: Any) -> Optional[int]:
    """Number of clips in a training batch (its first tensor's first dimension), or None."""
    if torch.is_tensor(item):
        return int(item.shape[0]) if item.dim() else None
    X = getattr(item, "X", None)
    if torch.is_tensor(X):
        return int(X.shape[0])
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (tuple, list)):
        for v in item:
            n = batch_length(v) if torch.is_tensor(v) or hasattr(v, "X") else None
            if n is not None:
                return n
    return None


def _slice(value: Any, n: int, rows: slice) -> Any:
    if torch.is_tensor(value):
        return value[rows] if value.dim() and value.shape[0] == n else value
    if hasattr(value, "__dataclass_fields__") and hasattr(value, "X"):
        fields = {k: _slice(getattr(value, k), n, rows) for k in value.__dataclass_fields__}
        return type(value)(**fields)
    if isinstance(value, dict):
        return {k: _slice(v, n, rows) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(torch.is_tensor(v) for v in value):  # e.g. a list of hooked layer outputs
            return [_slice(v, n, rows) for v in value]
        if len(value) == n:  # per-clip values (captions)
            return value[rows]
        return [_slice(v, n, rows) for v in value]
    if isinstance(value, tuple):
        return tuple(_slice(v, n, rows) for v in value)
    return value


__all__ = ["DistInfo", "current", "init_distributed", "shutdown", "barrier", "launched_by_torchrun",
           "all_reduce_sum", "any_rank", "broadcast_json", "all_reduce_gradients", "DecoderDDP", "shard_rows",
           "shard_batch", "batch_length", "TORCHRUN_ENV"]
