"""Atomic, pickle-free persistence shared by every saved artefact (classifiers, interpreters)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Union

import torch

from .errors import CheckpointError

PathLike = Union[str, "os.PathLike[str]"]

#: Written into every artefact so a loader can tell what it is reading.
FORMAT_VERSION = 1


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path`` in one rename.

    A crash half-way leaves either the old file or no file, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(path: PathLike, kind: str, state: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> Path:
    """Save tensors plus JSON-able metadata so that ``torch.load(weights_only=True)`` can read it.

    ``meta`` is stored as a JSON string, which keeps the file free of arbitrary Python objects.
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "meta_json": json.dumps(meta, sort_keys=True),
        "state": {k: v.detach().cpu().contiguous() for k, v in state.items()},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: PathLike, kind: str) -> tuple:
    """Load a file written by :func:`save_checkpoint`; returns ``(state, meta)``.

    Uses ``weights_only=True`` (no pickle code execution) and checks the artefact ``kind``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or a file holding arbitrary objects
        raise CheckpointError(
            f"{path} is not a captum_lmac checkpoint that can be loaded safely (weights_only): {exc}"
        ) from None
    if not isinstance(payload, dict) or "kind" not in payload or "state" not in payload:
        raise CheckpointError(f"{path} is not a captum_lmac checkpoint (no 'kind'/'state' entries)")
    if payload["kind"] != kind:
        raise CheckpointError(f"{path} holds a '{payload['kind']}' checkpoint, expected '{kind}'")
    meta = json.loads(payload.get("meta_json", "{}"))
    return payload["state"], meta


def model_fingerprint(model: torch.nn.Module) -> Dict[str, Any]:
    """A fingerprint of a model's architecture and weights.

    Two models share a fingerprint when they have the same parameter/buffer names and shapes and
    the same weights (a cheap checksum per tensor). Used to refuse loading an interpreter that was
    fitted for a different classifier.
    """
    shapes = {}
    checksum = 0.0
    for i, (name, t) in enumerate(sorted(model.state_dict().items())):
        shapes[name] = list(t.shape)
        if t.is_floating_point() and t.numel():
            tf = t.detach().double().flatten()
            weights = torch.linspace(1.0, 2.0, tf.numel(), dtype=torch.float64)
            checksum += float((tf * weights).sum()) * (1.0 + 1e-3 * i)
    return {"class": type(model).__name__, "shapes": shapes, "checksum": round(checksum, 4)}


def fingerprint_mismatch(saved: Dict[str, Any], model: torch.nn.Module, rtol: float = 1e-5) -> str:
    """Return a human-readable reason why ``model`` does not match ``saved``, or '' if it does."""
    now = model_fingerprint(model)
    if saved.get("shapes") != now["shapes"]:
        saved_keys, now_keys = set(saved.get("shapes", {})), set(now["shapes"])
        diff = sorted(saved_keys ^ now_keys)[:3] or [
            k for k in sorted(now_keys) if saved["shapes"][k] != now["shapes"][k]
        ][:3]
        return (
            f"the architecture differs (fitted for a {saved.get('class')}, given a {now['class']}; "
            f"first differing tensors: {diff})"
        )
    a, b = float(saved.get("checksum", 0.0)), now["checksum"]
    if abs(a - b) > rtol * max(1.0, abs(a), abs(b)):
        return "the architecture matches but the weights differ (a different training run or checkpoint)"
    return ""
