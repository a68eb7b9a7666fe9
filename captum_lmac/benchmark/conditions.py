r"""Evaluation conditions of the benchmark: in-domain and out-of-domain (contaminated) test sets.

The L-MAC and LMAC-ZS papers evaluate explanations on the test clips themselves ("in-domain") and
on the same clips with an added interferer ("out-of-domain"):

- ``"clip"`` — a clip of *another class* from the test set,
- ``"white"`` — white Gaussian noise,
- ``"speech"`` — LJSpeech speech (``<data root>/ljspeech32``),
- ``"ambient"`` — ambient noise (not a paper condition; offered for completeness).

The SNR is a parameter and is always reported. The papers state 3 dB
(:data:`SNR_PRESETS` ``"paper"``, the default); the released reference code used 12 dB for clip and
speech and 6 dB for white noise (``"released"``).

For a contaminated condition the explanation is computed on the contaminated input and the
explained class is the model's decision on it, c = argmax f(X_contaminated).

Ground truth (where the source the label depends on is known; see :func:`ground_truth`):

- :class:`~captum_lmac.data.SyntheticEvents` clips: the clean event (``extra["clean"]``) against
  everything else (background, and the interferer in a contaminated condition);
- contaminated clips of any data set: the clean clip against the added interferer.

The helpers work on in-memory :class:`~captum_lmac.data.SpectrogramSet` splits (what
:func:`~captum_lmac.benchmark.data.load_data` returns), reusing
:class:`~captum_lmac.data.ContaminatedDataset` for the mixing through the small adapter
:class:`SetDataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..audio import STFT
from ..data.contamination import PAPER_SNR_DB, REFERENCE_CODE_SNR_DB, ContaminatedDataset
from ..data.folders import default_data_root
from ..data.tensors import SpectrogramSet, to_spectrograms
from ..errors import DataNotFoundError, InputError
from ..metrics.ground_truth import oracle_mask

#: Condition names, in report order.
CONDITIONS = ("in-domain", "clip", "white", "speech", "ambient")

#: Default conditions (the papers' four).
DEFAULT_CONDITIONS = ("in-domain", "clip", "white", "speech")

#: SNR presets (dB) per contamination kind.
SNR_PRESETS: Dict[str, Dict[str, float]] = {
    "paper": {"clip": PAPER_SNR_DB, "white": PAPER_SNR_DB, "speech": PAPER_SNR_DB, "ambient": PAPER_SNR_DB},
    "released": {**{k: float(v) for k, v in REFERENCE_CODE_SNR_DB.items()}, "ambient": PAPER_SNR_DB},
}

_LABELS = {
    "in-domain": "In-domain",
    "clip": "Mixture with a clip of another class",
    "white": "White noise",
    "speech": "Speech (LJSpeech)",
    "ambient": "Ambient noise",
}

#: Keys of ``SpectrogramSet.extra`` kept when building condition sets (ground truth needs them).
KEEP_KEYS = ("clean", "background", "interferer", "base_clean")


@dataclass(frozen=True)
class Condition:
    """One evaluation condition: ``name`` (see :data:`CONDITIONS`) and its SNR in dB (None in-domain)."""

    name: str
    snr_db: Optional[float] = None

    def __post_init__(self) -> None:
        if self.name not in CONDITIONS:
            raise InputError(f"unknown condition {self.name!r}; choose from {list(CONDITIONS)}")
        if self.name != "in-domain" and self.snr_db is None:
            raise InputError(f"condition {self.name!r} needs an SNR")

    @property
    def contaminated(self) -> bool:
        return self.name != "in-domain"

    @property
    def label(self) -> str:
        """Human-readable label with the SNR, e.g. ``"White noise @ 3 dB SNR"``."""
        if not self.contaminated:
            return _LABELS[self.name]
        return f"{_LABELS[self.name]} @ {self.snr_db:g} dB SNR"

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "label": self.label, "snr_db": self.snr_db}


def snr_table(snr: Union[None, float, Mapping[str, float]] = None, preset: Optional[str] = None) -> Dict[str, float]:
    """SNR (dB) per contamination kind from a single value, a per-kind mapping or a preset.

    ``snr`` wins over ``preset``; a mapping may name only some kinds (the rest come from the preset,
    default ``"paper"``: 3 dB everywhere).
    """
    if preset is not None and preset not in SNR_PRESETS:
        raise InputError(f"unknown SNR preset {preset!r}; choose from {sorted(SNR_PRESETS)}")
    table = dict(SNR_PRESETS[preset or "paper"])
    if snr is None:
        return table
    if isinstance(snr, Mapping):
        unknown = set(snr) - set(table)
        if unknown:
            raise InputError(f"SNR given for unknown condition(s) {sorted(unknown)}")
        table.update({k: float(v) for k, v in snr.items()})
        return table
    try:
        value = float(snr)
    except (TypeError, ValueError):
        raise InputError(f"snr must be a number (dB) or a mapping kind → dB, got {snr!r}") from None
    return {k: value for k in table}


def resolve_conditions(
    names: Sequence[str] = DEFAULT_CONDITIONS,
    snr: Union[None, float, Mapping[str, float]] = None,
    preset: Optional[str] = None,
) -> List[Condition]:
    """:class:`Condition` objects for ``names`` with their SNRs (see :func:`snr_table`)."""
    table = snr_table(snr, preset)
    out = []
    for n in names:
        if n not in CONDITIONS:
            raise InputError(f"unknown condition {n!r}; choose from {list(CONDITIONS)}")
        out.append(Condition(n, None if n == "in-domain" else table[n]))
    return out


class SetDataset(Dataset):
    """A :class:`SpectrogramSet` seen as a ``(waveform, label, meta)`` data set.

    ``meta`` holds the per-item waveform entries of ``extra`` (e.g. SyntheticEvents' ``clean`` and
    ``background``), so :class:`~captum_lmac.data.ContaminatedDataset` keeps them (as
    ``base_clean`` ...).
    """

    def __init__(self, data: SpectrogramSet, sample_rate: int) -> None:
        self.data = data
        self.sample_rate = int(sample_rate)
        self.classes = list(data.classes)
        n = data.waveform.shape[-1]
        self._wave_keys = [k for k, v in data.extra.items() if torch.is_tensor(v) and v.dim() == 2 and v.shape[-1] == n]

    def __len__(self) -> int:
        return len(self.data)

    @property
    def labels(self) -> List[int]:
        return [int(v) for v in self.data.y]

    def __getitem__(self, i: int):
        meta = {k: self.data.extra[k][i] for k in self._wave_keys}
        return self.data.waveform[i], int(self.data.y[i]), meta


def stratified_indices(y: Tensor, n: Optional[int]) -> List[int]:
    """``n`` indices spread evenly over the classes (round robin over classes, in order of appearance).

    Deterministic; returns all indices (in order) when ``n`` is None or ≥ len(y).
    """
    total = int(y.shape[0])
    if n is None or n >= total:
        return list(range(total))
    if n < 1:
        raise InputError(f"n_test must be positive, got {n}")
    by_class: Dict[int, List[int]] = {}
    for i, c in enumerate(y.tolist()):
        by_class.setdefault(int(c), []).append(i)
    order: List[int] = []
    depth = 0
    while len(order) < n:
        for c in sorted(by_class):
            if depth < len(by_class[c]):
                order.append(by_class[c][depth])
                if len(order) == n:
                    break
        depth += 1
    return sorted(order)


def condition_set(
    test: SpectrogramSet,
    condition: Condition,
    stft: STFT,
    data_root: Optional[Union[str, Path]] = None,
    speech_dir: Optional[Union[str, Path]] = None,
    ambient_dir: Optional[Union[str, Path]] = None,
    seed: int = 0,
    progress: bool = True,
) -> SpectrogramSet:
    """The test set under ``condition``: the set itself (in-domain) or a contaminated copy.

    A contaminated copy holds in ``extra``: ``clean`` (the original test clip), ``interferer`` (the
    scaled interferer), ``snr_db`` (the measured per-item SNR) and, for SyntheticEvents, ``base_clean`` (the event)
    and ``background`` (waveforms only: the ground truth re-analyses what it needs).

    Args:
        test: The in-domain test split.
        condition: What to add, at which SNR.
        stft: The analysis of ``test`` (sample rate and STFT settings).
        data_root: Folder for relative ``speech_dir`` / ``ambient_dir`` (default: the data root).
        speech_dir, ambient_dir: Sources of the speech / ambient conditions (default
            ``<data root>/ljspeech32`` and ``<data root>/ambient``).
        seed: Contamination seed (item i depends only on (seed, kind, i)).

    Raises:
        DataNotFoundError: when the speech / noise folder is missing.
    """
    if not condition.contaminated:
        return test
    root = Path(data_root) if data_root is not None else default_data_root()
    source: Any = None
    if condition.name == "speech":
        source = Path(speech_dir) if speech_dir is not None else Path("ljspeech32")
        source = source if source.is_absolute() else root / source
    elif condition.name == "ambient":
        source = Path(ambient_dir) if ambient_dir is not None else Path("ambient")
        source = source if source.is_absolute() else root / source
    if source is not None and not Path(source).is_dir():
        raise DataNotFoundError(f"the {condition.name!r} condition needs audio in {source} (folder not found)")
    base = SetDataset(test, stft.sample_rate)
    ds = ContaminatedDataset(base, condition.name, float(condition.snr_db), source=source, seed=seed)
    out = to_spectrograms(ds, stft, keep=KEEP_KEYS, progress=progress, extras="waveform")
    out.extra["snr_db"] = measured_snr_db(out)
    out.classes = list(test.classes)
    return out


def measured_snr_db(data: SpectrogramSet) -> Tensor:
    """Per-item clean-to-interferer power ratio in dB of a contaminated set (NaN if unknown)."""
    if "clean" not in data.extra or "interferer" not in data.extra:
        return torch.full((len(data),), float("nan"))
    p_c = data.extra["clean"].double().pow(2).mean(dim=1)
    p_i = data.extra["interferer"].double().pow(2).mean(dim=1)
    return (10 * torch.log10(p_c / p_i)).float()


def ground_truth(data: SpectrogramSet, condition: Condition) -> Optional[Tuple[Tensor, Tensor, str]]:
    """The known target source of each clip, if any: ``(target_wave, rest_wave, description)``.

    ``target + rest = waveform``. SyntheticEvents: the event (in-domain ``extra["clean"]``,
    contaminated ``extra["base_clean"]``) vs background (+ interferer); other contaminated sets: the
    clean clip vs the interferer. None when nothing is known (in-domain real recordings).
    """
    wave = data.waveform
    if "base_clean" in data.extra:
        target, what = data.extra["base_clean"], "synthetic event vs background + interferer"
    elif condition.contaminated and "clean" in data.extra:
        target, what = data.extra["clean"], "clean clip vs interferer"
    elif not condition.contaminated and "clean" in data.extra:
        target, what = data.extra["clean"], "known clean source vs background"
    else:
        return None
    if target.shape != wave.shape:
        return None
    return target, wave - target, what


def ground_truth_info(gt: Tuple[Tensor, Tensor, str], stft: STFT,
                      features: Optional[Callable[[Tensor], Tensor]] = None, chunk: int = 16) -> Dict[str, Tensor]:
    """``{"target_wave", "oracle"}`` of a ground truth ``(target_wave, rest_wave, _)`` (:func:`ground_truth`):
    the oracle mask of the parts' STFT magnitudes, or of ``features`` of them (e.g. the classifier's
    log-mel). The parts' spectrograms are computed ``chunk`` clips at a time and not kept (two copies
    of the clips otherwise)."""
    target_w, rest_w, _ = gt
    parts = []
    for i in range(0, target_w.shape[0], chunk):
        Xt = stft.analyze(target_w[i : i + chunk], allow_silent=True)[0]
        Xr = stft.analyze(rest_w[i : i + chunk], allow_silent=True)[0]
        if features is not None:
            Xt, Xr = features(Xt), features(Xr)
        parts.append(oracle_mask(Xt, Xr))
    return {"target_wave": target_w, "oracle": torch.cat(parts)}


def wham_pairs(
    train: SpectrogramSet,
    stft: STFT,
    noise_dir: Optional[Union[str, Path]] = None,
    snr_db: float = 0.0,
    seed: int = 0,
    mode: str = "auto",
    progress: bool = True,
    phase: bool = True,
) -> Tuple[SpectrogramSet, str]:
    r"""Training pairs (X_mix, X_clean) for L-MAC's fine-tuning stage, as a SpectrogramSet with ``extra["clean_X"]``.

    Args:
        train: The training split.
        stft: Its analysis.
        noise_dir: Folder of ambient noise (WHAM!-style mixtures).
        snr_db: Clean-to-noise SNR of the mixtures (0 dB, WHAM!-style).
        seed: Mixing seed.
        mode: ``"synthetic"`` — the training clips themselves with their known clean event
            (SyntheticEvents: event vs background); ``"wham"`` — each training clip plus a random
            stretch of ambient noise at ``snr_db``, the clip being the clean part; ``"auto"`` —
            ``"synthetic"`` when ``train.extra`` has ``clean_X``, else ``"wham"``.
        phase: Keep the mixtures' phase (a classifier without a phase input never reads it). A WHAM!-style
            pair's clean part is the training clip itself: its ``clean_X`` is ``train.X`` (shared, not a
            copy) when the analysis gives it bit for bit.

    Returns:
        ``(pairs, description)``.
    """
    if mode == "auto":
        mode = "synthetic" if "clean_X" in train.extra else "wham"
    if mode == "synthetic":
        if "clean_X" not in train.extra:
            raise InputError("mode='synthetic' needs training clips with a known clean source (extra['clean_X'])")
        clean_X = train.extra["clean_X"]
        keep = clean_X.flatten(1).amax(dim=1) > 0  # clips without a source (noise only) give no pair
        if not bool(keep.any()):
            raise InputError("mode='synthetic': every training clip's clean source is silent")
        pairs = SpectrogramSet(train.waveform[keep], train.X[keep], None if train.phase is None else train.phase[keep],
                               train.y[keep],
                               {"clean_X": clean_X[keep]}, list(train.classes))
        return pairs, "training clips with their known clean source (source vs background)"
    if mode != "wham":
        raise InputError(f"mode must be 'auto', 'synthetic' or 'wham', got {mode!r}")
    if noise_dir is None or not Path(noise_dir).is_dir():
        raise DataNotFoundError(f"WHAM!-style fine-tuning mixtures need a noise folder; {noise_dir} not found")
    base = SetDataset(SpectrogramSet(train.waveform, train.X, train.phase, train.y, {}, list(train.classes)),
                      stft.sample_rate)
    ds = ContaminatedDataset(base, "ambient", float(snr_db), source=noise_dir, seed=seed)
    pairs = to_spectrograms(ds, stft, keep=("clean",), progress=progress, extras="spectrum", phase=phase)
    clean_X = pairs.extra["clean_X"]
    if clean_X.shape == train.X.shape and clean_X.dtype == train.X.dtype and torch.equal(clean_X, train.X):
        clean_X = train.X
    pairs.extra = {"clean_X": clean_X}
    return pairs, f"training clips + ambient noise ({Path(noise_dir).name}) at {snr_db:g} dB"


#: Contaminations :func:`augmented_training_set` can add: both need nothing beyond the training split
#: (white noise is drawn, the "clip" interferer is another training clip), so no test audio leaks in.
AUGMENT_KINDS = ("white", "clip")

#: The options of :func:`augmented_training_set` a suite's ``augment`` section may set.
AUGMENT_KEYS = ("fraction", "kinds", "snr_db", "add")


def check_augment(options: Mapping[str, Any], where: str = "augment") -> None:
    """Validate augmentation options (keys :data:`AUGMENT_KEYS`, as in a suite's ``augment`` section);
    ``where`` names them in the error."""
    unknown = sorted(set(options) - set(AUGMENT_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown keys {unknown}; expected {', '.join(AUGMENT_KEYS)}")
    if not isinstance(options.get("add", False), bool):
        raise InputError(f"{where}.add must be true or false, got {options['add']!r}")
    fraction = options.get("fraction", 0.0)
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0:
        raise InputError(f"{where}.fraction must be a number in [0, 1], got {fraction!r}")
    kinds = options.get("kinds", list(AUGMENT_KINDS))
    if isinstance(kinds, str) or not kinds or any(k not in AUGMENT_KINDS for k in kinds):
        raise InputError(f"{where}.kinds must be a non-empty list from {list(AUGMENT_KINDS)}, got {kinds!r}")
    snr = options.get("snr_db", [0.0, 12.0])
    if (not isinstance(snr, (list, tuple)) or len(snr) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in snr) or snr[0] > snr[1]):
        raise InputError(f"{where}.snr_db must be a [low, high] pair of numbers in dB, got {snr!r}")


def augmented_training_set(
    train: SpectrogramSet,
    stft: STFT,
    fraction: float = 0.5,
    kinds: Sequence[str] = AUGMENT_KINDS,
    snr_db: Tuple[float, float] = (0.0, 12.0),
    seed: int = 0,
    progress: bool = True,
    add: bool = False,
) -> SpectrogramSet:
    r"""The training split with a seeded ``fraction`` of its clips replaced by (or, ``add``, joined by)
    contaminated copies.

    An interpreter fitted on clean clips only has never seen the classifier decide on a mixture;
    this gives its fit some (the classifier is untouched). The chosen clips are split evenly over
    ``kinds`` — ``"white"`` (white Gaussian noise) and/or ``"clip"`` (another *training* clip of a
    different class) — each mixed at an SNR drawn uniformly from ``snr_db`` (clean-to-interferer,
    whole clip, :class:`~captum_lmac.data.ContaminatedDataset`) and analysed again with ``stft``
    (magnitude, phase and waveform of the mixture). Everything else, labels included, is kept; the
    same ``seed`` gives the same set. With ``add`` the clean clips all stay and the mixtures follow
    them (the set grows by ``fraction`` and so does the fit's time). ``extra`` is dropped (a mixture's clean parts are not the
    original clip's).

    Args:
        train: The training split (in memory).
        stft: Its analysis.
        fraction: Share of the clips replaced, in [0, 1] (0 returns ``train`` itself).
        kinds: Contaminations to use, from :data:`AUGMENT_KINDS`.
        snr_db: ``(low, high)`` SNR range in dB.
        seed: Seed of the choice of clips and of the mixing.
        add: Append the mixtures instead of replacing their clean clips.

    Examples::

        >>> aug = augmented_training_set(train, stft, fraction=0.5, snr_db=(0, 12))
        >>> len(aug) == len(train)
        True
    """
    fraction = float(fraction)
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    check_augment({"fraction": fraction, "kinds": kinds, "snr_db": tuple(snr_db), "add": bool(add)})
    lo, hi = (float(v) for v in snr_db)
    n_aug = int(round(fraction * len(train)))
    if n_aug == 0:
        return train
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(seed)))[:n_aug].sort().values
    plain = SpectrogramSet(train.waveform, train.X, train.phase, train.y, {}, list(train.classes))
    whole = SetDataset(plain, stft.sample_rate)
    has_phase = train.phase is not None  # a split loaded without its phase gives mixtures without theirs
    waveform, X = train.waveform.clone(), train.X.clone()
    phase = train.phase.clone() if has_phase else None
    for j, kind in enumerate(kinds):
        idx = order[j :: len(kinds)]
        if idx.numel() == 0:
            continue
        part = SetDataset(plain.subset(idx.tolist()), stft.sample_rate)
        mixed = ContaminatedDataset(part, kind, (lo, hi), source=whole if kind == "clip" else None, seed=seed)
        out = to_spectrograms(mixed, stft, keep=(), progress=progress, phase=has_phase)
        waveform[idx], X[idx] = out.waveform, out.X
        if has_phase:
            phase[idx] = out.phase
    if add:
        return SpectrogramSet(torch.cat([train.waveform, waveform[order]]), torch.cat([train.X, X[order]]),
                              torch.cat([train.phase, phase[order]]) if has_phase else None,
                              torch.cat([train.y, train.y[order]]), {},
                              list(train.classes))
    return SpectrogramSet(waveform, X, phase, train.y.clone(), {}, list(train.classes))


__all__ = [
    "CONDITIONS", "DEFAULT_CONDITIONS", "SNR_PRESETS", "Condition", "snr_table", "resolve_conditions",
    "SetDataset", "stratified_indices", "condition_set", "measured_snr_db", "ground_truth",
    "ground_truth_info", "wham_pairs",
    "AUGMENT_KINDS", "AUGMENT_KEYS", "check_augment", "augmented_training_set",
]
