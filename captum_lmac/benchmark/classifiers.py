r"""The classifiers a suite explains, and their recipes: trained once, cached, reloaded.

- ``classifier.source = "recipe"``: a :class:`~captum_lmac.nn.CompactCNN` on log-mel trained with the
  suite's recipe (:func:`train_recipe_classifier`), cached as ``<cache>/classifiers/<suite>.pt``
  with ``<suite>.json`` (accuracies, CPU time, recipe);
- ``"clap"``: the small CLAP trained here (:func:`train_small_clap`; official CLAP weights cannot be
  downloaded on the project machines), cached as ``<cache>/clap/clap.pt``, made a zero-shot
  classifier over the class prompts;
- ``"file"``: a classifier saved with :func:`captum_lmac.training.save_classifier`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .._io import atomic_write
from .._utils import to_jsonable
from ..audio import STFT
from ..data.captions import (
    DURATION,
    build_training_set,
    class_prompts,
    esc10_split,
    heldout_prompts,
    training_captions,
)
from ..data.tensors import SpectrogramSet
from ..errors import CheckpointError, InputError
from ..nn.zeroshot import SmallCLAP
from ..nn.hooks import Hook
from ..nn.zoo import build_architecture
from ..training import (
    accuracy,
    build_classifier,
    clap_zero_shot_accuracy,
    load_clap,
    load_classifier,
    save_clap,
    save_classifier,
    train_clap,
    train_classifier,
)
from .config import SuiteConfig
from .data import load_data
from .suites import ZS_STFT

PathLike = Union[str, Path]

_NET_KEYS = ("channels", "dropout")
_TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "mixup", "augment")
_RECIPE_KEYS = _NET_KEYS + _TRAIN_KEYS + ("n_mels", "architecture", "width", "options")


def layer_configs(layers: Any) -> List[Any]:
    """Decoder layers as JSON: names stay names, :class:`~captum_lmac.nn.hooks.Hook` specs become their config."""
    return [h.config() if isinstance(h, Hook) else h for h in layers]


def train_recipe_classifier(
    suite: str,
    recipe: Dict[str, Any],
    data: Dict[str, SpectrogramSet],
    stft: STFT,
    seed: int = 0,
    progress: bool = True,
) -> Tuple[nn.Module, Dict[str, Any]]:
    """Train a CompactCNN on log-mel with ``recipe`` on ``data`` (train / val / test).

    ``recipe`` keys: ``architecture`` (``"compact_cnn"``, the default, or a name of
    :func:`captum_lmac.nn.zoo.build_architecture`: ``crnn``, ``conv1d``, ``patch_transformer``,
    ``waveform_cnn``, ``streaming``), its ``width`` and ``options``; ``channels``, ``dropout``,
    ``n_mels`` (the CompactCNN) and ``epochs``, ``batch_size``, ``lr``, ``weight_decay``,
    ``patience``, ``mixup``, ``augment`` (:func:`~captum_lmac.training.train_classifier`). A
    waveform architecture trains on the clips' waveforms. Returns ``(model, info)`` with validation
    / test accuracy and the CPU training time.
    """
    unknown = sorted(set(recipe) - set(_RECIPE_KEYS))
    if unknown:
        raise InputError(f"unknown classifier recipe key(s) {unknown}; known: {sorted(_RECIPE_KEYS)}")
    train, val, test = data["train"], data.get("val"), data.get("test")
    classes = list(train.classes)
    torch.manual_seed(seed)
    arch = recipe.get("architecture", "compact_cnn")
    train_kwargs = {k: recipe[k] for k in _TRAIN_KEYS if k in recipe}
    arch_info: Dict[str, Any] = {}
    if arch == "compact_cnn":
        net_kwargs = {k: (tuple(recipe[k]) if isinstance(recipe[k], list) else recipe[k])
                      for k in _NET_KEYS if k in recipe}
        model = build_classifier(len(classes), stft, n_mels=int(recipe.get("n_mels", 80)), **net_kwargs)
        trained, inputs = model, lambda s: s.X
    else:
        kwargs = dict(recipe.get("options") or {})
        if recipe.get("width") is not None:
            kwargs["width"] = int(recipe["width"])
        model, arch_info = build_architecture(arch, len(classes), stft, **kwargs)
        arch_info["architecture"] = {"name": arch, "kwargs": kwargs}
        if arch_info["input"] == "waveform":  # train the waveform model itself, on the clips
            trained, inputs = model.model, lambda s: s.waveform
        else:
            trained, inputs = model, lambda s: s.X
    t0, cpu0 = time.time(), time.process_time()
    hist = train_classifier(
        trained, inputs(train), train.y,
        inputs(val) if val is not None else None, val.y if val is not None else None,
        seed=seed, progress=progress, **train_kwargs,
    )
    wall, cpu = time.time() - t0, time.process_time() - cpu0
    info = {
        "suite": suite,
        "seed": int(seed),
        "classes": classes,
        "config": to_jsonable(recipe),
        "n_train": len(train),
        "n_val": len(val) if val is not None else 0,
        "n_test": len(test) if test is not None else 0,
        "epochs_run": len(hist["loss"]),
        "best_epoch": int(hist.get("best_epoch", len(hist["loss"]) - 1)),
        "history": {k: [round(float(x), 5) for x in hist[k]] for k in ("loss", "train_acc", "val_acc")},
        "train_seconds": round(wall, 2),
        "train_cpu_seconds": round(cpu, 2),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.machine(),
    }
    info["val_acc"] = round(accuracy(trained, inputs(val), val.y), 5) if val is not None else None
    info["test_acc"] = round(accuracy(trained, inputs(test), test.y), 5) if test is not None else None
    info.update({k: v for k, v in arch_info.items() if k in ("architecture", "cam_layer", "input", "parameters")})
    if "decoder_layers" in arch_info:
        info["decoder_layers"] = layer_configs(arch_info["decoder_layers"])
    return model, info


def recipe_classifier(cfg: SuiteConfig, cache_dir: PathLike, data_root: Optional[PathLike] = None,
                      progress: bool = True, log: Callable[[str], None] = print, retrain: bool = False):
    """``(model, stft, classes, info)``: the suite's cached recipe classifier, or one trained and cached."""
    d = Path(cache_dir) / "classifiers"
    arch = cfg.classifier.recipe.get("architecture", "compact_cnn")
    seed = cfg.classifier_seed
    stem = cfg.suite if arch == "compact_cnn" else f"{cfg.suite}-{arch}"
    stem += f"-seed{seed}" if seed != 0 else ""
    pt, js = d / f"{stem}.pt", d / f"{stem}.json"
    why = f"no cached classifier at {pt}"
    if pt.is_file() and not retrain:
        model, stft, classes, info = load_classifier(pt)
        if info.get("suite", cfg.suite) != cfg.suite:
            raise CheckpointError(f"{pt} holds a classifier for suite {info.get('suite')!r}, not {cfg.suite!r}")
        stale = [k for k, want in (("config", to_jsonable(cfg.classifier.recipe)), ("seed", seed),
                                   ("stft", STFT(**cfg.classifier.stft).config()))
                 if k in info and info[k] != want]
        if not stale:
            return model, stft, classes, dict(info, checkpoint=str(pt))
        why = f"the cached classifier {pt} was trained with another {' and '.join(stale)}"
    log(f"[benchmark] {why}: training the {cfg.suite} classifier (seed {seed}, {cfg.classifier.recipe})")
    stft = STFT(**cfg.classifier.stft)
    t0 = time.time()
    data = load_data(cfg, stft, data_root, progress=progress, full=True, keep_extra=False, stream_train=False,
                     phase_splits=())  # the recipes train on magnitudes or waveforms, never on the phase
    data_seconds = time.time() - t0
    model, info = train_recipe_classifier(cfg.suite, cfg.classifier.recipe, data, stft, seed=seed,
                                          progress=progress)
    info["stft"] = stft.config()
    info["data_seconds"] = round(data_seconds, 2)
    classes = info["classes"]
    save_classifier(pt, model, stft, classes, to_jsonable(info), architecture=info.get("architecture"))
    report = to_jsonable(dict(info, checkpoint=str(pt)))
    atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    model.eval()
    return model, stft, classes, dict(info, checkpoint=str(pt))


