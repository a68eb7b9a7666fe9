r"""The built-in benchmark methods, registered in :mod:`captum_lmac.benchmark.registry`.

- Every Captum baseline of :data:`captum_lmac.attr.BASELINES` (``saliency``, ``smoothgrad``,
  ``ig``, ``gradcam``, ``gradcam++``, ``guided_backprop``, ``guided_gradcam``, ``gradient_shap``,
  ``kernel_shap``, anything added with :func:`~captum_lmac.attr.register_baseline`) and any
  ``captum.attr`` class name, built with :func:`~captum_lmac.attr.make_baseline` (keyword arguments
  from ``method_options``; CAM layer = ``cam_layer`` or the classifier's last block), masks by the
  library's one rule.
- ``lmac``: :class:`~captum_lmac.LMAC` fitted on the training clips (the validation split picks
  the epoch); ``lmac_ft``: that decoder fine-tuned on (X_mix, X_clean) pairs with guidance.
- ``l2i``: :class:`~captum_lmac.L2I`, one row per relevance threshold RT.
- ``lmac_zs``: :class:`~captum_lmac.LMACZS` on a zero-shot classifier, fitted on captioned clips.

Each learned method's settings are its configuration section below (dataclass defaults are the
defaults of every suite).
"""

from __future__ import annotations

import copy
import inspect
import warnings
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import captum.attr
import torch
from captum.attr import Attribution
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, Dataset

from .._io import model_fingerprint
from .._utils import to_jsonable
from ..nn.hooks import Hook
from ..attr.baselines import BASELINES, make_baseline
from ..attr.l2i import L2I
from ..attr.lmac import LMAC
from ..attr.lmac_td import LMACTD
from ..attr.lmac_zs import LMACZS
from ..data.captions import build_training_set, esc10_captions
from ..data.streaming import LabelCaptions, StreamingSpectrograms, is_stream
from ..data.tensors import SpectrogramSet
from ..errors import InputError
from .conditions import check_augment
from .registry import (
    INFO_KEYS,
    MethodContext,
    MethodSpec,
    Row,
    default_cache_key,
    get_method,
    history_summary,
    register_fallback,
    register_method,
)
from .schema import Section


# --- shared helpers ----------------------------------------------------------------------------------


def default_layers(model: nn.Module, n: int = 4) -> List[str]:
    """Dotted names of the last ``n`` blocks of ``model.net.blocks`` (the decoder's input layers)."""
    blocks = getattr(getattr(model, "net", None), "blocks", None)
    if not blocks:
        return "auto"  # no net.blocks: the documented auto rule (captum_lmac.nn.auto_layers) picks them
    names = {id(m): name for name, m in model.named_modules()}
    return [names[id(b)] for b in list(blocks)[-n:]]


def cam_layer(model: nn.Module, name: Optional[str]) -> Optional[nn.Module]:
    """The module ``name`` of ``model`` (None: the baseline's default, the last block)."""
    if name is None:
        return None
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise InputError(f"cam_layer {name!r} is not a module of the classifier") from None


def _check_kwargs(fn: Any, given: Dict[str, Any], where: str) -> None:
    """An unknown keyword for ``fn`` is an error naming the allowed ones."""
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if p not in ("self", "forward_func", "layers", "batches", "val", "seed", "progress",
                                              "audio_model", "text_encoder", "pairs")]
    for k in given:
        if k not in params or k not in allowed:
            raise InputError(f"unknown key {where}.{k}; allowed: {', '.join(allowed)}")


def fit_settings(section: Any, domain: str) -> Dict[str, Any]:
    """``section.fit``, updated with ``section.fit_mel`` in the feature domain."""
    fit = dict(section.fit or {})
    if domain != "stft":
        fit.update(section.fit_mel or {})
    return fit


def _limit(X: Tensor, n: Optional[int]) -> Tensor:
    return X if n is None or n >= X.shape[0] else X[:n]


def _learned_info(obj: Any) -> Dict[str, Any]:
    info = history_summary(obj.history or {})
    info["cache"] = (obj.history or {}).get("benchmark", {}).get("cache_file")
    return info


# --- Captum baselines --------------------------------------------------------------------------------


