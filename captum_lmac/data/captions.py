r"""Captions for (audio, text) training data: the caption vocabulary of the small CLAP and of
LMAC-ZS, and the captioned clips built from the shared data folder (``<data root>``):

- ESC-10 folds 1-3 (``esc10/``, ESC-50 layout), captions from several templates × several
  descriptions per class ("the sound of a dog barking", "a recording of rain", ...);
- a stratified subset of FSDD (``fsdd/recordings``; training takes), 8 kHz upsampled and centred in
  the clip, captioned "someone says the digit seven", ...;
- segments of the ambient loops (``ambient/{group}_{name}.flac``), captioned from their names
  ("a recording of thunder", "waves crashing on the shore", ...).

Clips whose captions describe the same concept (e.g. ESC-10 ``rain`` and the ambient rain loops)
share a concept id, so a contrastive loss can treat them as positives of each other. Evaluation
prompts are never training captions: the papers' ``"this is the sound of <label>"``
(:func:`class_prompts`) and a second, differently worded set (:func:`heldout_prompts`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..audio import fit_length, read_wav
from ..errors import DataNotFoundError, InputError
from .folders import ESC50, FSDD, default_data_root

PathLike = Union[str, Path]

#: Sample rate (Hz) and clip length (s) of the captioned clips by default.
SAMPLE_RATE = 16000
DURATION = 5.0


TRAIN_TEMPLATES = (
    "the sound of {}", "a recording of {}", "{}", "you can hear {}", "an audio clip of {}",
    "{} can be heard", "a sound recording of {}", "listen to {}",
)


ESC10_DESCRIPTIONS: Dict[str, Tuple[str, ...]] = {
    "dog": ("a dog", "a dog barking", "a barking dog"),
    "rooster": ("a rooster", "a rooster crowing", "a cock crowing"),
    "rain": ("rain", "rain falling", "heavy rain"),
    "sea_waves": ("sea waves", "waves crashing on the shore", "the sea"),
    "crackling_fire": ("a crackling fire", "fire crackling", "a campfire burning"),
    "crying_baby": ("a crying baby", "a baby crying", "an infant crying"),
    "sneezing": ("sneezing", "a person sneezing", "someone sneezes"),
    "clock_tick": ("a clock ticking", "the tick of a clock", "a ticking clock"),
    "helicopter": ("a helicopter", "a helicopter flying", "helicopter rotor blades"),
    "chainsaw": ("a chainsaw", "a chainsaw cutting wood", "a running chainsaw"),
}


HELDOUT_TEMPLATE = "there is {} in this audio"


HELDOUT_DESCRIPTIONS: Dict[str, str] = {
    "dog": "a hound yapping",
    "rooster": "a cockerel at dawn",
    "rain": "a downpour",
    "sea_waves": "the ocean surf",
    "crackling_fire": "burning wood popping",
    "crying_baby": "a newborn wailing",
    "sneezing": "a loud sneeze",
    "clock_tick": "the ticking of a watch",
    "helicopter": "a chopper flying overhead",
    "chainsaw": "a power saw cutting a tree",
}


FSDD_TEMPLATES = (
    "someone says the digit {}", "a person saying {}", "the spoken number {}", "a voice counting {}",
    "{} spoken aloud", "a man saying the word {}",
)


AMBIENT_CONCEPTS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "weather_rain": ("rain", ("rain", "rain falling", "a rain shower")),
    "weather_thunder": ("thunder", ("thunder", "a thunderstorm", "thunder rumbling")),
    "weather_windleaves": ("wind", ("wind rustling leaves", "wind blowing through trees", "wind")),
    "weather_windgust": ("wind", ("wind gusts", "a gusty wind", "wind blowing")),
    "weather_windstorm": ("wind", ("a windstorm", "strong wind howling", "wind")),
    "weather_wind": ("wind", ("wind", "wind blowing", "a gusty wind")),
    "weather_snowstorm": ("wind", ("a snowstorm", "howling wind", "a blizzard")),
    "water_river": ("river", ("a river", "a flowing stream", "running water")),
    "water_waterfall": ("waterfall", ("a waterfall", "a cascade of water", "a roaring waterfall")),
    "water_wave": ("sea_waves", ("sea waves", "waves crashing on the shore", "the sea")),
    "dayscape": ("birds", ("birds singing", "birdsong in a forest", "a forest during the day")),
    "building_amb_farm": ("farm", ("a farm", "farmyard ambience", "farm animals in the distance")),
    "building_amb_port": ("harbour", ("a harbour", "a busy port", "seagulls at a harbour")),
    "building_amb_trade": ("market", ("a market", "a busy marketplace", "people trading at a market")),
}


UNRELATED_PROMPTS = (
    "this is the sound of a violin", "a person typing on a keyboard", "this is the sound of a car horn",
    "church bells ringing",
)


def label_text(category: str) -> str:
    """ESC-50 category → plain words (``"sea_waves"`` → ``"sea waves"``)."""
    return category.replace("_", " ")


def class_prompts(classes: Sequence[str], template: str = "this is the sound of {}") -> List[str]:
    """One prompt per class, the papers' wording by default."""
    return [template.format(label_text(c)) for c in classes]


