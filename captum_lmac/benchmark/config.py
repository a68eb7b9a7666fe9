r"""Typed, validated suite configurations of the comparative benchmark.

A suite configuration is a :class:`SuiteConfig` (dataclasses, defaults in one place: here and in
the method sections of :mod:`captum_lmac.benchmark.methods`). It is read from a JSON-able dict —
a built-in suite (:data:`~captum_lmac.benchmark.suites.SUITE_CONFIGS`, merged over the defaults),
a ``benchmarks/<suite>.json`` file, ``--set key=value`` overrides — and every key and value is
checked: an unknown key, a value of the wrong type or an unknown method / condition / domain name
is an :class:`~captum_lmac.errors.InputError` naming the key and the allowed values.

Top-level keys:

- ``suite``, ``description``, ``notes``;
- ``data`` (:class:`DataConfig`): a reader (``SyntheticEvents``, ``ESC50``, ``UrbanSound8K``,
  ``FSDD``, ``SpeechInNoise``), its folder under the data root, shared keyword arguments and per-split ones;
- ``classifier`` (:class:`ClassifierConfig`): ``recipe`` (train a CompactCNN with
  ``build_classifier`` / ``train_classifier``, cached at ``<cache>/classifiers/<suite>.pt``),
  ``clap`` (the small CLAP trained here, zero-shot over class prompts) or ``file`` (a saved classifier);
  ``classifier.seed`` (default ``seed``) seeds the recipe's training; a seed other than 0 is cached
  as ``<suite>[-<architecture>]-seed<N>.pt``, and a cached classifier trained with another recipe,
  seed or STFT is retrained;
- ``n_test`` (clips per condition, stratified over classes; null = all), ``n_train`` / ``n_val``
  (clips for fitting the learned methods; null = all), ``seed`` (data, contamination and baseline
  seed), ``seeds`` (the learned methods are fitted once per seed and reported as mean ± sd over
  seeds; null = ``[seed]``), ``batch_size``;
- ``conditions`` (``in-domain``, ``clip``, ``white``, ``speech``, ``ambient``), ``snr_preset``
  (``paper``: 3 dB; ``released``: 12 dB clip / speech, 6 dB white) and ``snr_db`` (a number or a
  per-kind mapping overriding the preset), ``speech_dir``, ``ambient_dir`` (under the data root);
- ``domains``: ``stft`` (mask on the linear STFT magnitude, listenable: the "STFT→Mel" rows) and
  ``mel`` (mask on the classifier's own features: the "Mel" rows);
- ``methods`` (table order; registered names, see :func:`~captum_lmac.benchmark.registry.method_names`),
  ``feature_domain_methods`` (subset run in the ``mel`` domain; null = all), ``method_options``
  (keyword arguments of each baseline), ``cam_layer`` (dotted module name; null = the last block);
- one section per method that has settings (``lmac``, ``lmac_ft``, ``l2i``, ``lmac_zs``; see
  :mod:`captum_lmac.benchmark.methods`);
- ``sanity`` (:class:`SanityConfig`), ``analyses`` (further suite-level checks: ``roar``,
  ``zeroshot_behaviour``), ``roar`` (:class:`RoarConfig`), ``report``
  (:class:`ReportConfig`), ``quantus`` (``fast`` | ``quantus``);
- ``streaming`` (:class:`StreamingConfig`): the learned methods' training split read on the fly
  (``enabled: true`` / ``"auto"`` above ``min_clips`` clips), so fit memory does not grow with it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from ..data.contamination import KINDS
from ..data.folders import ESC50, FSDD, UrbanSound8K
from ..data.speech_noise import SpeechInNoise
from ..data.synthetic import SyntheticEvents
from ..errors import DataNotFoundError, InputError
from . import methods as _builtin_methods  # noqa: F401  (registers the built-in methods and their sections)
from .registry import ANALYSES, get_method, section_types
from .schema import parse, suggest, to_dict
from .suites import STFT_DEFAULTS, SUITE_CONFIGS

CONDITION_NAMES = ("in-domain",) + tuple(KINDS)
DOMAIN_NAMES = ("stft", "mel")
SNR_PRESET_NAMES = ("paper", "released")
CLASSIFIER_SOURCES = ("recipe", "clap", "file")
READERS = {"SyntheticEvents": SyntheticEvents, "ESC50": ESC50, "UrbanSound8K": UrbanSound8K, "FSDD": FSDD,
           "SpeechInNoise": SpeechInNoise}
"""The data readers a configuration can name (``data.reader``)."""


@dataclass
class DataConfig:
    """Where a suite's clips come from: ``reader(<data root>/<root>, **kwargs, **splits[split])``."""

    reader: str = "SyntheticEvents"
    root: Optional[str] = None
    kwargs: Dict[str, Any] = field(default_factory=dict)
    splits: Dict[str, Dict[str, Any]] = field(default_factory=lambda: {
        "train": {"n_items": 800, "seed": 0}, "val": {"n_items": 200, "seed": 1}, "test": {"n_items": 400, "seed": 2}})

    def validate(self, where: str) -> None:
        if self.reader not in READERS:
            raise InputError(f"{where}.reader must be one of {', '.join(READERS)}, got {self.reader!r}"
                             f"{suggest(self.reader, READERS)}")
        if self.reader != "SyntheticEvents" and not self.root:
            raise InputError(f"{where}.root: the {self.reader} reader needs the folder of the data set under the data root")
        for split in self.splits:
            if split not in ("train", "val", "test"):
                raise InputError(f"{where}.splits.{split}: splits are 'train', 'val' and 'test'")