def _baseline_rows(ctx: MethodContext, _fitted: Any) -> List[Row]:
    name = ctx.name
    opts = dict(ctx.options)
    opts.setdefault("batch_size", ctx.config.batch_size)
    opts.setdefault("seed", ctx.seed)
    if "grid" in opts:
        opts["grid"] = tuple(opts["grid"])
    layer_name = ctx.config.cam_layer
    method = make_baseline(name, ctx.model, layer=cam_layer(ctx.model, layer_name), **opts)

    def explainer(m: nn.Module, X: Tensor, target: Tensor) -> Tensor:
        return make_baseline(name, m, layer=cam_layer(m, layer_name), **opts).attribute(X, target)

    return [Row(name=name, base=name, domain=ctx.domain, attribute=lambda X: method.attribute(X), kind="baseline",
                mask_rule=getattr(method, "mask_rule", ""), info={"options": to_jsonable(ctx.options)},
                explainer=explainer)]


def baseline_spec(name: str, description: str = "") -> MethodSpec:
    """The spec of a mask baseline built by :func:`~captum_lmac.attr.make_baseline` under ``name``."""
    return MethodSpec(name=name, rows=_baseline_rows, description=description, kind="baseline")


def _resolve_baseline(name: str) -> Optional[MethodSpec]:
    """Baselines registered after import and ``captum.attr`` class names."""
    if name in BASELINES:
        return baseline_spec(name, "a registered baseline")
    cls = getattr(captum.attr, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, Attribution):
        return baseline_spec(name, f"captum.attr.{name} with the library's mask rule")
    return None


for _name, _factory in BASELINES.items():
    register_method(baseline_spec(_name, (inspect.getdoc(_factory) or "").split("\n")[0]))
register_fallback(_resolve_baseline)


# --- L-MAC -------------------------------------------------------------------------------------------


@dataclass
class LMACSection(Section):
    """``lmac``: hooked layers (null: the last 4 blocks), :class:`~captum_lmac.LMAC` constructor
    (``init``) and :meth:`~captum_lmac.LMAC.fit` (``fit``; ``fit_mel`` overrides in the feature domain);
    ``augment`` (off when empty or ``fraction`` 0; keys :data:`~captum_lmac.benchmark.conditions.AUGMENT_KEYS`) — that share
    of the training clips replaced (``add``: joined) by seeded white-noise / other-training-clip mixtures
    (:func:`~captum_lmac.benchmark.conditions.augmented_training_set`), for the fit and its refits."""

    layers: Union[None, str, List[Any]] = None
    init: Dict[str, Any] = field(default_factory=lambda: {"hidden": 32, "use_input": False, "mask_domain": "linear"})
    fit: Dict[str, Any] = field(default_factory=lambda: {"epochs": 12, "lr": 2e-3, "batch_size": 16, "lambda_s": 2.0,
                                                         "out_loss": "bounded"})
    fit_mel: Dict[str, Any] = field(default_factory=dict)
    augment: Dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        check_augment(self.augment, f"{where}.augment")
        _check_kwargs(LMAC.__init__, self.init, f"{where}.init")
        _check_kwargs(LMAC.fit, self.fit, f"{where}.fit")
        _check_kwargs(LMAC.fit, self.fit_mel, f"{where}.fit_mel")


def lmac_on(model: nn.Module, fitted: LMAC) -> LMAC:
    """An L-MAC that uses ``fitted``'s decoder (unchanged) on another classifier of the same architecture."""
    return fitted.on(model)


def layer_specs(layers: Union[str, List[Any]]) -> Union[str, List[Any]]:
    """Configured layers as hook specs: names stay names, dicts are :class:`~captum_lmac.nn.hooks.Hook`
    configs; ``"auto"`` is passed on (the method picks its layers on the first training batch)."""
    if isinstance(layers, str):
        return layers
    return [Hook.from_config(h) if isinstance(h, dict) else h for h in layers]


def _augment_of(section: Any) -> Optional[Dict[str, Any]]:
    """The section's training-clip augmentation, or None when it has none (or fraction 0)."""
    augment = getattr(section, "augment", None) or {}
    return dict(augment) if float(augment.get("fraction", 0.0)) > 0 else None


def _lmac_layers(ctx: MethodContext) -> List[Any]:
    return layer_specs(ctx.section.layers or default_layers(ctx.model))


def layered_key(ctx: MethodContext, layers: List[str]) -> Dict[str, Any]:
    """Cache key of a method with hooked ``layers`` and ``init`` / ``fit`` settings in its section."""
    s = ctx.section
    key = {"method": ctx.name, "domain": ctx.domain, "layers": layers if isinstance(layers, str) else [h.config() if isinstance(h, Hook) else h for h in layers],
           "init": dict(s.init),
           "fit": fit_settings(s, ctx.domain), "n_train": ctx.config.n_train, "seed": ctx.seed}
    augment = _augment_of(s)
    if augment is not None:  # absent when off, so fits without augmentation keep their cache entries
        key["augment"] = augment
    return with_stream_key(key, ctx)


