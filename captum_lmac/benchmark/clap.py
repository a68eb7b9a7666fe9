r"""The small CLAP of the zero-shot benchmark: captioned training data, training recipe, cache.

Official CLAP weights cannot be downloaded on the project machines, so the zero-shot suite trains
a small CLAP-style model (:class:`~captum_lmac.nn.zeroshot.SmallCLAP`: CompactCNN on log-mel +
projection, frozen all-MiniLM-L6-v2 + projection, symmetric InfoNCE with a learnable temperature)
on captions built from labelled clips of the shared data folder (``<data root>``):

- ESC-10 folds 1-3 (``esc10/``, ESC-50 layout), captions from several templates × several
  descriptions per class ("the sound of a dog barking", "a recording of rain", ...); fold 4 is
  the validation set (zero-shot accuracy picks the epoch), fold 5 the test set;
- a stratified subset of FSDD (``fsdd/recordings``; training takes), 8 kHz upsampled to 16 kHz and
  centred in the clip, captioned "someone says the digit seven", ...;
- 5 s segments of the ambient loops (``ambient/{group}_{name}.flac``), captioned from their names
  ("a recording of thunder", "waves crashing on the shore", ...).

Every clip is 16 kHz and :data:`DURATION` (5 s) long. Clips whose captions describe the same
concept (e.g. ESC-10 ``rain`` and the ambient rain loops) share a concept id, so the contrastive
loss treats them as positives of each other.

The zero-shot evaluation uses prompts never used as training captions: the papers'
``"this is the sound of <label>"`` (:func:`class_prompts`) and a second, differently worded set
(:func:`heldout_prompts`).

To keep the CPU budget (about 15 minutes of training on 2 shared cores), this suite uses a
coarser STFT than the L-MAC recipe: :data:`ZS_STFT` (n_fft 512 → 257 bins, hop 20 ms → 251
frames for 5 s) and 64 mel bands.
"""

from __future__ import annotations

import json
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._io import atomic_write
from ..audio import STFT, fit_length, read_wav
from ..data.folders import ESC50, FSDD, default_data_root
from ..errors import CheckpointError, DataNotFoundError, InputError
from ..nn.zeroshot import SmallCLAP, clap_zero_shot_accuracy, load_clap, save_clap, train_clap

PathLike = Union[str, Path]

#: STFT of the zero-shot suite (16 kHz; coarser than the L-MAC recipe to fit the CPU budget).
ZS_STFT = dict(sample_rate=16000, n_fft=512, hop_length=320, win_length=400, window="hamming")

#: Clip length (seconds) of every clip in the suite.
DURATION = 5.0

#: Training recipe of the small CLAP (model + :func:`~captum_lmac.nn.zeroshot.train_clap`).
CLAP_CONFIG: Dict[str, Any] = dict(
    n_mels=64, channels=(16, 32, 64, 128), embed_dim=128, dropout=0.1, init_temperature=0.07,
    epochs=20, batch_size=32, lr=1e-3, weight_decay=1e-4, augment=True,
    fsdd_per_digit=20, ambient_segments_per_file=4,
)

_MODEL_KEYS = ("n_mels", "channels", "embed_dim", "dropout", "init_temperature")
_TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "augment")

#: Caption templates used in training (``{}`` = a description of the sound).
TRAIN_TEMPLATES = (
    "the sound of {}", "a recording of {}", "{}", "you can hear {}", "an audio clip of {}",
    "{} can be heard", "a sound recording of {}", "listen to {}",
)

#: Training descriptions of the ESC-10 classes.
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

#: Held-out wording (template and descriptions never used in training) for the ESC-10 classes.
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

#: FSDD caption templates (``{}`` = the digit as a word).
FSDD_TEMPLATES = (
    "someone says the digit {}", "a person saying {}", "the spoken number {}", "a voice counting {}",
    "{} spoken aloud", "a man saying the word {}",
)

#: Ambient loops: file-name prefix → (concept, descriptions). Concepts shared with ESC-10 reuse its name.
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

#: Prompts unrelated to every training concept (for the "empty mask" behaviour check).
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


def esc10_split(data_root: Optional[PathLike], folds: Union[int, Sequence[int]], progress: bool = False):
    """ESC-10 clips of ``folds`` at 16 kHz, 5 s: ``(waveform (N, samples), labels (N,), classes)``."""
    root = Path(data_root) if data_root is not None else default_data_root()
    ds = ESC50(root / "esc10", folds=folds, sample_rate=ZS_STFT["sample_rate"], duration=DURATION)
    w, y = _read_dataset(ds, f"reading ESC-10 fold(s) {folds}", progress)
    return w, torch.tensor(y), list(ds.classes)


