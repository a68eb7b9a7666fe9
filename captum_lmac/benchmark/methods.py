r"""Building the benchmark's methods: Captum baselines, fitted interpreters (cached), table rows.

Every method becomes one or more :class:`MethodRow` objects with ``attribute(X) -> mask`` in the
input domain of the model it was built on (the linear STFT magnitude for the ``"stft"`` domain, the
classifier's features for ``"mel"``):

- Captum baselines (``saliency``, ``smoothgrad``, ``ig``, ``gradcam``, ``gradcam++``,
  ``guided_backprop``, ``guided_gradcam``, ``gradient_shap``, ``kernel_shap``, any ``captum.attr``
  class name, anything added with :func:`captum_lmac.attr.register_baseline`) via
  :func:`~captum_lmac.attr.make_baseline`; CAM layer = the classifier's last block unless configured.
- ``lmac``: :class:`~captum_lmac.LMAC` fitted on the training clips (validation split picks the
  epoch), ``lmac_ft``: that decoder fine-tuned on (X_mix, X_clean) pairs with guidance.
- ``l2i`` (if :mod:`captum_lmac.attr.l2i` is importable): one row per relevance threshold RT.

Fitted interpreters are cached as ``<cache>/interpreters/<suite>_<method>[_<domain>].pt`` with their
own ``save``/``load``. A cached file is reused only if it was fitted for this classifier (``load``
raises :class:`~captum_lmac.errors.CheckpointError` otherwise) *and* with the same settings (the
settings are stored in the checkpoint's history under ``"benchmark"``); otherwise it is refitted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..attr.baselines import BASELINES, make_baseline
from ..attr.lmac import LMAC
from ..errors import CheckpointError, InputError

try:  # L2I is optional (written separately); the harness runs without it.
    from ..attr.l2i import L2I  # type: ignore
except Exception:  # pragma: no cover - depends on the checkout
    L2I = None  # type: ignore

LEARNED = ("lmac", "lmac_ft", "l2i")

_INFO_KEYS = ("cache_file", "pairs_description")  # stored with a fit, not part of its cache key

Explainer = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass
class MethodRow:
    """One row of the result tables.

    Attributes:
        name: Row name (e.g. ``"gradcam"``, ``"lmac"``, ``"l2i (RT=0.2)"``).
        base: The method it comes from (``"l2i"`` for every L2I row).
        domain: ``"stft"`` or ``"mel"``.
        attribute: ``X -> mask`` (N, 1, F, T) in [0, 1] explaining the model's decision on X.
        kind: ``"baseline"`` or ``"learned"``.
        mask_rule: How the raw attribution becomes a mask.
        info: Fit information (seconds, best epoch, validation scores, cache file) for reports.
        explainer: ``explain(model, X, target) -> mask`` recomputing this method on another model of
            the same architecture (used by the cascading-randomisation sanity check); None if not
            applicable.
    """

    name: str
    base: str
    domain: str
    attribute: Callable[[Tensor], Tensor]
    kind: str = "baseline"
    mask_rule: str = ""
    info: Dict[str, Any] = field(default_factory=dict)
    explainer: Optional[Explainer] = None


def l2i_available() -> bool:
    """Whether :class:`captum_lmac.attr.l2i.L2I` could be imported."""
    return L2I is not None


def default_layers(model: nn.Module, n: int = 4) -> List[str]:
    """Dotted names of the last ``n`` blocks of ``model.net.blocks`` (the decoder's input layers)."""
    blocks = getattr(getattr(model, "net", None), "blocks", None)
    if not blocks:
        raise InputError("cannot choose decoder layers: the model has no net.blocks; set 'layers' in the config")
    names = {id(m): name for name, m in model.named_modules()}
    return [names[id(b)] for b in list(blocks)[-n:]]


def _cam_layer(model: nn.Module, name: Optional[str]) -> Optional[nn.Module]:
    if name is None:
        return None
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise InputError(f"cam_layer {name!r} is not a module of the classifier") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) or isinstance(obj, (int, str, bool)) or obj is None:
        return obj
    if torch.is_tensor(obj) and obj.numel() == 1:
        return float(obj)
    return str(obj)