def with_stream_key(key: Dict[str, Any], ctx: MethodContext) -> Dict[str, Any]:
    """``key`` plus the streaming crop settings when they change the training clips (a stream with the
    reader's own clips gives the very fit of the in-memory clips, so it shares their cache entry)."""
    data_key = ctx.config.streaming.data_key()
    if data_key is not None and ctx.data.streaming():
        key = dict(key, streaming=data_key)
    return key


def fit_on_training_split(cls: type, ctx: MethodContext, layers: List[str]) -> Any:
    """``cls(model, layers, **section.init).fit(training clips, val=validation clips, **section.fit)``."""
    fit = fit_settings(ctx.section, ctx.domain)
    augment = _augment_of(ctx.section)
    train = ctx.data.fit_data("train", ctx.config.n_train, augment=augment)
    how = " (streamed)" if is_stream(train) else (f" (augmented: {augment})" if augment else "")
    ctx.log(f"[benchmark] fitting {cls.__name__} ({ctx.domain}) on {len(train)} clips{how}: {fit}")
    obj = cls(ctx.model, layers, **ctx.section.init)
    obj.fit(train, val=ctx.data.fit_data("val"), seed=ctx.seed, progress=ctx.progress, **fit)
    return obj


def _lmac_key(ctx: MethodContext) -> Dict[str, Any]:
    return layered_key(ctx, _lmac_layers(ctx))


def _lmac_fit(ctx: MethodContext) -> LMAC:
    return fit_on_training_split(LMAC, ctx, _lmac_layers(ctx))


def _lmac_explainer(obj: LMAC):
    def explainer(m: nn.Module, X: Tensor, target: Tensor) -> Tensor:
        return lmac_on(m, obj).attribute(X)  # explains the (randomised) classifier's own decision
    return explainer


def refitter(ctx: MethodContext, obj: Any, fit_on: Callable[[MethodContext, Optional[int]], Any]):
    """``refit(epochs)`` → an explainer that fits the method again (``fit_on(context, epochs)``: its
    settings, the suite's fit settings and training / validation clips) on the classifier it is
    given; each refit's time and warnings are appended to ``refit.fits`` (a randomised classifier
    usually gives a near-empty mask, which the fit rightly reports as not learned).

    Refits are cached like the fits (``<suite>_<method>_refit_<weights tag>.pt``, the tag from the
    randomised classifier's weights, the method's cache key plus the refit epochs): the stored
    interpreter is reused only if it loads for exactly these randomised weights (its classifier
    fingerprint) and was fitted with the same settings."""
    fits: List[Dict[str, Any]] = []
    spec = get_method(ctx.name)

    def refit(epochs: Optional[int] = None):
        def explainer(m: nn.Module, X: Tensor, target: Tensor) -> Tensor:
            if m is ctx.model:
                return obj.attribute(X)
            c = replace(ctx, model=m, progress=False)

            def fit() -> Any:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # recorded in the history and in refit.fits
                    return fit_on(c, epochs)

            if ctx.cache is None:
                other, reused = fit(), False
            else:
                key = dict(spec.key_for(ctx), refit_epochs=epochs)
                tag = f"{zlib.crc32(repr(model_fingerprint(m)['checksum']).encode()):08x}"
                other, reused = ctx.cache.fetch(f"{ctx.name}_refit_{tag}", c, key, spec.load, fit)
            hist = other.history or {}
            fits.append({"epochs": len(hist["loss"]), "seconds": round(float(hist["seconds"]), 1),
                         "mask_stats": hist.get("mask_stats"), "warnings": hist.get("warnings", []),
                         "reused": reused})
            return other.attribute(X)
        return explainer

    refit.fits = fits
    return refit


def _lmac_refit(ctx: MethodContext, obj: LMAC):
    def fit_on(c: MethodContext, epochs: Optional[int]) -> LMAC:
        fit = fit_settings(c.section, c.domain)
        if epochs is not None:
            fit["epochs"] = int(epochs)
        other = obj.unfitted_copy(c.model)
        other.fit(c.data.fit_data("train", c.config.n_train, augment=_augment_of(c.section)),
                  val=c.data.fit_data("val"), seed=c.seed, progress=False, **fit)
        return other
    return refitter(ctx, obj, fit_on)


