"""Readers for audio data sets stored in their standard folder layouts.

Every labelled data set here is a ``torch.utils.data.Dataset`` whose items are
``(waveform, label, meta)``: a float32 tensor ``(samples,)`` resampled to ``sample_rate`` and cropped
or zero-padded to a fixed ``duration`` (so batches stack), an ``int`` label (index into
``.classes``) and a ``dict`` with at least ``path`` (plus ``fold``, ``category``, ... where the data
set has them). ``.labels`` lists every item's label without reading any audio.

Nothing is downloaded: point a reader at a copy of the data set in its official layout. The
project's shared copies live under :func:`default_data_root`.

- :class:`ESC50` — ESC-50 (and ESC-10 in the same layout), Piczak 2015.
- :class:`UrbanSound8K` — UrbanSound8K, Salamon et al. 2014.
- :class:`FSDD` — Free Spoken Digit Dataset.
- :class:`SpeechFolder`, :class:`NoiseFolder` — unlabelled folders of speech / noise used to
  contaminate clips (out-of-domain conditions, WHAM!-style training mixtures).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._validate import check_number, check_positive_int
from ..audio import read_wav, resample
from ..errors import DataNotFoundError, InputError

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable that overrides the data root.
DATA_ENV = "CAPTUM_LMAC_DATA"

_AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def default_data_root() -> Path:
    """The folder holding the shared data sets.

    The environment variable ``CAPTUM_LMAC_DATA`` if set, else ``<repo root>/../shared/data`` where
    the repo root is the folder containing the ``captum_lmac`` package.

    Returns:
        Path: the data root (it may not exist; readers raise :class:`DataNotFoundError` then).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parent.parent.parent
    return (repo_root.parent / "shared" / "data").resolve()