@dataclass
class ClassifierConfig:
    """The classifier a suite explains (see the module documentation for ``source``)."""

    source: str = "recipe"
    recipe: Dict[str, Any] = field(default_factory=lambda: {
        "channels": [8, 16, 32, 64], "n_mels": 80, "epochs": 25, "batch_size": 16, "lr": 2e-3,
        "weight_decay": 1e-4, "patience": 20, "mixup": 0.4, "augment": True})
    stft: Dict[str, Any] = field(default_factory=lambda: dict(STFT_DEFAULTS))
    path: Optional[str] = None
    prompt_template: str = "this is the sound of {}"
    clap: Dict[str, Any] = field(default_factory=dict)
    seed: Optional[int] = None

    def validate(self, where: str) -> None:
        if self.source not in CLASSIFIER_SOURCES:
            raise InputError(f"{where}.source must be one of {', '.join(CLASSIFIER_SOURCES)}, got {self.source!r}")
        if self.source == "file" and not self.path:
            raise InputError(f"{where}.path: source 'file' needs the path of a saved classifier")
        if "{}" not in self.prompt_template:
            raise InputError(f"{where}.prompt_template must contain '{{}}' where the class name goes")


@dataclass
class SanityConfig:
    """The cascading-randomisation check: on ``n_clips`` test clips, for ``methods``.

    Learned methods that can be refitted (L-MAC) appear twice: ``<name>`` keeps the fitted decoder
    at every stage (cheap); ``<name> (refit)`` fits the method again on the randomised classifier
    with the suite's fit settings — the like-with-like comparison with the gradient methods, which
    are recomputed on it — at the stages ``refit`` names: ``"last"`` (default: everything
    randomised, one extra fit), ``"all"`` (a fit per stage) or ``"none"``. ``refit_epochs``
    overrides the fit's epochs (null: the suite's; fewer epochs make it cheaper but no longer the
    same procedure). Refits are stored in the interpreter cache and reused for the same randomised
    weights and settings, as the fits are (``--refit`` fits them again)."""

    enabled: bool = True
    n_clips: int = 16
    methods: List[str] = field(default_factory=lambda: ["lmac", "gradcam"])
    refit: str = "last"
    refit_epochs: Optional[int] = None

    def validate(self, where: str) -> None:
        if self.refit not in ("none", "last", "all"):
            raise InputError(f"{where}.refit must be 'none', 'last' or 'all', got {self.refit!r}")
        if self.refit_epochs is not None and (isinstance(self.refit_epochs, bool) or not isinstance(self.refit_epochs, int)
                                              or self.refit_epochs < 1):
            raise InputError(f"{where}.refit_epochs must be a positive number of epochs or null, got {self.refit_epochs!r}")