def _lmac_rows(ctx: MethodContext, obj: LMAC) -> List[Row]:
    return [Row(name=ctx.name, base=ctx.name, domain=ctx.domain, attribute=lambda X: obj.attribute(X), kind="learned",
                mask_rule="decoder output (sigmoid) on the input grid, used as is", info=_learned_info(obj),
                explainer=_lmac_explainer(obj), method=obj,
                refit=_lmac_refit(ctx, obj) if ctx.name == "lmac" else None)]


register_method(MethodSpec(
    name="lmac", description="L-MAC (Paissan et al., ICML 2024): a decoder on the classifier's layers outputs the mask",
    kind="learned", section=LMACSection, fit=_lmac_fit, load=lambda path, ctx: LMAC.load(path, ctx.model),
    cache_key=_lmac_key, rows=_lmac_rows))


# --- L-MAC fine-tuned ----------------------------------------------------------------------------------


@dataclass
class LMACFineTuneSection(Section):
    """``lmac_ft``: fine-tuning pairs (``auto`` | ``synthetic`` | ``wham``), the WHAM!-style noise
    folder and SNR, and :meth:`~captum_lmac.LMAC.finetune` settings."""

    pairs: str = "auto"
    noise_dir: Optional[str] = "ambient"
    snr_db: float = 0.0
    fit: Dict[str, Any] = field(default_factory=lambda: {"epochs": 5, "lr": 1e-3, "batch_size": 16, "lambda_g": 4.0,
                                                         "cct": 0.7, "guidance": "l1"})
    fit_mel: Dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.pairs not in ("auto", "synthetic", "wham"):
            raise InputError(f"{where}.pairs must be 'auto', 'synthetic' or 'wham', got {self.pairs!r}")
        _check_kwargs(LMAC.fit, self.fit, f"{where}.fit")
        _check_kwargs(LMAC.fit, self.fit_mel, f"{where}.fit_mel")


def _lmac_ft_key(ctx: MethodContext) -> Dict[str, Any]:
    s = ctx.section
    base = ctx.obtain("lmac")
    base_key = {k: v for k, v in ((base.history or {}).get("benchmark") or {}).items() if k not in INFO_KEYS}
    return with_stream_key({"method": "lmac_ft", "domain": ctx.domain, "fit": fit_settings(s, ctx.domain),
                            "pairs": s.pairs, "noise_dir": s.noise_dir, "snr_db": s.snr_db,
                            "n_train": ctx.config.n_train, "seed": ctx.seed, "base": base_key}, ctx)


def _lmac_ft_fit(ctx: MethodContext) -> LMAC:
    fit = fit_settings(ctx.section, ctx.domain)
    base = ctx.obtain("lmac")
    pairs, what = ctx.data.pair_data(ctx.config.n_train)
    n = len(pairs) if is_stream(pairs) or isinstance(pairs, SpectrogramSet) else pairs[0].shape[0]
    ctx.log(f"[benchmark] fine-tuning L-MAC ({ctx.domain}) on {n} pairs ({what}): {fit}")
    obj = lmac_on(ctx.model, base)
    obj.decoder = copy.deepcopy(base.decoder)
    obj.finetune(pairs, val=ctx.data.fit_data("val"), seed=ctx.seed, progress=ctx.progress, **fit)
    obj.history.setdefault("benchmark", {})["pairs_description"] = what
    return obj


register_method(MethodSpec(
    name="lmac_ft", description="L-MAC fine-tuned for listening quality on (mixture, clean) pairs with guidance",
    kind="learned", section=LMACFineTuneSection, fit=_lmac_ft_fit,
    load=lambda path, ctx: LMAC.load(path, ctx.model), cache_key=_lmac_ft_key, rows=_lmac_rows))


# --- L2I ---------------------------------------------------------------------------------------------


@dataclass
class L2ISection(Section):
    """``l2i``: hooked layers (null: the last 2 blocks), :class:`~captum_lmac.L2I` constructor and
    fit settings, and the relevance thresholds RT (one table row each)."""

    layers: Union[None, str, List[Any]] = None
    init: Dict[str, Any] = field(default_factory=lambda: {"n_components": 100, "hidden": 64})
    fit: Dict[str, Any] = field(default_factory=lambda: {"epochs": 15, "lr": 1e-3, "batch_size": 16})
    fit_mel: Dict[str, Any] = field(default_factory=dict)
    thresholds: List[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])

    def validate(self, where: str) -> None:
        _check_kwargs(L2I.__init__, self.init, f"{where}.init")
        _check_kwargs(L2I.fit, self.fit, f"{where}.fit")
        _check_kwargs(L2I.fit, self.fit_mel, f"{where}.fit_mel")
        if not self.thresholds:
            raise InputError(f"{where}.thresholds must name at least one relevance threshold")


