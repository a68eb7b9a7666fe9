"""Atomic, pickle-free persistence shared by every saved artefact (classifiers, interpreters, reports).

Writing (:func:`atomic_write`, :func:`deferred_writes`, :func:`check_writable`):

- A file is written to a *partial* file next to it, named ``.<name>.<pid>-<token>.partial<suffix>``
  (hidden, and saying what it is), flushed to disk (``fsync``), then renamed onto the target in
  one ``os.replace`` (and the folder is fsynced): a crash leaves the old file or the new one,
  never a truncated one.
- A failed write removes its partial file. So does SIGTERM during the write (in the main thread
  the signal is turned into cleanup, then re-delivered, so the process still ends as it would
  have). SIGKILL cannot be caught: the partial file stays, and the next write of the same target
  removes every partial file of it whose process no longer runs.
- :func:`deferred_writes` stages several writes and renames them all only when its block ends
  without an error (``captum-lmac explain`` writes its WAV and PNG this way): a failed run leaves
  no partial outputs.
- An ``OSError`` (read-only folder, an existing directory as the target, a parent that is a file,
  a full disk) becomes one :class:`~captum_lmac.errors.InputError` naming the path the user gave,
  never the partial file's name.

Reading (:func:`load_checkpoint`): the one loader of every artefact. It uses
``torch.load(weights_only=True)`` (no pickle code execution) and checks the ``format_version``
(a file from a newer version is refused, naming both versions), the ``kind``, the required
entries, the JSON metadata (malformed → :class:`~captum_lmac.errors.CheckpointError`), the stored
classifier fingerprint, and the finiteness of every stored tensor; :func:`load_state_checked`
checks the stored tensors' names and shapes against the module they are loaded into.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import math
import os
import re
import secrets
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

from ._utils import to_jsonable
from .errors import CheckpointError, InputError

PathLike = Union[str, "os.PathLike[str]"]

#: Written into every artefact so a loader can tell what it is reading. Files with a larger
#: version come from a newer captum_lmac and are refused.
FORMAT_VERSION = 1

#: Entries every checkpoint has.
REQUIRED_KEYS = ("format_version", "kind", "meta_json", "state")

_PARTIAL = "partial"


class _Staged(list):
    """The writes staged by :func:`deferred_writes`: ``(partial, target)`` pairs; ``under`` limits
    which targets are staged (None: all)."""

    under: Optional[Path] = None
    created: List[Path]

    def accepts(self, path: Path) -> bool:
        if self.under is None:
            return True
        try:
            path.resolve().relative_to(self.under)
        except ValueError:
            return False
        return True


_GROUP: "contextvars.ContextVar[Optional[_Staged]]" = contextvars.ContextVar("captum_lmac_deferred_writes",
                                                                             default=None)


# --- writing ----------------------------------------------------------------------------------------------------


def partial_name(path: PathLike, pid: Optional[int] = None, token: Optional[str] = None) -> Path:
    """The partial file a write of ``path`` goes through: ``.<name>.<pid>-<token>.partial<suffix>``."""
    path = Path(path)
    pid = os.getpid() if pid is None else pid
    token = secrets.token_hex(4) if token is None else token
    return path.parent / f".{path.name}.{pid}-{token}.{_PARTIAL}{path.suffix}"


def _partial_pattern(path: Path) -> "re.Pattern[str]":
    return re.compile(rf"^\.{re.escape(path.name)}\.(\d+)-[0-9a-f]+\.{_PARTIAL}{re.escape(path.suffix)}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: the process exists but belongs to someone else
        return True
    return True


def stale_partials(path: PathLike) -> List[Path]:
    """Partial files of ``path`` left by writes whose process no longer runs (e.g. SIGKILLed)."""
    path = Path(path)
    pattern = _partial_pattern(path)
    out = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    for p in entries:
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            out.append(p)
    return out


def remove_stale_partials(path: PathLike) -> List[Path]:
    """Delete the partial files :func:`stale_partials` finds; returns them."""
    removed = []
    for p in stale_partials(path):
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.EISDIR: "it is an existing directory",
    errno.ENOTDIR: "a component of its folder is a file, not a folder",
    errno.ENOSPC: "no space left on the device",
    errno.EEXIST: "a file of that name is in the way of its folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def write_error(path: PathLike, exc: OSError, what: str = "") -> InputError:
    """An OSError of a write as one InputError naming the user's ``path`` (not a temporary name)."""
    reason = _REASONS.get(exc.errno, exc.strerror or type(exc).__name__)
    return InputError(f"cannot write {what + ' ' if what else ''}{path}: {reason}")