def fix_length(waveform: Tensor, n_samples: int, pad: str = "end", crop: str = "start") -> Tensor:
    """Crop or zero-pad a (samples,) waveform to ``n_samples``.

    ``pad`` / ``crop`` are ``"end"`` (keep/pad the start … pad at the end), ``"center"`` or
    ``"start"``.
    """
    n = waveform.shape[-1]
    if n == n_samples:
        return waveform
    if n > n_samples:
        excess = n - n_samples
        start = {"start": 0, "center": excess // 2, "end": excess}[crop]
        return waveform[start : start + n_samples]
    missing = n_samples - n
    before = {"end": 0, "center": missing // 2, "start": missing}[pad]
    return torch.nn.functional.pad(waveform, (before, missing - before))


def _require_dir(path: Path, what: str, layout: str) -> Path:
    if path.exists() and not path.is_dir():
        raise DataNotFoundError(f"{what} folder expected at {path}, but it is a file\nexpected layout:\n{layout}")
    if not path.is_dir():
        raise DataNotFoundError(f"{what} folder not found: {path}\nexpected layout:\n{layout}")
    return path


class _Row(dict):
    """A csv row (column → text) that knows its file and line, for messages."""

    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path}, line {self.line}"

    def text(self, col: str) -> str:
        value = self.get(col)
        if value is None or str(value).strip() == "":
            raise DataNotFoundError(f"{self.where()}: column {col!r} is empty")
        return str(value).strip()

    def integer(self, col: str, allowed: Optional[Sequence[int]] = None) -> int:
        value = self.text(col)
        try:
            out = int(value)
        except ValueError:
            raise DataNotFoundError(f"{self.where()}: column {col!r} must be an integer, got {value!r}") from None
        if allowed is not None and out not in allowed:
            raise DataNotFoundError(f"{self.where()}: {col} {out} is not one of {list(allowed)}")
        return out

    def number(self, col: str, default: float = 0.0) -> float:
        value = self.get(col)
        if value is None or str(value).strip() == "":
            return default
        try:
            out = float(value)
        except ValueError:
            raise DataNotFoundError(f"{self.where()}: column {col!r} must be a number, got {value!r}") from None
        if not np.isfinite(out):
            raise DataNotFoundError(f"{self.where()}: column {col!r} must be a finite number, got {value!r}")
        return out


def _read_csv(path: Path, required: Sequence[str], layout: str) -> List[_Row]:
    """The rows of a metadata csv, checked: UTF-8 text, the ``required`` columns in the header, every
    row complete (no truncated or over-long rows). Errors name the file and the line."""
    if path.is_dir():
        raise DataNotFoundError(f"metadata file {path} is a directory, not a csv file\nexpected layout:\n{layout}")
    if not path.is_file():
        raise DataNotFoundError(f"metadata file not found: {path}\nexpected layout:\n{layout}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataNotFoundError(f"cannot read metadata file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataNotFoundError(f"{path} is not a UTF-8 text csv (undecodable byte at line {line}); is it a binary "
                                f"file?\nexpected layout:\n{layout}") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataNotFoundError(f"{path} is not a text csv (a NUL byte at line {line}); is it a binary file?"
                                f"\nexpected layout:\n{layout}")
    reader = csv.DictReader(text.splitlines(keepends=True))
    try:
        fields = [f.strip() for f in (reader.fieldnames or [])]
        reader.fieldnames = fields
        missing = [c for c in required if c not in fields]
        if missing:
            raise DataNotFoundError(f"{path} lacks the column(s) {missing} (has {fields})\nexpected layout:\n{layout}")
        rows: List[_Row] = []
        for r in reader:
            if not any((v or "").strip() for k, v in r.items() if k is not None):
                continue  # a blank line
            row = _Row((k, v) for k, v in r.items() if k is not None)
            row.path, row.line = path, reader.line_num
            if None in r:
                raise DataNotFoundError(f"{row.where()}: the row has {len(fields) + len(r[None])} fields but the "
                                        f"header has {len(fields)}")
            short = [c for c in fields if r.get(c) is None]
            if short:
                raise DataNotFoundError(f"{row.where()}: the row is truncated (it has {len(fields) - len(short)} of "
                                        f"{len(fields)} fields; missing {short[:4]})")
            rows.append(row)
    except csv.Error as exc:
        raise DataNotFoundError(f"{path}, line {reader.line_num}: not a valid csv row ({exc})") from None
    if not rows:
        raise DataNotFoundError(f"{path} lists no clips\nexpected layout:\n{layout}")
    return rows


def _class_names(rows: Sequence[_Row], id_col: str, name_col: str) -> Dict[int, str]:
    """id → class name over all rows; an id named differently on two rows is refused."""
    names: Dict[int, str] = {}
    first: Dict[int, _Row] = {}
    for r in rows:
        cid, name = r.integer(id_col), r.text(name_col)
        if cid in names and names[cid] != name:
            raise DataNotFoundError(f"{r.where()}: {id_col} {cid} is {name!r} here but {names[cid]!r} at line "
                                    f"{first[cid].line}")
        names.setdefault(cid, name)
        first.setdefault(cid, r)
    return names


def _check_files(paths: Iterable[Path], root: Path, layout: str) -> None:
    paths = list(paths)
    dirs = [p for p in paths if p.is_dir()]
    if dirs:
        raise DataNotFoundError(f"{dirs[0]} (listed in the metadata of {root}) is a directory, not an audio file")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise DataNotFoundError(
            f"{len(missing)} audio file(s) listed in the metadata of {root} are missing, e.g. {shown}\n"
            f"expected layout:\n{layout}"
        )


def _select_folds(folds, valid: Sequence[int], present: Sequence[int], name: str) -> List[int]:
    if folds is None:
        return sorted(set(present))
    if isinstance(folds, (int, np.integer)):
        folds = [int(folds)]
    out = []
    for f in folds:
        try:
            fi = int(f)
        except (TypeError, ValueError):
            raise InputError(f"{name}: fold {f!r} is not an integer") from None
        if fi != f or fi not in valid:
            raise InputError(f"{name}: unknown fold {f!r}; folds are {list(valid)}")
        if fi not in present:
            raise InputError(f"{name}: fold {fi} has no clips in this copy (folds present: {sorted(set(present))})")
        out.append(fi)
    if not out:
        raise InputError(f"{name}: no folds selected")
    return sorted(set(out))


class ReaderSubset(Dataset):
    """The items ``index`` of a reader, keeping its ``classes`` and ``sample_rate`` (unlike
    ``torch.utils.data.Subset``, which the spectrogram builders could not read them from)."""

    def __init__(self, base: Dataset, index: Sequence[int]) -> None:
        self.base, self.index = base, list(index)
        self.classes = list(getattr(base, "classes", []))
        self.sample_rate = getattr(base, "sample_rate", None)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.base[self.index[i]]


class LabelledAudioFolder(Dataset):
    """Base class of the labelled readers: a list of files with labels and metadata.

    Subclasses fill ``self._items`` (list of ``(path, label, meta)``) and ``self.classes``.
    Items are read lazily with :func:`captum_lmac.audio.read_wav`, resampled to ``sample_rate`` and
    cropped / zero-padded to ``duration`` seconds.
    """

    pad = "end"
    crop = "start"

    def __init__(self, sample_rate: int = 16000, duration: float = 5.0) -> None:
        self.sample_rate = check_positive_int(sample_rate, "sample_rate")
        self.duration = check_number(duration, "duration (seconds)", minimum=0.0, strict_minimum=True)
        self.n_samples = int(round(self.duration * self.sample_rate))
        self.classes: List[str] = []
        self._items: List[Tuple[Path, int, Dict[str, object]]] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def labels(self) -> List[int]:
        """Label of every item, in order (no audio is read)."""
        return [lab for _, lab, _ in self._items]

    @property
    def paths(self) -> List[Path]:
        """File of every item, in order."""
        return [p for p, _, _ in self._items]

    def __getitem__(self, i: int) -> Tuple[Tensor, int, Dict[str, object]]:
        wave, label, meta = self.raw(i)
        wave = fix_length(wave, self.n_samples, pad=self.pad, crop=self.crop)
        return wave.contiguous(), label, meta

    def raw(self, i: int) -> Tuple[Tensor, int, Dict[str, object]]:
        """Item ``i`` at its own length (resampled, not cropped or padded): what streaming
        readers (:class:`~captum_lmac.data.streaming.StreamingSpectrograms`) crop themselves."""
        n = len(self._items)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        path, label, meta = self._items[i]
        wave, _ = read_wav(path, self.sample_rate)
        return wave.float(), int(label), dict(meta)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} clips, {len(self.classes)} classes, "
            f"{self.sample_rate} Hz, {self.duration:g} s)"
        )