@dataclass
class RoarConfig:
    """ROAR (the ``roar`` analysis): methods (``random`` = the baseline), shares of removed bins,
    seeds, and the retraining budget (epochs; null = the classifier recipe's; clips: null = the
    loaded splits)."""

    methods: List[str] = field(default_factory=lambda: ["lmac", "gradcam", "ig", "random"])
    fractions: List[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: Optional[int] = None
    n_train: Optional[int] = None
    n_test: Optional[int] = None

    def validate(self, where: str) -> None:
        if not self.fractions or any(not 0 < f < 1 for f in self.fractions):
            raise InputError(f"{where}.fractions must be shares strictly between 0 and 1, got {self.fractions}")
        for m in self.methods:
            if m != "random":
                get_method(m)
        if not self.seeds:
            raise InputError(f"{where}.seeds must name at least one seed")


@dataclass
class ReportConfig:
    """Clips per condition shown in the HTML report, and whether the Mel-domain masks are drawn."""

    n_examples: int = 3
    mel_examples: bool = True


@dataclass
class StreamingConfig:
    """Whether the learned methods read their training split on the fly
    (:class:`~captum_lmac.data.StreamingSpectrograms`) instead of from one in-memory tensor.

    ``enabled``: ``true``, ``false`` or ``"auto"`` (stream when the training split has more than
    ``min_clips`` clips); ``workers`` loader processes; ``clip_seconds`` / ``crop`` (null: the
    reader's own length and rule, which gives the very same fits as in memory; e.g. ``2.0`` /
    ``"random"`` for seeded random crops, different every epoch).
    """

    enabled: Union[bool, str] = "auto"
    min_clips: int = 2000
    workers: int = 0
    clip_seconds: Optional[float] = None
    crop: Optional[str] = None

    def validate(self, where: str) -> None:
        if self.enabled not in (True, False, "auto"):
            raise InputError(f"{where}.enabled must be true, false or \"auto\", got {self.enabled!r}")
        if self.min_clips < 0 or self.workers < 0:
            raise InputError(f"{where}.min_clips and {where}.workers must be >= 0")
        if self.clip_seconds is not None and self.clip_seconds <= 0:
            raise InputError(f"{where}.clip_seconds must be a positive number of seconds or null")
        if self.crop not in (None, "random", "start", "center", "end"):
            raise InputError(f"{where}.crop must be null, \"random\", \"start\", \"center\" or \"end\", got {self.crop!r}")

    def applies(self, n_clips: int) -> bool:
        """Stream a training split of ``n_clips`` clips?"""
        return self.enabled is True or (self.enabled == "auto" and n_clips > self.min_clips)

    def data_key(self) -> Optional[Dict[str, Any]]:
        """What changes the training data (for the interpreter cache key), or None for the reader's own clips."""
        if self.clip_seconds is None and self.crop is None:
            return None
        return {"clip_seconds": self.clip_seconds, "crop": self.crop}


@dataclass
class SuiteConfig:
    """A whole suite (see the module documentation). ``sections`` holds the method sections."""

    suite: str = "custom"
    description: str = ""
    notes: str = ""
    config_file: Optional[str] = None
    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    n_test: Optional[int] = None
    n_train: Optional[int] = None
    n_val: Optional[int] = None
    seed: int = 0
    seeds: Optional[List[int]] = None
    batch_size: int = 16
    conditions: List[str] = field(default_factory=lambda: ["in-domain", "clip", "white", "speech"])
    snr_preset: str = "paper"
    snr_db: Union[None, float, Dict[str, float]] = None
    speech_dir: str = "ljspeech32"
    ambient_dir: str = "ambient"
    domains: List[str] = field(default_factory=lambda: ["stft", "mel"])
    methods: List[str] = field(default_factory=lambda: [
        "mixture", "saliency", "smoothgrad", "ig", "gradcam", "gradcam++", "guided_backprop", "guided_gradcam",
        "gradient_shap", "kernel_shap", "lmac", "lmac_ft", "l2i"])
    feature_domain_methods: Optional[List[str]] = None
    method_options: Dict[str, Dict[str, Any]] = field(default_factory=lambda: {
        "smoothgrad": {"nt_samples": 10, "noise_level": 0.15},
        "ig": {"n_steps": 32},
        "gradient_shap": {"n_samples": 16},
        "kernel_shap": {"n_samples": 64, "grid": [8, 8]},
    })
    cam_layer: Optional[str] = None
    sanity: SanityConfig = field(default_factory=SanityConfig)
    analyses: List[str] = field(default_factory=list)
    roar: RoarConfig = field(default_factory=RoarConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    quantus: str = "fast"
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    sections: Dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The configuration section of method ``name`` (None if it has none)."""
        return self.sections.get(name)

    def validate(self, where: str) -> None:
        for i, name in enumerate(self.methods):
            get_method(name)  # raises, listing the registered names
        for name in self.feature_domain_methods or []:
            if name not in self.methods:
                raise InputError(f"{where}.feature_domain_methods: {name!r} is not in {where}.methods {self.methods}")
        for name in self.method_options:
            get_method(name)
        for name in self.sanity.methods:
            get_method(name)
        for c in self.conditions:
            if c not in CONDITION_NAMES:
                raise InputError(f"{where}.conditions: unknown condition {c!r}{suggest(c, CONDITION_NAMES)}; "
                                 f"choose from {', '.join(CONDITION_NAMES)}")
        for d in self.domains:
            if d not in DOMAIN_NAMES:
                raise InputError(f"{where}.domains: unknown domain {d!r}; choose from {', '.join(DOMAIN_NAMES)}")
        for a in self.analyses:
            if a not in ANALYSES:
                raise InputError(f"{where}.analyses: unknown analysis {a!r}{suggest(a, list(ANALYSES))}; "
                                 f"registered: {', '.join(ANALYSES)}")
        if self.snr_preset not in SNR_PRESET_NAMES:
            raise InputError(f"{where}.snr_preset must be one of {', '.join(SNR_PRESET_NAMES)}, got {self.snr_preset!r}")
        if isinstance(self.snr_db, dict):
            for k in self.snr_db:
                if k not in KINDS:
                    raise InputError(f"{where}.snr_db: unknown contamination kind {k!r}; choose from {', '.join(KINDS)}")
        if self.quantus not in ("fast", "quantus"):
            raise InputError(f"{where}.quantus must be 'fast' or 'quantus', got {self.quantus!r}")
        for key in ("n_test", "n_train", "n_val"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise InputError(f"{where}.{key} must be a positive number of clips or null, got {v}")
        if self.batch_size < 1:
            raise InputError(f"{where}.batch_size must be >= 1, got {self.batch_size}")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise InputError(f"{where}.seeds must be a non-empty list of distinct integers, got {self.seeds}")

    @property
    def interpreter_seeds(self) -> List[int]:
        """Seeds the learned methods are fitted with (``seeds``, default ``[seed]``)."""
        return list(self.seeds) if self.seeds else [self.seed]

    @property
    def classifier_seed(self) -> int:
        """Seed of the recipe classifier's training (``classifier.seed``, default ``seed``)."""
        return int(self.classifier.seed) if self.classifier.seed is not None else int(self.seed)

    def to_dict(self) -> Dict[str, Any]:
        """The configuration as plain JSON-able data (what ``results.json`` and ``benchmarks/*.json`` hold)."""
        return to_dict(self)


_REPLACE_KEYS = {"methods", "conditions", "domains", "feature_domain_methods", "thresholds", "splits", "layers",
                 "grid", "channels", "analyses", "takes", "folds"}


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, everything else (lists included) is replaced."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k not in _REPLACE_KEYS:
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def defaults() -> Dict[str, Any]:
    """The default configuration (every section of every registered method included) as a dict."""
    return to_dict(SuiteConfig(sections={name: cls() for name, cls in section_types().items()}))


def from_dict(data: Mapping[str, Any], where: str = "config") -> SuiteConfig:
    """Validate ``data`` (merged over :func:`defaults`) into a :class:`SuiteConfig`."""
    if isinstance(data, SuiteConfig):
        return data
    return parse(SuiteConfig, merge(defaults(), data), where, extra=section_types())


def builtin_config(name: str) -> SuiteConfig:
    """The built-in configuration of suite ``name``."""
    if name not in SUITE_CONFIGS:
        raise InputError(f"unknown suite {name!r}{suggest(name, list(SUITE_CONFIGS))}; built-in suites: "
                         f"{', '.join(SUITE_CONFIGS)} (or pass a JSON config file)")
    return from_dict({**SUITE_CONFIGS[name], "suite": name}, where=name)


def repo_benchmarks_dir() -> Path:
    """``<repository>/benchmarks`` (next to the ``captum_lmac`` package)."""
    return Path(__file__).resolve().parent.parent.parent / "benchmarks"


def load_config(suite: Union[str, Path, Mapping[str, Any]], overrides: Optional[Mapping[str, Any]] = None,
                search_dirs: Optional[list] = None) -> SuiteConfig:
    """The validated configuration of ``suite``, with ``overrides`` merged over it.

    ``suite`` is a dict, a JSON file path or a suite name. For a name, the first
    ``<dir>/<name>.json`` found in ``search_dirs`` (default: ``./benchmarks`` and the repository's
    ``benchmarks/``) is merged over the built-in configuration of that name (or over the defaults
    for a suite without one); without such a file the built-in configuration is used. Overriding
    ``methods`` alone narrows the suite's ``feature_domain_methods`` to the chosen methods.

    Raises:
        DataNotFoundError: for a config file that does not exist.
        InputError: for an unknown name without a file, a file that is not a JSON object, or any
            invalid key or value.
    """
    if isinstance(suite, Mapping):
        raw, name, where = dict(suite), str(suite.get("suite", "custom")), "config"
    else:
        path = Path(suite)
        if path.suffix == ".json" or path.is_file():
            if not path.is_file():
                raise DataNotFoundError(f"benchmark config not found: {path}")
            raw, name, where = _read_json(path), None, str(path)
            name = str(raw.get("suite", path.stem))
            raw["config_file"] = str(path)
        else:
            name = str(suite)
            dirs = search_dirs if search_dirs is not None else [Path.cwd() / "benchmarks", repo_benchmarks_dir()]
            found = next((Path(d) / f"{name}.json" for d in dirs if (Path(d) / f"{name}.json").is_file()), None)
            if found is None:
                builtin_config(name)  # raises for an unknown name
                raw, where = {}, name
            else:
                raw, where = _read_json(found), str(found)
                raw["config_file"] = str(found)
    base = SUITE_CONFIGS.get(name, {})
    overrides = dict(overrides or {})
    data = merge(merge(base, raw), overrides)
    if "methods" in overrides and "feature_domain_methods" not in overrides and data.get("feature_domain_methods"):
        # choosing the methods narrows the suite's feature-domain subset to them
        data["feature_domain_methods"] = [m for m in data["feature_domain_methods"] if m in data["methods"]]
    data["suite"] = name
    return from_dict(data, where=where)


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path} must hold a JSON object")
    return raw


def write_builtin_configs(directory: Union[str, Path]) -> list:
    """Write every built-in suite as ``<directory>/<suite>.json`` (the files shipped in ``benchmarks/``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name in SUITE_CONFIGS:
        f = d / f"{name}.json"
        data = builtin_config(name).to_dict()
        data.pop("config_file", None)
        f.write_text(json.dumps(data, indent=2) + "\n")
        out.append(f)
    return out


__all__ = [
    "DataConfig", "ClassifierConfig", "SanityConfig", "RoarConfig", "ReportConfig", "StreamingConfig", "SuiteConfig",
    "merge", "defaults",
    "from_dict", "builtin_config", "load_config", "write_builtin_configs", "repo_benchmarks_dir",
    "CONDITION_NAMES", "DOMAIN_NAMES", "READERS",
]