class InterpreterCache:
    """Where fitted interpreters are stored and whether a stored one may be reused."""

    def __init__(self, directory: Optional[Path], suite: str, refit: bool = False, log: Callable[[str], None] = print):
        self.directory = Path(directory) if directory is not None else None
        self.suite = suite
        self.refit = refit
        self.log = log

    def path(self, method: str, domain: str) -> Optional[Path]:
        if self.directory is None:
            return None
        suffix = "" if domain == "stft" else f"_{domain}"
        return self.directory / f"{self.suite}_{method}{suffix}.pt"

    def load(self, cls: type, method: str, domain: str, model: nn.Module, key: Dict[str, Any]) -> Optional[Any]:
        path = self.path(method, domain)
        if path is None or self.refit or not path.is_file():
            return None
        try:
            obj = cls.load(path, model)
        except CheckpointError as exc:
            self.log(f"[benchmark] cached {method} ({domain}) not reusable, refitting: {exc}")
            return None
        stored = {k: v for k, v in ((obj.history or {}).get("benchmark") or {}).items() if k not in _INFO_KEYS}
        if stored != _jsonable({k: v for k, v in key.items() if k not in _INFO_KEYS}):
            self.log(f"[benchmark] cached {path.name} was fitted with other settings; refitting")
            return None
        self.log(f"[benchmark] reusing {path}")
        return obj

    def save(self, obj: Any, method: str, domain: str, key: Dict[str, Any]) -> Optional[Path]:
        path = self.path(method, domain)
        obj.history = dict(obj.history or {})
        obj.history["benchmark"] = _jsonable(key)
        if path is None:
            return None
        return obj.save(path)


def _history_summary(hist: Dict[str, Any]) -> Dict[str, Any]:
    """Compact fit information: best epoch, time, and the validation scores at the best epoch."""
    out: Dict[str, Any] = {}
    best = hist.get("best_epoch")
    if best is not None:
        out["best_epoch"] = int(best)
    for k in ("seconds", "dictionary_seconds", "decoder_parameters"):
        if k in hist:
            out[k] = round(float(hist[k]), 2) if k != "decoder_parameters" else int(hist[k])
    for k, v in hist.items():
        if k.startswith("val_") and isinstance(v, list) and v:
            i = best if isinstance(best, int) and 0 <= best < len(v) else len(v) - 1
            out[k] = round(float(v[i]), 4)
    if "epochs_run" not in out:
        for k in ("loss",):
            if isinstance(hist.get(k), list):
                out["epochs_run"] = len(hist[k])
    return out


def lmac_on(model: nn.Module, fitted: LMAC) -> LMAC:
    """An L-MAC that uses ``fitted``'s decoder (unchanged) on another classifier of the same architecture."""
    other = LMAC(model, fitted.layer_names, hidden=fitted.hidden, use_input=fitted.use_input,
                 mask_domain=fitted.mask_domain, sequence_layout=fitted.sequence_layout)
    other.decoder = fitted.decoder
    return other


def _baseline_row(name: str, model: nn.Module, domain: str, options: Dict[str, Any], cam_layer: Optional[str],
                  seed: int, batch_size: int) -> MethodRow:
    opts = dict(options)
    opts.setdefault("batch_size", batch_size)
    opts.setdefault("seed", seed)
    if "grid" in opts:
        opts["grid"] = tuple(opts["grid"])
    layer = _cam_layer(model, cam_layer)
    method = make_baseline(name, model, layer=layer, **opts)

    def explainer(m: nn.Module, X: Tensor, target: Tensor) -> Tensor:
        return make_baseline(name, m, layer=_cam_layer(m, cam_layer), **opts).attribute(X, target)

    return MethodRow(
        name=name, base=name, domain=domain, attribute=lambda X: method.attribute(X), kind="baseline",
        mask_rule=getattr(method, "mask_rule", ""), info={"options": _jsonable(options)}, explainer=explainer,
    )