_ESC50_LAYOUT = """  <root>/audio/{fold}-{src_file}-{take}-{target}.wav
  <root>/meta/esc50.csv   (columns filename,fold,target,category,esc10,src_file,take)"""


class ESC50(LabelledAudioFolder):
    r"""ESC-50 environmental sounds (Piczak, 2015, https://github.com/karolpiczak/ESC-50).

    Reads the official layout (``audio/*.wav`` and ``meta/esc50.csv``). Labels are remapped to
    ``0 .. K-1`` over the categories present in the csv, ordered by their ESC-50 ``target`` id, so
    the same reader serves the full set (50 classes), the ESC-10 subset (``esc10_only=True``) and a
    folder that only holds ESC-10 clips (10 classes: dog, rooster, rain, sea_waves, crackling_fire,
    crying_baby, sneezing, clock_tick, helicopter, chainsaw). The class list is computed over the
    whole csv, so every fold selection shares one label mapping.

    Args:
        root (path): Folder with ``audio/`` and ``meta/esc50.csv``.
        folds (int or sequence of int, optional): Folds 1-5 to include (default: all).
        sample_rate (int): Output sample rate (the originals are 44.1 kHz).
        duration (float): Clip length in seconds (crop / zero-pad at the end).
        esc10_only (bool): Keep only the ESC-10 clips (csv column ``esc10``).

    Examples::

        >>> train = ESC50(default_data_root() / "esc10", folds=[1, 2, 3])
        >>> wave, label, meta = train[0]
        >>> wave.shape, train.classes[label], meta["fold"]
        (torch.Size([80000]), 'dog', 1)
    """

    FOLDS = (1, 2, 3, 4, 5)

    def __init__(
        self,
        root: PathLike,
        folds: Optional[Union[int, Sequence[int]]] = None,
        sample_rate: int = 16000,
        duration: float = 5.0,
        esc10_only: bool = False,
    ) -> None:
        super().__init__(sample_rate, duration)
        self.root = Path(root)
        _require_dir(self.root, "ESC-50", _ESC50_LAYOUT)
        audio_dir = _require_dir(self.root / "audio", "ESC-50 audio", _ESC50_LAYOUT)
        rows = _read_csv(
            self.root / "meta" / "esc50.csv", ["filename", "fold", "target", "category"], _ESC50_LAYOUT
        )
        if esc10_only:
            if "esc10" not in rows[0]:
                raise DataNotFoundError(f"{self.root / 'meta' / 'esc50.csv'} has no 'esc10' column")
            rows = [r for r in rows if str(r["esc10"]).strip().lower() in ("true", "1")]
            if not rows:
                raise DataNotFoundError(f"{self.root / 'meta' / 'esc50.csv'} marks no clip as ESC-10")
        targets = _class_names(rows, "target", "category")
        order = sorted(targets)
        self.targets = order  # ESC-50 target id of each label
        self.classes = [targets[t] for t in order]
        remap = {t: k for k, t in enumerate(order)}
        row_folds = [r.integer("fold", self.FOLDS) for r in rows]
        self.folds = _select_folds(folds, self.FOLDS, row_folds, "ESC50")
        for r, fold in zip(rows, row_folds):
            if fold not in self.folds:
                continue
            path = audio_dir / r.text("filename")
            meta = {
                "path": str(path),
                "filename": r.text("filename"),
                "fold": fold,
                "category": r.text("category"),
                "target": r.integer("target"),
                "src_file": r.get("src_file", ""),
                "take": r.get("take", ""),
            }
            self._items.append((path, remap[r.integer("target")], meta))
        _check_files(self.paths, self.root, _ESC50_LAYOUT)