def heldout_prompts(classes: Sequence[str]) -> List[str]:
    """Differently worded prompts (:data:`HELDOUT_TEMPLATE` × :data:`HELDOUT_DESCRIPTIONS`)."""
    out = []
    for c in classes:
        if c not in HELDOUT_DESCRIPTIONS:
            raise InputError(f"no held-out description for class {c!r}")
        out.append(HELDOUT_TEMPLATE.format(HELDOUT_DESCRIPTIONS[c]))
    return out


def esc10_captions(category: str) -> List[str]:
    """Every training caption of an ESC-10 class (templates × descriptions)."""
    descs = ESC10_DESCRIPTIONS.get(category, (label_text(category),))
    return [t.format(d) for d in descs for t in TRAIN_TEMPLATES]


def fsdd_captions(digit_word: str) -> List[str]:
    return [t.format(digit_word) for t in FSDD_TEMPLATES]


def ambient_concept(stem: str) -> Tuple[str, Tuple[str, ...]]:
    """(concept, descriptions) of an ambient loop from its file stem (longest matching prefix)."""
    for prefix in sorted(AMBIENT_CONCEPTS, key=len, reverse=True):
        if stem.startswith(prefix):
            return AMBIENT_CONCEPTS[prefix]
    group = stem.split("_")[0]
    return group, (group + " ambience",)


def ambient_captions(descriptions: Sequence[str]) -> List[str]:
    return [t.format(d) for d in descriptions for t in TRAIN_TEMPLATES]


def training_captions() -> List[str]:
    """Every caption the small CLAP is trained on (to check that evaluation prompts are unseen)."""
    caps = [c for cat in ESC10_DESCRIPTIONS for c in esc10_captions(cat)]
    caps += [c for d in FSDD.CLASS_NAMES for c in fsdd_captions(d)]
    caps += [c for _, descs in AMBIENT_CONCEPTS.values() for c in ambient_captions(descs)]
    return sorted(set(caps))


@dataclass
class CaptionedAudio:
    """Clips with caption lists and concept ids, held in memory.

    Attributes:
        waveform: (N, samples) at 16 kHz.
        captions: one list of paraphrases per clip.
        groups: concept id per clip (N,).
        concepts: concept names (``groups`` indexes them).
        source: ``"esc10"``, ``"fsdd"`` or ``"ambient"`` per clip.
    """

    waveform: Tensor
    captions: List[List[str]]
    groups: Tensor
    concepts: List[str]
    source: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.waveform.shape[0])


def _read_dataset(ds, desc: str, progress: bool) -> Tuple[Tensor, List[int]]:
    waves, labels = [], []
    for i in tqdm(range(len(ds)), desc=desc, disable=not progress, leave=False):
        w, y, _ = ds[i]
        waves.append(w)
        labels.append(int(y))
    return torch.stack(waves), labels


def esc10_split(data_root: Optional[PathLike], folds: Union[int, Sequence[int]], progress: bool = False,
                sample_rate: int = SAMPLE_RATE, duration: float = DURATION):
    """ESC-10 clips of ``folds`` (16 kHz, 5 s by default): ``(waveform (N, samples), labels (N,), classes)``."""
    root = Path(data_root) if data_root is not None else default_data_root()
    ds = ESC50(root / "esc10", folds=folds, sample_rate=sample_rate, duration=duration)
    w, y = _read_dataset(ds, f"reading ESC-10 fold(s) {folds}", progress)
    return w, torch.tensor(y), list(ds.classes)