def check_writable(path: PathLike, what: str = "") -> Path:
    """Check up front that ``path`` can be written (before a long computation whose result goes there).

    Raises:
        InputError: if ``path`` is empty or an existing directory, if the nearest existing folder
            above it is a file, or if that folder is not writable.
    """
    if path is None or str(path).strip() == "":
        raise InputError(f"the {what or 'output'} path is empty")
    p = Path(path)
    label = f"{what + ' ' if what else ''}{path}"
    if p.is_dir():
        raise InputError(f"cannot write {label}: it is an existing directory")
    anc = p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise InputError(f"cannot write {label}: {anc} is a file, not a folder")
    if anc.exists() and not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {label}: permission denied (the folder {anc} is not writable)")
    return p


class _Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """Inside the block (main thread only) SIGTERM raises, so ``finally`` clauses remove partial
    files; afterwards the signal is re-delivered to the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError, AttributeError):
        yield
        return
    if previous in (signal.SIG_IGN, None) or getattr(previous, "_captum_lmac", False):
        yield  # ignored, unknown or already ours (nested writes)
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    handler._captum_lmac = True  # type: ignore[attr-defined]
    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    except _Terminated as term:
        signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(term.signum, None)
        else:  # SIG_DFL: die of the signal, as the process would have without us
            os.kill(os.getpid(), term.signum)
        raise
    finally:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGTERM, previous)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_partial(path: Path, what: str) -> Path:
    check_writable(path, what)
    new_dirs = []
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        new_dirs.append(anc)
        anc = anc.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc, what) from None
    group = _GROUP.get()
    if group is not None and group.accepts(path):
        group.created.extend(new_dirs)  # removed again (if still empty) when the block fails
    remove_stale_partials(path)
    for _ in range(10):
        tmp = partial_name(path)
        try:
            fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        except OSError as exc:
            raise write_error(path, exc, what) from None
        os.close(fd)
        return tmp
    raise InputError(f"cannot write {path}: could not create a partial file next to it")


def atomic_write(path: PathLike, write: Callable[[str], None], what: str = "") -> Path:
    """Call ``write(partial_path)`` then move the partial file onto ``path`` in one rename.

    The partial file keeps ``path``'s suffix (so writers that infer the format from it work), is
    fsynced before the rename, and is removed if ``write`` fails or SIGTERM arrives. Inside
    :func:`deferred_writes` the rename waits for the end of that block.

    Raises:
        InputError: when ``path`` cannot be written (naming ``path``), see :func:`check_writable`.
    """
    if path is None or str(path).strip() == "":
        raise InputError(f"the {what or 'output'} path is empty")
    path = Path(path)
    tmp = _create_partial(path, what)
    handed_over = False
    with _sigterm_as_exception():
        try:
            try:
                write(str(tmp))
                _fsync_file(tmp)
            except OSError as exc:
                raise write_error(path, exc, what) from None
            group = _GROUP.get()
            if group is not None and group.accepts(path):
                group.append((tmp, path))
                handed_over = True
                return path
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise write_error(path, exc, what) from None
            handed_over = True
            _fsync_dir(path.parent)
        finally:
            if not handed_over:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    return path


@contextlib.contextmanager
def deferred_writes(under: Optional[PathLike] = None) -> Iterator[List[Tuple[Path, Path]]]:
    """Stage every :func:`atomic_write` inside the block; rename them onto their targets only when
    the block completes. If it raises (or SIGTERM arrives), none of the outputs appears and the
    partial files are removed. Nested blocks join the outermost one.

    Args:
        under (path, optional): Stage only writes into this folder (e.g. a run's output folder, so
            that caches written during the run are kept even if it fails); default: every write.

    Examples::

        >>> with deferred_writes():
        ...     write_wav("explanation.wav", audio, 16000)
        ...     plot_explanation(X[0], mask[0], "explanation.png", 16000, 186)   # fails → no WAV either
    """
    if _GROUP.get() is not None:
        yield _GROUP.get()  # type: ignore[misc]
        return
    staged = _Staged()
    staged.under = Path(under).resolve() if under is not None else None
    staged.created = []
    token = _GROUP.set(staged)
    try:
        with _sigterm_as_exception():
            committed, ok = 0, False
            try:
                yield staged
                for tmp, path in staged:
                    try:
                        os.replace(tmp, path)
                    except OSError as exc:
                        raise write_error(path, exc) from None
                    committed += 1
                for folder in {p.parent for _, p in staged}:
                    _fsync_dir(folder)
                ok = True
            finally:
                for tmp, _ in staged[committed:]:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                if not ok:
                    for folder in staged.created:  # deepest first
                        with contextlib.suppress(OSError):
                            folder.rmdir()
    finally:
        _GROUP.reset(token)


# --- checkpoints ------------------------------------------------------------------------------------------------


def nonfinite_tensors(state: Dict[str, Any]) -> List[str]:
    """Names of the floating-point tensors in ``state`` that hold NaN or infinite values."""
    return [k for k, v in state.items()
            if torch.is_tensor(v) and (v.is_floating_point() or v.is_complex()) and v.numel()
            and not bool(torch.isfinite(v).all())]


def first_names(names: Sequence[str], k: int = 3) -> str:
    """The first ``k`` names as a list, with how many more there are."""
    return str(list(names[:k])) + (f" (+{len(names) - k} more)" if len(names) > k else "")


def save_checkpoint(path: PathLike, kind: str, state: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> Path:
    """Save tensors plus JSON-able metadata so that ``torch.load(weights_only=True)`` can read it.

    ``meta`` is stored as a JSON string (through :func:`~captum_lmac._utils.to_jsonable`: NaN
    becomes null), which keeps the file free of arbitrary Python objects.

    Raises:
        InputError: if a tensor holds NaN or infinite values (nothing is written), or ``path``
            cannot be written.
    """
    bad = nonfinite_tensors(state)
    if bad:
        raise InputError(f"refusing to save {path}: tensor(s) {first_names(bad)} hold NaN or infinite values")
    payload = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "meta_json": json.dumps(to_jsonable(meta), sort_keys=True, allow_nan=False),
        "state": {k: v.detach().cpu().contiguous() for k, v in state.items()},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def check_fingerprint(fp: Any, path: PathLike) -> Dict[str, Any]:
    """A stored model fingerprint, checked: a dict with a ``shapes`` dict and a finite ``checksum``."""
    if not isinstance(fp, dict) or not isinstance(fp.get("shapes"), dict):
        raise CheckpointError(f"{path}: the stored classifier fingerprint is malformed (no 'shapes' table)")
    c = fp.get("checksum")
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(float(c)):
        raise CheckpointError(f"{path}: the stored classifier fingerprint is malformed (checksum {c!r} is not a "
                              "finite number); the file is damaged")
    return fp


def checkpoint_kind(path: PathLike) -> str:
    """The artefact kind (``"lmac"``, ``"lmac_td"``, ``"classifier"``, ...) a checkpoint holds,
    read safely (``weights_only``); the full checks are :func:`load_checkpoint`'s."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a captum_lmac checkpoint that can be loaded safely (weights_only): {_first_line(exc)}"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("kind"), str):
        raise CheckpointError(f"{path} is not a captum_lmac checkpoint (no 'kind' entry)")
    return payload["kind"]