_US8K_LAYOUT = """  <root>/audio/fold{1..10}/{fsID}-{classID}-{occurrence}-{slice}.wav
  <root>/metadata/UrbanSound8K.csv   (columns slice_file_name,fsID,start,end,salience,fold,classID,class)"""


class UrbanSound8K(LabelledAudioFolder):
    r"""UrbanSound8K urban sounds (Salamon, Jacoby, Bello, 2014, https://urbansounddataset.weebly.com).

    Reads the official layout (``audio/fold{k}/*.wav``, ``metadata/UrbanSound8K.csv``); clips are at
    most 4 s and are zero-padded at the end to ``duration``. Labels are ``classID`` remapped to
    ``0 .. K-1`` over the ids in the csv (the identity for the full data set). Use the official
    10 folds for cross-validation, never a random split.

    Args:
        root (path): Folder with ``audio/`` and ``metadata/UrbanSound8K.csv``.
        folds (int or sequence of int, optional): Folds 1-10 to include (default: all).
        sample_rate (int): Output sample rate.
        duration (float): Clip length in seconds.

    Examples::

        >>> test = UrbanSound8K("/data/UrbanSound8K", folds=10)
        >>> test.classes[:3]
        ['air_conditioner', 'car_horn', 'children_playing']
    """

    FOLDS = tuple(range(1, 11))

    def __init__(
        self,
        root: PathLike,
        folds: Optional[Union[int, Sequence[int]]] = None,
        sample_rate: int = 16000,
        duration: float = 4.0,
    ) -> None:
        super().__init__(sample_rate, duration)
        self.root = Path(root)
        _require_dir(self.root, "UrbanSound8K", _US8K_LAYOUT)
        audio_dir = _require_dir(self.root / "audio", "UrbanSound8K audio", _US8K_LAYOUT)
        rows = _read_csv(
            self.root / "metadata" / "UrbanSound8K.csv",
            ["slice_file_name", "fold", "classID", "class"],
            _US8K_LAYOUT,
        )
        names = _class_names(rows, "classID", "class")
        order = sorted(names)
        self.class_ids = order
        self.classes = [names[c] for c in order]
        remap = {c: k for k, c in enumerate(order)}
        row_folds = [r.integer("fold", self.FOLDS) for r in rows]
        self.folds = _select_folds(folds, self.FOLDS, row_folds, "UrbanSound8K")
        for r, fold in zip(rows, row_folds):
            if fold not in self.folds:
                continue
            path = audio_dir / f"fold{fold}" / r.text("slice_file_name")
            meta = {
                "path": str(path),
                "filename": r.text("slice_file_name"),
                "fold": fold,
                "category": r.text("class"),
                "class_id": r.integer("classID"),
                "fsID": r.get("fsID", ""),
                "start": r.number("start"),
                "end": r.number("end"),
                "salience": int(r.number("salience")),
            }
            self._items.append((path, remap[r.integer("classID")], meta))
        _check_files(self.paths, self.root, _US8K_LAYOUT)


