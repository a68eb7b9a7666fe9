r"""Suite configurations of the comparative benchmark.

A configuration is a JSON-able dict; every suite's entries are merged (recursively) over
:data:`COMMON`. The built-in suites live in :data:`SUITE_CONFIGS` (so ``synthetic`` runs from an
installed package with no files at all); ``benchmarks/<suite>.json`` in the repository holds the
same configurations as editable files, and :func:`load_config` prefers such a file when it exists.

Keys:

- ``suite``, ``description``.
- ``data``: ``{"loader": "suite"}`` (the splits of :func:`captum_lmac.benchmark.suites.load_suite_data`)
  or a folder reader ``{"reader": "ESC50" | "UrbanSound8K" | "FSDD", "root": <folder under the data root>,
  "kwargs": {...}, "splits": {"train": {...}, "val": {...}, "test": {...}}}`` (per-split keyword
  arguments, e.g. ``{"folds": [5]}``), or ``{"reader": "SyntheticEvents", "kwargs": {"n_classes": 3},
  "splits": {"train": {"n_items": 200, "seed": 0}, ...}}`` (generated, no folder).
- ``classifier``: ``{"source": "suite"}`` (:func:`~captum_lmac.benchmark.suites.get_classifier`) or
  ``{"recipe": {...}}`` (train a CompactCNN with ``build_classifier`` / ``train_classifier`` and cache
  it at ``<cache>/classifiers/<suite>.pt``).
- ``n_test`` (clips per condition, stratified over classes; null = all), ``n_train`` / ``n_val``
  (training / validation clips for the learned interpreters; null = all), ``seed``, ``batch_size``.
- ``conditions`` (``in-domain``, ``clip``, ``white``, ``speech``, ``ambient``), ``snr_preset``
  (``paper``: 3 dB; ``released``: 12 dB clip/speech, 6 dB white) and ``snr_db`` (a number or a
  per-kind mapping overriding the preset), ``speech_dir``, ``ambient_dir`` (relative to the data root).
- ``domains``: ``stft`` (mask on the linear STFT magnitude, listenable: the "STFT→Mel" rows) and
  ``mel`` (mask on the classifier's own features: the "Mel" rows).
- ``methods`` (order of the table rows), ``feature_domain_methods`` (the subset run in the ``mel``
  domain; null = all), ``method_options`` (keyword arguments of each baseline, e.g. IG steps),
  ``cam_layer`` (dotted module name; null = the last block).
- ``lmac`` / ``lmac_ft`` / ``l2i``: ``init`` and ``fit`` arguments of the learned methods
  (``fit_mel`` updates ``fit`` for the feature-domain fit, e.g. fewer epochs);
  ``lmac_ft.pairs`` (``auto`` | ``synthetic`` | ``wham``), ``lmac_ft.noise_dir``, ``lmac_ft.snr_db``;
  ``l2i.thresholds`` (one table row per relevance threshold RT).
- ``sanity``: ``{"enabled", "n_clips", "methods"}`` (cascading model randomisation).
- ``report``: ``{"n_examples", "mel_examples"}`` (clips per condition in the HTML report).
- ``quantus``: ``"fast"`` (vectorised Quantus formulas, checked against Quantus on one sample per
  batch) or ``"quantus"`` (call Quantus on every batch; slow).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from ..errors import DataNotFoundError, InputError

BASELINE_METHODS = [
    "saliency", "smoothgrad", "ig", "gradcam", "gradcam++", "guided_backprop", "guided_gradcam",
    "gradient_shap", "kernel_shap",
]
LEARNED_METHODS = ["lmac", "lmac_ft", "l2i"]

#: Defaults shared by every suite.
COMMON: Dict[str, Any] = {
    "description": "",
    "notes": "",
    "data": {"loader": "suite"},
    "classifier": {"source": "suite"},
    "n_test": None,
    "n_train": None,
    "n_val": None,
    "seed": 0,
    "batch_size": 16,
    "conditions": ["in-domain", "clip", "white", "speech"],
    "snr_preset": "paper",
    "snr_db": None,
    "speech_dir": "ljspeech32",
    "ambient_dir": "ambient",
    "domains": ["stft", "mel"],
    "methods": BASELINE_METHODS + LEARNED_METHODS,
    "feature_domain_methods": None,
    "method_options": {
        "smoothgrad": {"nt_samples": 10, "noise_level": 0.15},
        "ig": {"n_steps": 32},
        "gradient_shap": {"n_samples": 16},
        "kernel_shap": {"n_samples": 64, "grid": [8, 8]},
    },
    "cam_layer": None,
    "lmac": {
        "layers": None,
        "init": {"hidden": 32, "use_input": True, "mask_domain": "linear"},
        "fit": {"epochs": 15, "lr": 1e-3, "batch_size": 16},
    },
    "lmac_ft": {
        "pairs": "auto",
        "noise_dir": "ambient",
        "snr_db": 0.0,
        "fit": {"epochs": 5, "lr": 1e-3, "batch_size": 16, "lambda_g": 4.0, "cct": 0.7, "guidance": "l1"},
    },
    "l2i": {
        "layers": None,
        "init": {"n_components": 100, "hidden": 64},
        "fit": {"epochs": 15, "lr": 1e-3, "batch_size": 16},
        "thresholds": [0.2, 0.4, 0.6, 0.8],
    },
    "sanity": {"enabled": True, "n_clips": 16, "methods": ["lmac", "gradcam"]},
    "report": {"n_examples": 3, "mel_examples": True},
    "quantus": "fast",
}

#: The built-in suites (merged over :data:`COMMON`).
SUITE_CONFIGS: Dict[str, Dict[str, Any]] = {
    "synthetic": {
        "description": (
            "SyntheticEvents (10 procedurally generated event classes over pink noise, clean event known): "
            "the embedded default, sized to finish in a few minutes on 2 CPU cores. Ground truth: SI-SDR "
            "of the listenable explanation vs the clean event, precision/recall vs the oracle mask."
        ),
        "notes": (
            "Budget choices: 50 test clips (5 per class); L-MAC fitted on 240 training clips for 5 epochs "
            "(4 in the Mel domain), fine-tuned 2 epochs on the same clips with their known clean event; "
            "IG 8 steps, SmoothGrad 4 samples, GradientSHAP 4 samples, KernelSHAP 16 coalitions of 8x8 "
            "patches; Mel domain: saliency, GradCAM, GradCAM++, L-MAC."
        ),
        "n_test": 50,
        "n_train": 240,
        "n_val": 80,
        "method_options": {
            "smoothgrad": {"nt_samples": 4, "noise_level": 0.15},
            "ig": {"n_steps": 8},
            "gradient_shap": {"n_samples": 4},
            "kernel_shap": {"n_samples": 16, "grid": [8, 8], "perturbations_per_eval": 16},
        },
        "feature_domain_methods": ["saliency", "gradcam", "gradcam++", "lmac"],
        "lmac": {"fit": {"epochs": 5, "lr": 1e-3, "batch_size": 16}, "fit_mel": {"epochs": 4}},
        "lmac_ft": {"pairs": "synthetic", "fit": {"epochs": 2}},
        "l2i": {"init": {"n_components": 50}, "fit": {"epochs": 6, "nmf_iter": 60}},
        "sanity": {"n_clips": 12},
    },
    "esc10": {
        "description": (
            "ESC-10 (<data root>/esc10): train folds 1-3 (240 clips), validation fold 4, test fold 5 (80 clips); "
            "L-MAC fine-tuned on WHAM!-style mixtures (training clips + <data root>/ambient at 0 dB)."
        ),
        "notes": (
            "Budget choices (target <= 30 min on 2 shared CPU cores, 5 s clips): all 80 test clips; IG 8 steps, "
            "SmoothGrad 4 samples, GradientSHAP 4 samples, KernelSHAP 16 coalitions of 8x8 patches; L-MAC 15 "
            "epochs (lr 1e-3, batch 16) in the STFT domain, 6 in the Mel domain, fine-tuning 2 epochs "
            "(lambda_g 4, CCT 0.7); L2I 100 components, NMF on 20k frames; Mel domain: saliency, GradCAM, L-MAC "
            "only; sanity check on 8 clips."
        ),
        "n_test": 80,
        "method_options": {
            "smoothgrad": {"nt_samples": 4, "noise_level": 0.15},
            "ig": {"n_steps": 8},
            "gradient_shap": {"n_samples": 4},
            "kernel_shap": {"n_samples": 16, "grid": [8, 8], "perturbations_per_eval": 16},
        },
        "feature_domain_methods": ["saliency", "gradcam", "lmac"],
        "lmac": {"fit": {"epochs": 15, "lr": 1e-3, "batch_size": 16}, "fit_mel": {"epochs": 6}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 2}},
        "l2i": {"fit": {"epochs": 10, "nmf_iter": 100, "nmf_max_frames": 20000}},
        "sanity": {"n_clips": 8},
    },
    "fsdd": {
        "description": (
            "Free Spoken Digit Dataset (<data root>/fsdd): takes 10-49 train, 5-9 validation, 0-4 test "
            "(300 clips; n_test 100 by default); L-MAC fine-tuning on WHAM!-style ambient mixtures."
        ),
        "n_test": 100,
        "n_train": 1000,
        "method_options": {
            "smoothgrad": {"nt_samples": 4, "noise_level": 0.15},
            "ig": {"n_steps": 8},
            "gradient_shap": {"n_samples": 4},
            "kernel_shap": {"n_samples": 24, "grid": [8, 8], "perturbations_per_eval": 24},
        },
        "feature_domain_methods": ["saliency", "ig", "gradcam", "lmac"],
        "lmac": {"fit": {"epochs": 10}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 3}},
        "l2i": {"fit": {"epochs": 10, "nmf_iter": 100}},
    },
    "esc50": {
        "description": (
            "ESC-50 (needs the full data set in its official layout at <data root>/ESC-50: audio/, meta/esc50.csv): "
            "train folds 1-3, validation fold 4, test fold 5 (400 clips), the L-MAC paper's setting on a "
            "compact CNN. Not run on the development machines."
        ),
        "data": {
            "reader": "ESC50",
            "root": "ESC-50",
            "kwargs": {"duration": 5.0},
            "splits": {"train": {"folds": [1, 2, 3]}, "val": {"folds": [4]}, "test": {"folds": [5]}},
        },
        "classifier": {"recipe": {"channels": [32, 64, 128, 256], "n_mels": 80, "epochs": 80, "batch_size": 32,
                                  "lr": 1e-3, "weight_decay": 1e-4, "patience": 20, "mixup": 0.4, "augment": True}},
        "lmac": {"fit": {"epochs": 20}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 5}},
    },
    "us8k": {
        "description": (
            "UrbanSound8K (needs the full data set at <data root>/UrbanSound8K: audio/fold1..10, "
            "metadata/UrbanSound8K.csv): train folds 1-8, validation fold 9, test fold 10 (837 clips; "
            "n_test 400 by default). Not run on the development machines."
        ),
        "data": {
            "reader": "UrbanSound8K",
            "root": "UrbanSound8K",
            "kwargs": {"duration": 4.0},
            "splits": {"train": {"folds": [1, 2, 3, 4, 5, 6, 7, 8]}, "val": {"folds": [9]}, "test": {"folds": [10]}},
        },
        "classifier": {"recipe": {"channels": [32, 64, 128, 256], "n_mels": 80, "epochs": 60, "batch_size": 32,
                                  "lr": 1e-3, "weight_decay": 1e-4, "patience": 15, "mixup": 0.4, "augment": True}},
        "n_test": 400,
        "n_train": 3000,
        "lmac": {"fit": {"epochs": 15}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 5}},
    },
}

#: Suite names with a built-in configuration.
BUILTIN_SUITES = tuple(SUITE_CONFIGS)

_REPLACE_KEYS = {"methods", "conditions", "domains", "feature_domain_methods", "thresholds", "splits", "layers",
                 "grid", "channels"}


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, everything else (lists included) is replaced."""
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k not in _REPLACE_KEYS:
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def builtin_config(name: str) -> Dict[str, Any]:
    """The built-in configuration of suite ``name``, merged over :data:`COMMON`."""
    if name not in SUITE_CONFIGS:
        raise InputError(f"unknown suite {name!r}; built-in suites: {list(SUITE_CONFIGS)} (or pass a JSON config file)")
    cfg = merge(COMMON, SUITE_CONFIGS[name])
    cfg["suite"] = name
    return cfg