# --- the small CLAP -------------------------------------------------------------------------------

#: Training recipe of the small CLAP (model + :func:`~captum_lmac.training.train_clap` + captioned data).
CLAP_CONFIG: Dict[str, Any] = dict(
    n_mels=64, channels=(16, 32, 64, 128), embed_dim=128, dropout=0.1, init_temperature=0.07,
    epochs=20, batch_size=32, lr=1e-3, weight_decay=1e-4, augment=True,
    fsdd_per_digit=20, ambient_segments_per_file=4,
)

_CLAP_MODEL_KEYS = ("n_mels", "channels", "embed_dim", "dropout", "init_temperature")
_CLAP_TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "augment")


@torch.no_grad()
def log_mel_features(clap: SmallCLAP, stft: STFT, waveform: Tensor, batch_size: int = 64) -> Tensor:
    """The audio tower's log-mel features (N, 1, n_mels, T) of waveforms (batched STFT)."""
    out = []
    for s in range(0, waveform.shape[0], batch_size):
        X, _ = stft.analyze(waveform[s : s + batch_size], allow_silent=True)
        out.append(clap.audio.features(X))
    return torch.cat(out)


def evaluate_zero_shot(
    clap: SmallCLAP, stft: STFT, data_root: Optional[PathLike] = None, progress: bool = False,
    val: Optional[Tuple[Tensor, Tensor, List[str]]] = None,
) -> Dict[str, Any]:
    """Zero-shot accuracy on ESC-10 folds 4 (validation) and 5 (test) with both prompt wordings."""
    sr = stft.sample_rate
    w_val, y_val, classes = val if val is not None else esc10_split(data_root, 4, progress, sr, DURATION)
    w_test, y_test, _ = esc10_split(data_root, 5, progress, sr, DURATION)
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