_FSDD_LAYOUT = """  <root>/recordings/{digit}_{speaker}_{take}.wav   (8 kHz mono), e.g. 7_jackson_32.wav"""
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9-]+)_(\d+)\.wav$")


class FSDD(LabelledAudioFolder):
    r"""Free Spoken Digit Dataset (https://github.com/Jakobovski/free-spoken-digit-dataset).

    Recordings ``recordings/{digit}_{speaker}_{take}.wav`` at 8 kHz; label = the digit (class
    names ``"zero"`` … ``"nine"``). The conventional split puts takes 0-4 of every speaker and digit
    in the test set and takes 5-49 in the training set (2,700 / 300 clips for the 3,000-clip
    release). Clips (mostly < 1 s) are centred and zero-padded (or centre-cropped) to ``duration``.

    Args:
        root (path): Folder holding ``recordings/`` (or the recordings folder itself).
        split (str): ``"train"`` (takes ≥ ``test_takes``), ``"test"`` (takes < ``test_takes``) or
            ``"all"``.
        sample_rate (int): Output sample rate (the originals are 8 kHz and are upsampled).
        duration (float): Clip length in seconds.
        speakers (sequence of str, optional): Keep only these speakers.
        takes (sequence of int, optional): Keep only these takes (applied after ``split``).
        test_takes (int): Takes ``0 .. test_takes-1`` form the test split.

    Examples::

        >>> test = FSDD(default_data_root() / "fsdd", split="test")
        >>> len(test), test.classes[test[0][1]]
        (300, 'zero')
    """

    pad = "center"
    crop = "center"
    CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        sample_rate: int = 16000,
        duration: float = 1.0,
        speakers: Optional[Sequence[str]] = None,
        takes: Optional[Sequence[int]] = None,
        test_takes: int = 5,
    ) -> None:
        super().__init__(sample_rate, duration)
        if split not in ("train", "test", "all"):
            raise InputError(f"FSDD split must be 'train', 'test' or 'all', got {split!r}")
        self.root = Path(root)
        self.split = split
        _require_dir(self.root, "FSDD", _FSDD_LAYOUT)
        rec = self.root / "recordings"
        if not rec.is_dir():
            rec = self.root  # accept the recordings folder itself
        files = []
        for p in sorted(rec.iterdir()):
            m = _FSDD_NAME.match(p.name)
            if m and p.is_file():
                files.append((p, int(m.group(1)), m.group(2), int(m.group(3))))
        if not files:
            raise DataNotFoundError(
                f"no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav) in {rec}\nexpected layout:\n{_FSDD_LAYOUT}"
            )
        self.classes = list(self.CLASS_NAMES)
        all_speakers = sorted({s for _, _, s, _ in files})
        if speakers is not None:
            unknown = sorted(set(speakers) - set(all_speakers))
            if unknown:
                raise InputError(f"FSDD: unknown speaker(s) {unknown}; speakers are {all_speakers}")
        # digit, speaker, take order: deterministic and independent of the file system
        files.sort(key=lambda f: (f[1], f[2], f[3]))
        for path, digit, speaker, take in files:
            is_test = take < test_takes
            if (split == "train" and is_test) or (split == "test" and not is_test):
                continue
            if speakers is not None and speaker not in speakers:
                continue
            if takes is not None and take not in takes:
                continue
            meta = {
                "path": str(path), "speaker": speaker, "take": take, "digit": digit, "category": self.classes[digit],
            }
            self._items.append((path, digit, meta))
        if not self._items:
            raise InputError(f"FSDD: the selection (split={split!r}, speakers={speakers}, takes={takes}) is empty")
        self.speakers = sorted({m["speaker"] for _, _, m in self._items})