def load_checkpoint(path: PathLike, kind: str, required: Sequence[str] = ()) -> tuple:
    """Load a file written by :func:`save_checkpoint`; returns ``(state, meta)``.

    Args:
        path: The file.
        kind (str): The artefact kind it must hold (``"classifier"``, ``"lmac"``, ...).
        required (sequence of str): Metadata entries it must have.

    Raises:
        CheckpointError: a missing path or a directory; a file that cannot be loaded with
            ``weights_only=True``; a missing entry; a ``format_version`` newer than
            :data:`FORMAT_VERSION` (naming both) or not a positive integer; another ``kind``;
            metadata that is not a JSON object or lacks a ``required`` entry; a malformed
            fingerprint; a stored tensor holding NaN or infinite values.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or a file holding arbitrary objects
        raise CheckpointError(
            f"{path} is not a captum_lmac checkpoint that can be loaded safely (weights_only): {_first_line(exc)}"
        ) from None
    if not isinstance(payload, dict) or "kind" not in payload or "state" not in payload:
        keys = list(payload)[:6] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a captum_lmac checkpoint (no 'kind'/'state' entries; it holds {keys})")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is a damaged captum_lmac checkpoint: it lacks {missing}")
    version = payload["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version {version!r} is not a positive integer; the file is damaged")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer captum_lmac (checkpoint format_version {version}); this version reads "
            f"format_version {FORMAT_VERSION} and older: upgrade captum_lmac to load it"
        )
    if payload["kind"] != kind:
        raise CheckpointError(f"{path} holds a '{payload['kind']}' checkpoint, expected '{kind}'")
    text = payload["meta_json"]
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: malformed metadata (meta_json is a {type(text).__name__}, not a JSON string)")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{path}: malformed metadata (meta_json is not valid JSON: {exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: malformed metadata (a JSON {type(meta).__name__}, not an object)")
    lacking = [k for k in required if k not in meta]
    if lacking:
        raise CheckpointError(f"{path}: malformed metadata: it lacks {lacking} (has {sorted(meta)})")
    if "fingerprint" in meta:
        check_fingerprint(meta["fingerprint"], path)
    state = payload["state"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise CheckpointError(f"{path}: the 'state' entry is not a table of named tensors; the file is damaged")
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"{path}: stored tensor(s) {first_names(bad)} hold NaN or infinite values "
                              "(a diverged fit or a damaged file)")
    return state, meta


def state_misfit(module: torch.nn.Module, state: Dict[str, torch.Tensor], strict: bool = True,
                 sides: Tuple[str, str] = ("stored", "expected")) -> str:
    """Why ``state`` does not fit ``module`` (missing / unexpected keys, shape mismatches), or ''.

    ``strict=False`` tolerates missing and unexpected keys (as ``load_state_dict(strict=False)``
    does) but never a shape mismatch; ``sides`` names the two shapes in the message.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: {sides[0]} {tuple(state[k].shape)} vs {sides[1]} {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if strict and missing:
        parts.append(f"{len(missing)} missing key(s) {first_names(missing)}")
    if strict and unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) {first_names(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatch(es) {first_names(mismatched)}")
    return "; ".join(parts)


def load_state_checked(module: torch.nn.Module, state: Dict[str, torch.Tensor], where: str = "") -> None:
    """``module.load_state_dict(state)`` after checking names and shapes.

    Raises:
        CheckpointError: naming the missing and unexpected tensors and the shape mismatches.
    """
    reason = state_misfit(module, state)
    if reason:
        raise CheckpointError(f"{where + ': ' if where else ''}the stored weights do not fit: {reason}")
    module.load_state_dict(state)


# --- fingerprints -----------------------------------------------------------------------------------------------


def model_fingerprint(model: torch.nn.Module) -> Dict[str, Any]:
    """A fingerprint of a model's architecture and weights.

    Two models share a fingerprint when they have the same parameter/buffer names and shapes and
    the same weights (a cheap checksum per tensor). Used to refuse loading an interpreter that was
    fitted for a different classifier. NaN / inf weights do not poison the checksum (they count
    as 0) but are listed under ``nonfinite``, so a model with such weights never matches one
    without.
    """
    shapes = {}
    nonfinite = []
    checksum = 0.0
    for i, (name, t) in enumerate(sorted(model.state_dict().items())):
        shapes[name] = list(t.shape)
        if t.is_floating_point() and t.numel():
            tf = t.detach().double().flatten()
            finite = torch.isfinite(tf)
            if not bool(finite.all()):
                nonfinite.append(name)
                tf = torch.where(finite, tf, torch.zeros_like(tf))
            weights = torch.linspace(1.0, 2.0, tf.numel(), dtype=torch.float64)
            checksum += float((tf * weights).sum()) * (1.0 + 1e-3 * i)
    fp: Dict[str, Any] = {"class": type(model).__name__, "shapes": shapes, "checksum": round(checksum, 4)}
    if nonfinite:
        fp["nonfinite"] = nonfinite
    return fp


def fingerprint_mismatch(saved: Dict[str, Any], model: torch.nn.Module, rtol: float = 1e-5) -> str:
    """Return a human-readable reason why ``model`` does not match ``saved``, or '' if it does."""
    now = model_fingerprint(model)
    if now.get("nonfinite"):
        return f"the given {now['class']} has NaN or infinite weights in {first_names(now['nonfinite'])}"
    if not isinstance(saved, dict) or not isinstance(saved.get("shapes"), dict):
        return "the stored fingerprint is malformed"
    if saved.get("shapes") != now["shapes"]:
        saved_keys, now_keys = set(saved.get("shapes", {})), set(now["shapes"])
        diff = sorted(saved_keys ^ now_keys)[:3] or [
            k for k in sorted(now_keys) if saved["shapes"][k] != now["shapes"][k]
        ][:3]
        return (
            f"the architecture differs (fitted for a {saved.get('class')}, given a {now['class']}; "
            f"first differing tensors: {diff})"
        )
    try:
        a = float(saved.get("checksum", float("nan")))
    except (TypeError, ValueError):
        a = float("nan")
    b = now["checksum"]
    if not math.isfinite(a):
        return "the stored weight checksum is not a finite number (a damaged file)"
    if saved.get("nonfinite"):
        return "it was fitted for a classifier with NaN or infinite weights"
    if abs(a - b) > rtol * max(1.0, abs(a), abs(b)):
        return "the architecture matches but the weights differ (a different training run or checkpoint)"
    return ""


__all__ = [
    "checkpoint_kind",
    "FORMAT_VERSION", "REQUIRED_KEYS", "partial_name", "stale_partials", "remove_stale_partials", "write_error",
    "check_writable", "atomic_write", "deferred_writes", "nonfinite_tensors", "save_checkpoint", "check_fingerprint",
    "load_checkpoint", "state_misfit", "load_state_checked", "model_fingerprint", "fingerprint_mismatch",
]