def train_small_clap(
    data_root: Optional[PathLike] = None,
    seed: int = 0,
    progress: bool = True,
    stft_config: Optional[Dict[str, Any]] = None,
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
    stft_config = dict(stft_config or ZS_STFT)
    t0 = time.time()
    torch.manual_seed(seed)
    sr = int(stft_config["sample_rate"])
    data = build_training_set(data_root, cfg["fsdd_per_digit"], cfg["ambient_segments_per_file"], seed, progress,
                              sample_rate=sr, duration=DURATION)
    w_val, y_val, classes = esc10_split(data_root, 4, progress, sr, DURATION)
    stft = STFT(**stft_config)
    clap = SmallCLAP(stft, **{k: cfg[k] for k in _CLAP_MODEL_KEYS})
    feats = log_mel_features(clap, stft, data.waveform)
    feats_val = log_mel_features(clap, stft, w_val)
    t_data = time.time() - t0
    prompts = class_prompts(classes, "the sound of {}")  # a training template: validation picks the epoch
    hist = train_clap(clap, feats, data.captions, data.groups, val=(feats_val, y_val, prompts), seed=seed,
                      progress=progress, **{k: cfg[k] for k in _CLAP_TRAIN_KEYS})
    info: Dict[str, Any] = {
        "recipe": to_jsonable(cfg),
        "stft": stft_config,
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


def get_clap(cache_dir: PathLike = "cache/clap", retrain: bool = False, data_root: Optional[PathLike] = None,
             seed: int = 0, progress: bool = True, log: Callable[[str], None] = print,
             **overrides: Any) -> Tuple[SmallCLAP, STFT, Dict[str, Any]]:
    """Load the cached small CLAP (``<cache_dir>/clap.pt``) or train and cache it (report in ``clap.json``)."""
    pt, js = Path(cache_dir) / "clap.pt", Path(cache_dir) / "clap.json"
    if pt.is_file() and not retrain:
        try:
            return load_clap(pt)
        except CheckpointError as exc:
            log(f"[benchmark] {pt} cannot be loaded ({exc}); retraining")
    clap, stft, info = train_small_clap(data_root, seed=seed, progress=progress, **overrides)
    info = to_jsonable(info)
    save_clap(pt, clap, info)
    atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, sort_keys=True)))
    return clap, stft, info


def clap_classifier(cfg: SuiteConfig, cache_dir: PathLike, data_root: Optional[PathLike] = None,
                    progress: bool = True, log: Callable[[str], None] = print):
    """``(zero-shot model, stft, classes, info)``: the small CLAP over the prompts of the suite's classes."""
    clap, stft, info = get_clap(Path(cache_dir) / "clap", data_root=data_root, seed=cfg.seed, progress=progress,
                                log=log, stft_config=cfg.classifier.stft, **cfg.classifier.clap)
    classes = list(info.get("classes") or [])
    if not classes:
        raise CheckpointError("the cached CLAP does not record its class names; retrain it")
    zs = clap.zero_shot(class_prompts(classes, cfg.classifier.prompt_template))
    acc = (info.get("acc") or {}).get("this is the sound of <label>", {})
    out = {"description": f"small CLAP ({info.get('n_train', '?')} captioned clips), zero-shot over "
                          f"'{cfg.classifier.prompt_template}' prompts",
           "test_acc": acc.get("test_fold5"), "val_acc": acc.get("val_fold4"),
           "train_seconds": info.get("train_seconds"), "checkpoint": str(Path(cache_dir) / "clap" / "clap.pt"),
           "logit_scale": info.get("logit_scale"), "n_train_by_source": info.get("n_train_by_source")}
    return zs, stft, classes, out


def get_suite_classifier(cfg: SuiteConfig, cache_dir: PathLike, data_root: Optional[PathLike] = None,
                         classifier_path: Optional[PathLike] = None, progress: bool = True,
                         log: Callable[[str], None] = print):
    """``(model, stft, classes, info)`` of a suite: a given file, the suite's CLAP, or its cached recipe classifier."""
    path = classifier_path or (cfg.classifier.path if cfg.classifier.source == "file" else None)
    if path is not None:
        model, stft, classes, info = load_classifier(path)
        return model, stft, classes, dict(info, checkpoint=str(path))
    if cfg.classifier.source == "clap":
        return clap_classifier(cfg, cache_dir, data_root, progress, log)
    return recipe_classifier(cfg, cache_dir, data_root, progress, log)


__all__ = ["layer_configs", "train_recipe_classifier", "recipe_classifier", "CLAP_CONFIG", "log_mel_features", "evaluate_zero_shot",
           "train_small_clap", "get_clap", "clap_classifier", "get_suite_classifier"]