def _l2i_layers(ctx: MethodContext) -> List[Any]:
    return layer_specs(ctx.section.layers or default_layers(ctx.model, 2))


def _l2i_key(ctx: MethodContext) -> Dict[str, Any]:
    return layered_key(ctx, _l2i_layers(ctx))


def _l2i_fit(ctx: MethodContext) -> L2I:
    return fit_on_training_split(L2I, ctx, _l2i_layers(ctx))


def _l2i_rows(ctx: MethodContext, obj: L2I) -> List[Row]:
    info = _learned_info(obj)
    return [Row(name=f"l2i (RT={rt:g})", base="l2i", domain=ctx.domain,
                attribute=lambda X, r=float(rt): obj.attribute(X, threshold=r), kind="learned",
                mask_rule="share of the selected NMF components in W·H (soft mask), used as is", info=info,
                method=obj, options={"threshold": float(rt)})
            for rt in ctx.section.thresholds]


register_method(MethodSpec(
    name="l2i", description="L2I (Parekh et al., NeurIPS 2022): NMF components selected by an interpreter of the classifier",
    kind="learned", section=L2ISection, fit=_l2i_fit, load=lambda path, ctx: L2I.load(path, ctx.model),
    cache_key=_l2i_key, rows=_l2i_rows))


# --- LMAC-TD -----------------------------------------------------------------------------------------


@dataclass
class LMACTDSection(Section):
    """``lmac_td``: hooked classifier layers feeding ψ (null: the classifier's decoder layers, else
    its last 4 blocks, else ``"auto"``), :class:`~captum_lmac.LMACTD` constructor (``init``; α is set
    by the method name: ``lmac_td`` 0.75, ``lmac_td_a1`` 1, ``lmac_td_a0`` 0) and fit settings."""

    layers: Union[None, str, List[Any]] = None
    init: Dict[str, Any] = field(default_factory=lambda: {"channels": 256, "masker": "tcn"})
    fit: Dict[str, Any] = field(default_factory=lambda: {"epochs": 10, "batch_size": 8, "lr": 1e-3,
                                                         "autoencoder_steps": 100})

    def validate(self, where: str) -> None:
        _check_kwargs(LMACTD.__init__, self.init, f"{where}.init")
        _check_kwargs(LMACTD.fit, self.fit, f"{where}.fit")
        if "alpha" in self.init:
            raise InputError(f"{where}.init.alpha: α is set by the method name (lmac_td, lmac_td_a1, lmac_td_a0)")