def build_methods(
    names: Sequence[str],
    model: nn.Module,
    domain: str,
    cfg: Dict[str, Any],
    train_X: Optional[Callable[[], Tensor]] = None,
    val_X: Optional[Callable[[], Tensor]] = None,
    pairs: Optional[Callable[[], Tuple[Tensor, Tensor, str]]] = None,
    cache: Optional[InterpreterCache] = None,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> List[MethodRow]:
    r"""Build (and fit or load) the methods ``names`` on ``model`` for one domain.

    Args:
        names: Method names (see the module doc).
        model: Classifier in this domain's input (``model`` or ``model.in_feature_domain()``).
        domain: ``"stft"`` or ``"mel"`` (cache file names, reports).
        cfg: The suite configuration (``method_options``, ``cam_layer``, ``lmac``, ``lmac_ft``, ``l2i``,
            ``batch_size``, ``n_train``).
        train_X, val_X: Lazy providers of the training / validation inputs in this domain (only
            called when something must be fitted).
        pairs: Lazy provider of fine-tuning pairs ``(X_mix, X_clean, description)`` in this domain.
        cache: Interpreter cache (None: always fit, never save).
        seed: Seed of baselines and fits.

    Returns:
        list of :class:`MethodRow` in the order of ``names`` (L2I expands to one row per threshold).
    """
    cache = cache or InterpreterCache(None, cfg.get("suite", "suite"), log=log)
    options = cfg.get("method_options", {}) or {}
    batch_size = int(cfg.get("batch_size", 16))
    rows: List[MethodRow] = []
    fitted: Dict[str, Any] = {}
    lm_cfg = cfg.get("lmac", {})
    layers = lm_cfg.get("layers") or default_layers(model)
    for name in names:
        if name == "lmac" or name == "lmac_ft":
            lmac = fitted.get("lmac") or _fit_lmac(model, domain, layers, cfg, train_X, val_X, cache, seed,
                                                   progress, log)
            fitted["lmac"] = lmac
            if name == "lmac":
                obj = lmac
            else:
                obj = _fit_lmac_ft(model, domain, lmac, cfg, pairs, val_X, cache, seed, progress, log)
            rows.append(_learned_row(name, name, domain, obj, lambda X, o=obj: o.attribute(X), "lmac"))
        elif name == "l2i":
            if L2I is None:
                log("[benchmark] l2i skipped: captum_lmac.attr.l2i.L2I is not available")
                continue
            l2i = _fit_l2i(model, domain, cfg, train_X, val_X, cache, seed, progress, log)
            for rt in cfg.get("l2i", {}).get("thresholds", [0.2]):
                rows.append(_learned_row(f"l2i (RT={rt:g})", "l2i", domain, l2i,
                                         lambda X, o=l2i, r=float(rt): o.attribute(X, threshold=r), "l2i"))
        else:
            if name not in BASELINES and not _is_captum_name(name):
                raise InputError(f"unknown method {name!r}: use {sorted(BASELINES)}, {list(LEARNED)}, "
                                 "a captum.attr class name, or register_baseline() it")
            rows.append(_baseline_row(name, model, domain, options.get(name, {}), cfg.get("cam_layer"), seed,
                                      batch_size))
    return rows


def _is_captum_name(name: str) -> bool:
    import captum.attr

    from captum.attr import Attribution

    cls = getattr(captum.attr, name, None)
    return isinstance(cls, type) and issubclass(cls, Attribution)


def _learned_row(name: str, base: str, domain: str, obj: Any, fn: Callable[[Tensor], Tensor], kind: str) -> MethodRow:
    info = _history_summary(obj.history or {})
    info["cache"] = (obj.history or {}).get("benchmark", {}).get("cache_file")
    rule = {
        "lmac": "decoder output (sigmoid) on the input grid, used as is",
        "l2i": "share of the selected NMF components in W·H (soft mask), used as is",
    }[kind]
    explainer = None
    if kind == "lmac":
        def explainer(m: nn.Module, X: Tensor, target: Tensor, o=obj) -> Tensor:
            return lmac_on(m, o).attribute(X)  # explains the (randomised) classifier's own decision
    return MethodRow(name=name, base=base, domain=domain, attribute=fn, kind="learned", mask_rule=rule, info=info,
                     explainer=explainer)


def _limit(X: Tensor, n: Optional[int]) -> Tensor:
    return X if n is None or n >= X.shape[0] else X[:n]


def _fit_settings(section: Dict[str, Any], domain: str) -> Dict[str, Any]:
    """``section["fit"]``, updated with ``section["fit_mel"]`` in the feature domain."""
    fit = dict(section.get("fit", {}) or {})
    if domain != "stft":
        fit.update(section.get("fit_mel", {}) or {})
    return fit


def _fit_cached(cls, name, model, domain, layers, cfg, train_X, val_X, cache, seed, progress, log):
    """Load ``cls`` (LMAC or L2I) from the interpreter cache, or fit it on the training clips and cache it."""
    section = cfg.get(name, {})
    init, fit = dict(section.get("init", {})), _fit_settings(section, domain)
    key = {"method": name, "domain": domain, "layers": list(layers), "init": init, "fit": fit,
           "n_train": cfg.get("n_train"), "seed": seed}
    obj = cache.load(cls, name, domain, model, key)
    if obj is not None:
        return obj
    if train_X is None:
        raise InputError(f"{name} needs training data")
    X = _limit(train_X(), cfg.get("n_train"))
    log(f"[benchmark] fitting {cls.__name__} ({domain}) on {X.shape[0]} clips: {fit}")
    obj = cls(model, layers, **init)
    obj.fit(X, val=val_X() if val_X is not None else None, seed=seed, progress=progress, **fit)
    path = cache.path(name, domain)
    key["cache_file"] = str(path) if path else None
    cache.save(obj, name, domain, key)
    return obj


def _fit_lmac(model, domain, layers, cfg, train_X, val_X, cache, seed, progress, log) -> LMAC:
    return _fit_cached(LMAC, "lmac", model, domain, layers, cfg, train_X, val_X, cache, seed, progress, log)


def _fit_lmac_ft(model, domain, lmac: LMAC, cfg, pairs, val_X, cache, seed, progress, log) -> LMAC:
    ft = cfg.get("lmac_ft", {})
    fit = _fit_settings(ft, domain)
    base_key = (lmac.history or {}).get("benchmark", {})
    key = {"method": "lmac_ft", "domain": domain, "fit": fit, "pairs": ft.get("pairs"),
           "noise_dir": ft.get("noise_dir"), "snr_db": ft.get("snr_db"), "n_train": cfg.get("n_train"), "seed": seed,
           "base": {k: v for k, v in base_key.items() if k not in _INFO_KEYS}}
    obj = cache.load(LMAC, "lmac_ft", domain, model, key)
    if obj is not None:
        return obj
    if pairs is None:
        raise InputError("lmac_ft needs fine-tuning pairs (X_mix, X_clean)")
    X_mix, X_clean, what = pairs()
    X_mix, X_clean = _limit(X_mix, cfg.get("n_train")), _limit(X_clean, cfg.get("n_train"))
    log(f"[benchmark] fine-tuning L-MAC ({domain}) on {X_mix.shape[0]} pairs ({what}): {fit}")
    obj = lmac_on(model, lmac)
    obj.decoder = copy.deepcopy(lmac.decoder)
    obj.finetune((X_mix, X_clean), val=val_X() if val_X is not None else None, seed=seed, progress=progress, **fit)
    path = cache.path("lmac_ft", domain)
    key["cache_file"] = str(path) if path else None
    key["pairs_description"] = what
    cache.save(obj, "lmac_ft", domain, key)
    return obj


def _fit_l2i(model, domain, cfg, train_X, val_X, cache, seed, progress, log):
    layers = cfg.get("l2i", {}).get("layers") or default_layers(model, 2)
    return _fit_cached(L2I, "l2i", model, domain, layers, cfg, train_X, val_X, cache, seed, progress, log)


__all__ = ["MethodRow", "InterpreterCache", "build_methods", "default_layers", "lmac_on", "l2i_available", "LEARNED"]