_AUDIO_FOLDER_LAYOUT = """  <root>/*.wav (any audio: .wav, .flac, .ogg), or <root>/<class>/*.wav for labelled clips"""


class AudioFolder(LabelledAudioFolder):
    r"""A plain folder of audio files (searched recursively), each read as one clip.

    L-MAC needs no labels — it explains the classifier's own decisions — so a flat folder is enough
    (every clip gets label 0, class ``"unlabelled"``). With one subfolder per class
    (``<root>/<class>/*.wav``) the subfolder names are the classes, in sorted order.

    Args:
        root (path): The folder.
        sample_rate (int): Sample rate of the returned audio (files are resampled).
        duration (float): Clip length in seconds (longer files are cropped, shorter zero-padded).
        extensions (sequence of str): File endings to read.

    Raises:
        DataNotFoundError: when the folder does not exist or holds no audio file.
    """

    def __init__(self, root: PathLike, sample_rate: int = 16000, duration: float = 5.0,
                 extensions: Sequence[str] = _AUDIO_EXTENSIONS) -> None:
        super().__init__(sample_rate, duration)
        self.root = Path(root)
        _require_dir(self.root, "audio", _AUDIO_FOLDER_LAYOUT)
        exts = tuple(e.lower() for e in extensions)
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise DataNotFoundError(f"no audio files ({', '.join(exts)}) in {self.root}\nexpected layout:\n"
                                    f"{_AUDIO_FOLDER_LAYOUT}")
        subdirs = sorted({p.parent.relative_to(self.root).parts[0] for p in files if p.parent != self.root})
        labelled = bool(subdirs) and all(p.parent != self.root for p in files)
        self.classes = subdirs if labelled else ["unlabelled"]
        index = {c: i for i, c in enumerate(self.classes)}
        for p in files:
            label = index[p.relative_to(self.root).parts[0]] if labelled else 0
            self._items.append((p, label, {"path": str(p)}))