def build_training_set(
    data_root: Optional[PathLike] = None,
    fsdd_per_digit: int = 30,
    ambient_segments_per_file: int = 6,
    seed: int = 0,
    progress: bool = True,
    sample_rate: int = SAMPLE_RATE,
    duration: float = DURATION,
    esc10: bool = True,
) -> CaptionedAudio:
    """The captioned training clips: ESC-10 folds 1-3, an FSDD subset and ambient segments, every
    clip ``duration`` s at ``sample_rate``.

    Args:
        data_root: Folder holding ``esc10/``, ``fsdd/`` and ``ambient/`` (default
            :func:`~captum_lmac.data.default_data_root`).
        fsdd_per_digit (int): FSDD training recordings per digit (drawn with ``seed`` over all
            speakers; takes 0-4, the conventional test takes, are never used). 0 skips FSDD.
        ambient_segments_per_file (int): Evenly spaced non-overlapping 5 s segments per ambient
            loop (a loop shorter than 5 s is tiled). 0 skips the ambient loops.
        seed (int): Seed of the FSDD subset.
        esc10 (bool): Include ESC-10 folds 1-3 (False: only the FSDD and ambient clips, e.g. to add
            them to a training split read elsewhere).
    """
    root = Path(data_root) if data_root is not None else default_data_root()
    sr = int(sample_rate)
    n = int(round(duration * sr))
    waves: List[Tensor] = []
    captions: List[List[str]] = []
    concept_of: List[str] = []
    source: List[str] = []

    if esc10:
        w, y, classes = esc10_split(root, [1, 2, 3], progress, sr, duration)
        for i in range(w.shape[0]):
            waves.append(w[i])
            captions.append(esc10_captions(classes[int(y[i])]))
            concept_of.append(classes[int(y[i])])
            source.append("esc10")

    if fsdd_per_digit > 0:
        fsdd = FSDD(root / "fsdd", split="train", sample_rate=sr, duration=duration)
        rng = random.Random(seed)
        by_digit: Dict[int, List[int]] = {}
        for i, lab in enumerate(fsdd.labels):
            by_digit.setdefault(lab, []).append(i)
        chosen = sorted(i for lab in sorted(by_digit) for i in rng.sample(by_digit[lab], min(fsdd_per_digit, len(by_digit[lab]))))
        for i in tqdm(chosen, desc="reading FSDD", disable=not progress, leave=False):
            wave, lab, _ = fsdd[i]
            waves.append(wave)
            word = fsdd.classes[lab]
            captions.append(fsdd_captions(word))
            concept_of.append(f"digit {word}")
            source.append("fsdd")

    if ambient_segments_per_file > 0:
        amb_dir = root / "ambient"
        files = sorted(p for p in amb_dir.glob("*") if p.suffix.lower() in (".flac", ".wav"))
        if not files:
            raise DataNotFoundError(f"no ambient loops (*.flac, *.wav) in {amb_dir}")
        for p in tqdm(files, desc="reading ambient loops", disable=not progress, leave=False):
            wave, _ = read_wav(p, sr)
            concept, descs = ambient_concept(p.stem)
            n_seg = max(1, min(ambient_segments_per_file, wave.shape[0] // n))
            starts = torch.linspace(0, max(0, wave.shape[0] - n), n_seg).long().tolist()
            for s in starts:
                seg = fit_length(wave[s:], n)
                if float(seg.abs().max()) == 0:
                    continue
                waves.append(seg.float())
                captions.append(ambient_captions(descs))
                concept_of.append(concept)
                source.append("ambient")

    if not waves:
        return CaptionedAudio(torch.zeros(0, n), [], torch.zeros(0, dtype=torch.long), [], [])
    concepts = sorted(set(concept_of))
    cid = {c: i for i, c in enumerate(concepts)}
    return CaptionedAudio(torch.stack(waves), captions, torch.tensor([cid[c] for c in concept_of]), concepts, source)



__all__ = [
    "SAMPLE_RATE", "DURATION", "TRAIN_TEMPLATES", "ESC10_DESCRIPTIONS", "HELDOUT_TEMPLATE", "HELDOUT_DESCRIPTIONS",
    "FSDD_TEMPLATES", "AMBIENT_CONCEPTS", "UNRELATED_PROMPTS", "label_text", "class_prompts", "heldout_prompts",
    "esc10_captions", "fsdd_captions", "ambient_concept", "ambient_captions", "training_captions", "CaptionedAudio",
    "esc10_split", "build_training_set",
]