def repo_benchmarks_dir() -> Path:
    """``<repository>/benchmarks`` (next to the ``captum_lmac`` package)."""
    return Path(__file__).resolve().parent.parent.parent / "benchmarks"


def load_config(suite: Union[str, Path], search_dirs: Optional[list] = None) -> Dict[str, Any]:
    """The configuration of ``suite``: a JSON file path, or a suite name.

    For a name, the first ``<dir>/<name>.json`` found in ``search_dirs`` (default: ``./benchmarks``
    and the repository's ``benchmarks/``) is merged over the built-in configuration of that name (or
    over :data:`COMMON` for a suite without one); without such a file the built-in configuration is used.

    Raises:
        InputError: for an unknown name without a file, or a file that is not valid JSON.
    """
    path = Path(suite)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise DataNotFoundError(f"benchmark config not found: {path}")
        return _from_file(path, default_name=path.stem)
    name = str(suite)
    dirs = search_dirs if search_dirs is not None else [Path.cwd() / "benchmarks", repo_benchmarks_dir()]
    for d in dirs:
        f = Path(d) / f"{name}.json"
        if f.is_file():
            return _from_file(f, default_name=name)
    return builtin_config(name)


def _from_file(path: Path, default_name: str) -> Dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path} must hold a JSON object")
    name = raw.get("suite", default_name)
    base = builtin_config(name) if name in SUITE_CONFIGS else merge(COMMON, {})
    cfg = merge(base, raw)
    cfg["suite"] = name
    cfg["config_file"] = str(path)
    return cfg


def write_builtin_configs(directory: Union[str, Path]) -> list:
    """Write every built-in suite as ``<directory>/<suite>.json`` (the files shipped in ``benchmarks/``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name in SUITE_CONFIGS:
        f = d / f"{name}.json"
        f.write_text(json.dumps(builtin_config(name), indent=2) + "\n")
        out.append(f)
    return out


__all__ = [
    "BASELINE_METHODS", "LEARNED_METHODS", "COMMON", "SUITE_CONFIGS", "BUILTIN_SUITES", "merge",
    "builtin_config", "load_config", "write_builtin_configs", "repo_benchmarks_dir",
]