class TimeDomainClips:
    """The clips protocol of a :class:`~captum_lmac.benchmark.registry.Row` for LMAC-TD.

    The harness's X is the STFT magnitude of each clip; the clip itself is ``ISTFT(X e^{jP})``
    with its own phase P. LMAC-TD explains that waveform; its explanation ``x_in`` and masked-out
    part ``x_out`` go back to the harness as their STFT magnitudes and phases (the masked-in and
    masked-out inputs), ``clamp(|STFT(x_in)| / |X|, 0, 1)`` is the STFT-domain view of the mask (for
    MM, Sparseness, Complexity, precision / recall and pictures) and ``x_in`` is the listenable
    explanation (SI-SDR against the true source)."""

    def __init__(self, td: LMACTD, stft: Any) -> None:
        self.td, self.stft = td, stft
        self._last: Optional[Tuple[Any, Dict[str, Tensor]]] = None

    def on(self, model: nn.Module) -> "TimeDomainClips":
        return TimeDomainClips(self.td.on(model), self.stft)

    def _explain(self, X: Tensor, phase: Tensor, length: int) -> Dict[str, Tensor]:
        key = (X.data_ptr(), tuple(X.shape), phase.data_ptr(), int(length))
        if self._last is None or self._last[0] != key:
            x = self.stft.synthesize(X, phase, length)
            self._last = (key, self.td.explain(x))
        return self._last[1]

    def masks(self, X: Tensor, phase: Tensor, length: int) -> Tensor:
        X_in = self.stft.magnitude(self._explain(X, phase, length)["x_in"])
        return (X_in / X.clamp_min(1e-8)).clamp(0.0, 1.0)

    def masked(self, X: Tensor, M: Tensor, phase: Tensor, length: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        e = self._explain(X, phase, length)
        X_in, P_in = self.stft.analyze(e["x_in"], allow_silent=True)
        X_out, P_out = self.stft.analyze(e["x_out"], allow_silent=True)
        return X_in, X_out, P_in, P_out

    def waveforms(self, X: Tensor, phase: Tensor, length: int) -> Tensor:
        return self._explain(X, phase, length)["x_in"]


def _td_layers(ctx: MethodContext) -> Union[str, List[Any]]:
    if ctx.section.layers is not None:
        return layer_specs(ctx.section.layers)
    return layer_specs(default_layers(ctx.model))


def _td_spec(name: str, alpha: float) -> MethodSpec:
    def key(ctx: MethodContext) -> Dict[str, Any]:
        return {**layered_key(ctx, [] if alpha == 0 else _td_layers(ctx)), "alpha": alpha}

    def fit(ctx: MethodContext) -> LMACTD:
        s = ctx.section
        train, val = ctx.data.split("train"), ctx.data.data.get("val")
        n = ctx.config.n_train
        x = train.waveform if n is None or n >= len(train) else train.waveform[:n]
        ctx.log(f"[benchmark] fitting LMAC-TD (α={alpha:g}) on {x.shape[0]} clips: {s.fit}")
        obj = LMACTD(ctx.model, [] if alpha == 0 else _td_layers(ctx), alpha=alpha, stft=ctx.data.stft, **s.init)
        obj.fit(x, val=val.waveform if val is not None else None, seed=ctx.seed, progress=ctx.progress, **s.fit)
        return obj

    def rows(ctx: MethodContext, obj: LMACTD) -> List[Row]:
        clips = TimeDomainClips(obj, ctx.data.stft)
        return [Row(name=name, base=name, domain=ctx.domain, attribute=lambda X: X, kind="learned",
                    mask_rule="STFT-domain view |STFT(x_in)| / |X| (clamped to [0, 1]) of the explanation "
                              "x_in = Dec(Enc(x) ⊙ M); masked-in / masked-out inputs are x_in / x_out",
                    info=_learned_info(obj), method=obj, clips=clips)]

    return MethodSpec(
        name=name, description=f"LMAC-TD (Mancini et al., ICASSP 2025), α = {alpha:g}: a mask on a learned "
                               "time-domain representation", kind="learned", section=LMACTDSection, fit=fit,
        load=lambda path, ctx: LMACTD.load(path, ctx.model, stft=ctx.data.stft), cache_key=key, rows=rows,
        feature_domain=False, section_name="lmac_td")


for _name, _alpha in (("lmac_td", 0.75), ("lmac_td_a1", 1.0), ("lmac_td_a0", 0.0)):
    register_method(_td_spec(_name, _alpha))


# --- LMAC-ZS -----------------------------------------------------------------------------------------


@dataclass
class LMACZSSection(Section):
    """``lmac_zs``: hooked audio-encoder layers, :class:`~captum_lmac.LMACZS` constructor and fit
    settings, and its captioned training data: the suite's training split, each clip captioned with
    varied descriptions of its class (:func:`~captum_lmac.data.captions.esc10_captions`), plus
    ``fsdd_per_digit`` FSDD clips per digit and ``ambient_segments_per_file`` ambient segments of
    the data root for caption variety; ``val_clips`` evenly spaced clips of the validation split
    (first caption) pick the epoch. ``augment`` (as ``lmac.augment``; off by default): that share
    of the suite's training clips replaced (``add``: joined) by seeded white-noise /
    other-training-clip mixtures, each captioned with its clean clip's class (the louder source at
    the drawn SNR).

    The fit defaults add to the paper's loss the decision term (``lambda_cls`` 1, rivals = the other
    captions of the batch), the bounded masked-out term (``lambda_out`` 0.2), an L1 weight per mask
    (``l1_reduction="per_mask"``, λ_1 0.05) and the empty-input similarity floor
    (``sim_floor="empty"``): on esc10-zeroshot (seed 0) in-domain AI 51.2 / AD 3.1 / AG 14.2,
    Pearson(mask mean, similarity) 0.54 and unrelated-prompt mask means ≤ 0.05, against
    10.0 / 55.3 / 4.3, −0.34 and up to 0.24 with the paper's loss alone
    (``lambda_cls=0, lambda_out=0, l1_reduction="mean", lambda_l1=0.25, sim_floor="none"``)."""

    layers: List[str] = field(default_factory=lambda: ["net.block2", "net.block3", "net.block4"])
    init: Dict[str, Any] = field(default_factory=lambda: {"hidden": 32, "use_input": True})
    fit: Dict[str, Any] = field(default_factory=lambda: {
        "epochs": 12, "batch_size": 8, "lr": 3e-3, "weight_decay": 2e-6, "lambda_sim": 1.0, "lambda_l1": 0.05,
        "lambda_div": 1.0, "texts_per_audio": None, "lambda_cls": 1.0, "lambda_out": 0.2, "rival_texts": "auto",
        "l1_reduction": "per_mask", "sim_floor": "empty"})
    fsdd_per_digit: int = 3
    ambient_segments_per_file: int = 1
    val_clips: int = 40
    max_train_clips: Optional[int] = None
    augment: Dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        check_augment(self.augment, f"{where}.augment")
        _check_kwargs(LMACZS.__init__, self.init, f"{where}.init")
        _check_kwargs(LMACZS.fit, self.fit, f"{where}.fit")


@torch.no_grad()
def magnitudes(stft: Any, waveform: Tensor, batch_size: int = 64) -> Tensor:
    """STFT magnitudes (N, 1, F, T) of waveforms, batched."""
    return torch.cat([stft.analyze(waveform[s : s + batch_size], allow_silent=True)[0]
                      for s in range(0, waveform.shape[0], batch_size)])


class CaptionedClips(Dataset):
    """In-memory captioned clips (:class:`~captum_lmac.data.captions.CaptionedAudio`) as a reader:
    items ``(waveform, -1, {"captions": [...]})``."""

    def __init__(self, clips: Any, sample_rate: int) -> None:
        self.clips, self.sample_rate = clips, int(sample_rate)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        return self.clips.waveform[i], -1, {"captions": list(self.clips.captions[i])}


def _lmac_zs_stream(ctx: MethodContext, train: Any) -> Any:
    """The LMAC-ZS training clips as one captioned stream: the suite's training clips (captioned by
    class) followed by the extra FSDD / ambient clips (small, in memory)."""
    s = ctx.section
    stft = ctx.data.stft
    n = len(train) if ctx.config.n_train is None else min(len(train), int(ctx.config.n_train))
    parts, index = [train.reader], [train.index[:n]]
    if s.fsdd_per_digit > 0 or s.ambient_segments_per_file > 0:
        clip = (train.clips.n_samples or int(train.first_batch(1).length)) / stft.sample_rate
        extra = build_training_set(ctx.data.data_root, s.fsdd_per_digit, s.ambient_segments_per_file, ctx.seed,
                                   ctx.progress, sample_rate=stft.sample_rate, duration=clip, esc10=False)
        if len(extra):
            parts.append(CaptionedClips(extra, stft.sample_rate))
            index.append(range(len(extra)))
    offsets = [0]
    for p in parts[:-1]:
        offsets.append(offsets[-1] + len(p))
    flat = [o + int(i) for o, idx in zip(offsets, index) for i in idx]
    if s.max_train_clips and int(s.max_train_clips) < len(flat):  # quick runs: evenly spaced subset
        keep = torch.linspace(0, len(flat) - 1, int(s.max_train_clips)).long()
        flat = [flat[int(i)] for i in keep]
    st = ctx.config.streaming
    return StreamingSpectrograms(ConcatDataset(parts), stft, clip_seconds=st.clip_seconds, crop=st.crop,
                                 seed=ctx.seed, num_workers=st.workers, index=flat, keep_clean=False,
                                 captions=LabelCaptions(train.classes, esc10_captions))


def _lmac_zs_fit(ctx: MethodContext) -> LMACZS:
    s = ctx.section
    stft = ctx.data.stft
    train = ctx.data.train_split()
    if is_stream(train):
        if _augment_of(s) is not None:
            ctx.data.require_in_memory("lmac_zs.augment")
        stream = _lmac_zs_stream(ctx, train)
        val = ctx.data.val_set()
        k = min(int(s.val_clips), len(val))
        idx = torch.linspace(0, len(val) - 1, k).long()
        val_caps = [esc10_captions(val.classes[int(val.y[i])]) for i in idx]
        ctx.log(f"[benchmark] fitting LMAC-ZS ({ctx.domain}) on {len(stream)} captioned clips (streamed) ({s.fit})")
        obj = LMACZS(ctx.model, layers=list(s.layers), **s.init)
        obj.fit(ctx.data.to_domain(stream), val=(ctx.data.to_domain(val.X[idx]), val_caps), seed=ctx.seed,
                progress=ctx.progress, **s.fit)
        return obj
    augment = _augment_of(s)
    if augment is not None:
        aug = ctx.data.augmented_set(ctx.config.n_train, augment)
        X, labels = ctx.data.to_domain(aug.X), aug.y
        ctx.log(f"[benchmark] LMAC-ZS training clips augmented: {augment}")
    else:
        X, labels = _limit(ctx.data.train_X(), ctx.config.n_train), train.y
    captions = [esc10_captions(train.classes[int(c)]) for c in labels[: X.shape[0]]]
    if s.fsdd_per_digit > 0 or s.ambient_segments_per_file > 0:
        extra = build_training_set(ctx.data.data_root, s.fsdd_per_digit, s.ambient_segments_per_file, ctx.seed,
                                   ctx.progress, sample_rate=stft.sample_rate,
                                   duration=train.waveform.shape[-1] / stft.sample_rate, esc10=False)
        if len(extra):
            X = torch.cat([X, ctx.data.to_domain(magnitudes(stft, extra.waveform))])
            captions += extra.captions
    if s.max_train_clips and int(s.max_train_clips) < X.shape[0]:  # quick runs: evenly spaced subset
        keep = torch.linspace(0, X.shape[0] - 1, int(s.max_train_clips)).long()
        X, captions = X[keep], [captions[int(i)] for i in keep]
    val = ctx.data.val_set()
    k = min(int(s.val_clips), len(val))
    idx = torch.linspace(0, len(val) - 1, k).long()  # spread over the classes
    val_caps = [esc10_captions(val.classes[int(val.y[i])]) for i in idx]
    ctx.log(f"[benchmark] fitting LMAC-ZS ({ctx.domain}) on {X.shape[0]} captioned clips ({s.fit})")
    obj = LMACZS(ctx.model, layers=list(s.layers), **s.init)
    obj.fit((X, captions), val=(ctx.data.val_X()[idx], val_caps), seed=ctx.seed, progress=ctx.progress, **s.fit)
    return obj


def _lmac_zs_key(ctx: MethodContext) -> Dict[str, Any]:
    """The default key; ``augment`` only when on, so fits without it keep their cache entries."""
    key = default_cache_key(ctx)
    if _augment_of(ctx.section) is None:
        key["section"].pop("augment", None)
    return key


def _lmac_zs_refit_on(c: MethodContext, epochs: Optional[int]) -> LMACZS:
    if epochs is not None:
        c = replace(c, section=replace(c.section, fit={**c.section.fit, "epochs": int(epochs)}))
    return _lmac_zs_fit(c)


def _lmac_zs_rows(ctx: MethodContext, obj: LMACZS) -> List[Row]:
    def explainer(m: nn.Module, X: Tensor, target: Tensor) -> Tensor:
        return obj.on(m).attribute(X)  # the (randomised) zero-shot classifier's own decision

    return [Row(name=ctx.name, base=ctx.name, domain=ctx.domain, attribute=lambda X: obj.attribute(X), kind="learned",
                mask_rule="text-conditioned decoder output (sigmoid) for the decided prompt, used as is",
                info=_learned_info(obj), method=obj, explainer=explainer,
                refit=refitter(ctx, obj, _lmac_zs_refit_on))]


register_method(MethodSpec(
    name="lmac_zs", description="LMAC-ZS (Paissan et al., NeurIPS 2024): a text-conditioned decoder explains a zero-shot classifier",
    kind="learned", section=LMACZSSection, fit=_lmac_zs_fit, load=lambda path, ctx: LMACZS.load(path, ctx.model),
    cache_key=lambda ctx: with_stream_key(_lmac_zs_key(ctx), ctx), rows=_lmac_zs_rows))


# --- the floor of the ground-truth tables ------------------------------------------------------------


def _mixture_rows(ctx: MethodContext, _fitted: Any) -> List[Row]:
    return [Row(name=ctx.name, base=ctx.name, domain=ctx.domain, kind="reference",
                attribute=lambda X: torch.ones_like(X), mask_rule="all ones: the unmasked input (the mixture itself)")]


register_method(MethodSpec(
    name="mixture", rows=_mixture_rows, kind="reference",
    description="the unmasked input (an all-ones mask): the floor of the ground-truth metrics (SI-SDR of the mixture)"))


__all__ = ["default_layers", "cam_layer", "fit_settings", "lmac_on", "baseline_spec", "magnitudes", "LMACSection",
           "LMACFineTuneSection", "L2ISection", "LMACTDSection", "LMACZSSection", "TimeDomainClips"]