def build_training_set(
    data_root: Optional[PathLike] = None,
    fsdd_per_digit: int = 30,
    ambient_segments_per_file: int = 6,
    seed: int = 0,
    progress: bool = True,
) -> CaptionedAudio:
    """The captioned training clips: ESC-10 folds 1-3, an FSDD subset and ambient segments.

    Args:
        data_root: Folder holding ``esc10/``, ``fsdd/`` and ``ambient/`` (default
            :func:`~captum_lmac.data.default_data_root`).
        fsdd_per_digit (int): FSDD training recordings per digit (drawn with ``seed`` over all
            speakers; takes 0-4, the conventional test takes, are never used). 0 skips FSDD.
        ambient_segments_per_file (int): Evenly spaced non-overlapping 5 s segments per ambient
            loop (a loop shorter than 5 s is tiled). 0 skips the ambient loops.
        seed (int): Seed of the FSDD subset.
    """
    root = Path(data_root) if data_root is not None else default_data_root()
    sr = ZS_STFT["sample_rate"]
    n = int(round(DURATION * sr))
    waves: List[Tensor] = []
    captions: List[List[str]] = []
    concept_of: List[str] = []
    source: List[str] = []

    w, y, classes = esc10_split(root, [1, 2, 3], progress)
    for i in range(w.shape[0]):
        waves.append(w[i])
        captions.append(esc10_captions(classes[int(y[i])]))
        concept_of.append(classes[int(y[i])])
        source.append("esc10")

    if fsdd_per_digit > 0:
        fsdd = FSDD(root / "fsdd", split="train", sample_rate=sr, duration=DURATION)
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

    concepts = sorted(set(concept_of))
    cid = {c: i for i, c in enumerate(concepts)}
    return CaptionedAudio(torch.stack(waves), captions, torch.tensor([cid[c] for c in concept_of]), concepts, source)


@torch.no_grad()
def log_mel_features(clap: SmallCLAP, stft: STFT, waveform: Tensor, batch_size: int = 64) -> Tensor:
    """The audio tower's log-mel features (N, 1, n_mels, T) of waveforms (batched STFT)."""
    out = []
    for s in range(0, waveform.shape[0], batch_size):
        X, _ = stft.analyze(waveform[s : s + batch_size], allow_silent=True)
        out.append(clap.audio.features(X))
    return torch.cat(out)


@torch.no_grad()
def magnitudes(stft: STFT, waveform: Tensor, batch_size: int = 64) -> Tuple[Tensor, Tensor]:
    """STFT magnitude and phase (N, 1, F, T) of waveforms, batched."""
    mags, phases = [], []
    for s in range(0, waveform.shape[0], batch_size):
        X, P = stft.analyze(waveform[s : s + batch_size], allow_silent=True)
        mags.append(X)
        phases.append(P)
    return torch.cat(mags), torch.cat(phases)


def clap_paths(cache_dir: PathLike) -> Tuple[Path, Path]:
    """``<cache_dir>/clap.pt`` (weights) and ``<cache_dir>/clap.json`` (report)."""
    d = Path(cache_dir)
    return d / "clap.pt", d / "clap.json"