class _ClipFolder(Dataset):
    """An unlabelled folder of audio files with random-segment access (for contamination)."""

    _what = "audio"
    _layout = "  <root>/*.flac or *.wav"

    def __init__(
        self,
        root: PathLike,
        sample_rate: int = 16000,
        duration: Optional[float] = None,
        extensions: Sequence[str] = _AUDIO_EXTENSIONS,
        recursive: bool = False,
    ) -> None:
        self.root = Path(root)
        _require_dir(self.root, self._what, self._layout)
        self.sample_rate = check_positive_int(sample_rate, "sample_rate")
        self.duration = None if duration is None else check_number(duration, "duration (seconds)", minimum=0.0,
                                                                    strict_minimum=True)
        self.n_samples = None if duration is None else int(round(float(duration) * self.sample_rate))
        exts = tuple(e.lower() for e in extensions)
        pattern = "**/*" if recursive else "*"
        self.files = sorted(p for p in self.root.glob(pattern) if p.is_file() and p.suffix.lower() in exts)
        if not self.files:
            raise DataNotFoundError(
                f"no {self._what} files ({', '.join(exts)}) in {self.root}\nexpected layout:\n{self._layout}"
            )
        self.classes: List[str] = []
        self._info: Dict[int, Tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> List[int]:
        return [-1] * len(self.files)

    def __getitem__(self, i: int) -> Tuple[Tensor, int, Dict[str, object]]:
        n = len(self.files)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} files")
        path = self.files[i]
        wave, _ = read_wav(path, self.sample_rate)
        if self.n_samples is not None:
            wave = fix_length(wave, self.n_samples, pad="end", crop="start")
        return wave.float().contiguous(), -1, {"path": str(path)}

    def _file_info(self, i: int) -> Tuple[int, int]:
        """(frames, sample rate) of file i at its original rate (cached)."""
        if i not in self._info:
            try:
                info = sf.info(str(self.files[i]))
            except Exception as exc:
                raise InputError(f"cannot read audio file {self.files[i]}: {exc}") from None
            self._info[i] = (int(info.frames), int(info.samplerate))
        return self._info[i]

    def _read_span(self, i: int, start: int, n_orig: int, sr: int) -> Tensor:
        data, _ = sf.read(str(self.files[i]), start=start, stop=start + n_orig, dtype="float32", always_2d=True)
        return torch.from_numpy(data.mean(axis=1))

    def random_segment(self, length: int, rng: Union[np.random.Generator, int, None] = None) -> Tensor:
        """A random excerpt of exactly ``length`` samples at ``sample_rate``.

        A file is drawn uniformly, then a random start inside it; a file shorter than the excerpt
        is followed by further randomly drawn files (concatenated), so nothing is tiled. Only the
        needed span of each file is read. Silent excerpts are redrawn (up to 20 times).

        Args:
            length (int): Number of samples.
            rng (numpy Generator or int, optional): Source of randomness (an int seeds a new one).

        Returns:
            Tensor: float32 ``(length,)``.
        """
        length = int(length)
        if length <= 0:
            raise InputError(f"segment length must be positive, got {length}")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        for _ in range(20):
            pieces, have = [], 0
            while have < length:
                i = int(rng.integers(len(self.files)))
                frames, sr = self._file_info(i)
                need = length - have
                # a few extra original samples so the resampled span is not short
                n_orig = int(np.ceil(need * sr / self.sample_rate)) + (8 if sr != self.sample_rate else 0)
                start = int(rng.integers(0, max(1, frames - n_orig + 1)))
                piece = self._read_span(i, start, n_orig, sr)
                if piece.numel() == 0:
                    continue
                piece = resample(piece, sr, self.sample_rate)[:need]
                pieces.append(piece)
                have += piece.shape[0]
            seg = torch.cat(pieces)[:length].float()
            if float(seg.abs().max()) > 0:
                return seg.contiguous()
        raise InputError(f"{self.root}: could not draw a non-silent segment of {length} samples")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root}, {len(self)} files, {self.sample_rate} Hz)"


class SpeechFolder(_ClipFolder):
    r"""A folder of speech recordings (LJSpeech-like: ``*.flac`` / ``*.wav``), unlabelled.

    Used for the papers' speech-contamination condition (they use the LJSpeech voice). Items are
    ``(waveform, -1, {"path": ...})`` at ``sample_rate`` (full length unless ``duration`` is given);
    :meth:`random_segment` draws a random excerpt of any length.

    Args:
        root (path): Folder with the audio files.
        sample_rate (int): Output sample rate (LJSpeech is 22.05 kHz and is resampled).
        duration (float, optional): Crop / zero-pad items to this many seconds.
        extensions (sequence of str): File suffixes to read.
        recursive (bool): Also look into sub-folders.

    Examples::

        >>> speech = SpeechFolder(default_data_root() / "ljspeech32")
        >>> speech.random_segment(16000, rng=0).shape
        torch.Size([16000])
    """

    _what = "speech"
    _layout = "  <root>/*.flac or *.wav   (e.g. LJSpeech wavs/ or a few LJ*.flac clips)"


class NoiseFolder(_ClipFolder):
    r"""A folder of background-noise recordings (ambience loops, WHAM!-style noise), unlabelled.

    Used as the background of WHAM!-style training mixtures and for the "ambient" out-of-domain
    condition. Items are ``(waveform, -1, {"path": ...})``; :meth:`random_segment` draws a random
    excerpt of any length.

    Args:
        root (path): Folder with the audio files.
        sample_rate (int): Output sample rate.
        duration (float, optional): Crop / zero-pad items to this many seconds.
        extensions (sequence of str): File suffixes to read.
        recursive (bool): Also look into sub-folders.

    Examples::

        >>> noise = NoiseFolder(default_data_root() / "ambient")
        >>> noise.random_segment(8000, rng=1).shape
        torch.Size([8000])
    """

    _what = "noise"
    _layout = "  <root>/*.flac or *.wav   (noise recordings, e.g. ambience loops or WHAM! noise)"