def train_small_clap(
    data_root: Optional[PathLike] = None,
    seed: int = 0,
    progress: bool = True,
    **overrides: Any,
) -> Tuple[SmallCLAP, STFT, Dict[str, Any]]:
    """Build the captioned data, train the small CLAP (recipe :data:`CLAP_CONFIG` + ``overrides``), evaluate it.

    Returns ``(clap, stft, info)``; ``info`` holds the recipe, data sizes, validation / test
    zero-shot accuracies with both prompt wordings, the per-epoch history and CPU time.
    """
    unknown = sorted(set(overrides) - set(CLAP_CONFIG))
    if unknown:
        raise InputError(f"unknown CLAP recipe key(s) {unknown}; known: {sorted(CLAP_CONFIG)}")
    cfg = {**CLAP_CONFIG, **overrides}
    t0 = time.time()
    torch.manual_seed(seed)
    data = build_training_set(data_root, cfg["fsdd_per_digit"], cfg["ambient_segments_per_file"], seed, progress)
    w_val, y_val, classes = esc10_split(data_root, 4, progress)
    stft = STFT(**ZS_STFT)
    clap = SmallCLAP(stft, **{k: cfg[k] for k in _MODEL_KEYS})
    feats = log_mel_features(clap, stft, data.waveform)
    feats_val = log_mel_features(clap, stft, w_val)
    t_data = time.time() - t0
    prompts = class_prompts(classes, "the sound of {}")  # a training template: validation picks the epoch
    hist = train_clap(clap, feats, data.captions, data.groups, val=(feats_val, y_val, prompts), seed=seed,
                      progress=progress, **{k: cfg[k] for k in _TRAIN_KEYS})
    info: Dict[str, Any] = {
        "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "stft": dict(ZS_STFT),
        "duration_s": DURATION,
        "seed": seed,
        "n_train": len(data),
        "n_train_by_source": {s: data.source.count(s) for s in sorted(set(data.source))},
        "concepts": data.concepts,
        "n_distinct_captions": len({c for caps in data.captions for c in caps}),
        "classes": classes,
        "history": hist,
        "data_seconds": t_data,
        "train_seconds": hist["seconds"],
        "logit_scale": clap.logit_scale,
        "parameters_trainable": sum(p.numel() for p in clap.parameters() if p.requires_grad),
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }
    info.update(evaluate_zero_shot(clap, stft, data_root, progress=progress, val=(w_val, y_val, classes)))
    info["total_seconds"] = time.time() - t0
    return clap, stft, info


def evaluate_zero_shot(
    clap: SmallCLAP, stft: STFT, data_root: Optional[PathLike] = None, progress: bool = False,
    val: Optional[Tuple[Tensor, Tensor, List[str]]] = None,
) -> Dict[str, Any]:
    """Zero-shot accuracy on ESC-10 folds 4 (validation) and 5 (test) with both prompt wordings."""
    w_val, y_val, classes = val if val is not None else esc10_split(data_root, 4, progress)
    w_test, y_test, _ = esc10_split(data_root, 5, progress)
    seen = set(training_captions())
    out: Dict[str, Any] = {"prompts": {}, "acc": {}}
    for name, prompts in (("this is the sound of <label>", class_prompts(classes)),
                          ("held-out wording", heldout_prompts(classes)),
                          ("training template 'the sound of <label>'", class_prompts(classes, "the sound of {}"))):
        out["prompts"][name] = {"prompts": prompts, "any_in_training": any(p in seen for p in prompts)}
        out["acc"][name] = {
            "val_fold4": clap_zero_shot_accuracy(clap, log_mel_features(clap, stft, w_val), y_val, prompts, features=True),
            "test_fold5": clap_zero_shot_accuracy(clap, log_mel_features(clap, stft, w_test), y_test, prompts, features=True),
        }
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if torch.is_tensor(obj):
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def get_clap(
    cache_dir: PathLike = "cache/clap",
    retrain: bool = False,
    data_root: Optional[PathLike] = None,
    seed: int = 0,
    progress: bool = True,
    **overrides: Any,
) -> Tuple[SmallCLAP, STFT, Dict[str, Any]]:
    """Load the cached small CLAP (``<cache_dir>/clap.pt``) or train and cache it.

    Returns ``(clap, stft, info)`` (``info`` as in :func:`train_small_clap`, read back from
    ``<cache_dir>/clap.pt``; the same report is written to ``<cache_dir>/clap.json``).
    """
    pt, js = clap_paths(cache_dir)
    if pt.is_file() and not retrain:
        try:
            clap, stft, info = load_clap(pt)
            return clap, stft, info
        except CheckpointError:
            if not progress:
                raise
            print(f"{pt} cannot be loaded; retraining")
    clap, stft, info = train_small_clap(data_root, seed=seed, progress=progress, **overrides)
    info = _jsonable(info)
    save_clap(pt, clap, info)
    atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, sort_keys=True)))
    return clap, stft, info


__all__ = [
    "ZS_STFT", "DURATION", "CLAP_CONFIG", "TRAIN_TEMPLATES", "ESC10_DESCRIPTIONS", "HELDOUT_TEMPLATE",
    "HELDOUT_DESCRIPTIONS", "FSDD_TEMPLATES", "AMBIENT_CONCEPTS", "UNRELATED_PROMPTS", "label_text",
    "class_prompts", "heldout_prompts", "esc10_captions", "fsdd_captions", "ambient_concept", "training_captions",
    "CaptionedAudio", "build_training_set", "esc10_split", "log_mel_features", "magnitudes", "clap_paths",
    "train_small_clap", "evaluate_zero_shot", "get_clap",
]
