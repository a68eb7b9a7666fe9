r"""The method registry: what the harness, the command line and the reports know about methods.

Every method the benchmark can run — each Captum baseline, GradCAM++, L-MAC, L-MAC fine-tuned, L2I
(one row per relevance threshold), LMAC-ZS, and methods registered from user code — is one
:class:`MethodSpec`. A spec declares:

- its ``name`` and a one-line ``description``;
- its configuration ``section`` (a :class:`~captum_lmac.benchmark.schema.Section` dataclass, the
  suite's ``"<name>"`` entry) if it has settings beyond ``method_options``;
- whether it is fitted (``fit``) and how a fitted explainer is cached (``cache_key``, ``load``;
  :class:`InterpreterCache` stores it with the explainer's own ``save``);
- how its output becomes table rows (``rows``): one or more :class:`Row` objects, each with an
  ``attribute(X) -> mask`` in [0, 1] on the input grid and — for explanations that are not a
  plain spectrogram mask — ``masked(X, M) -> (X_in, X_out)``, the masked-in and masked-out inputs.

Adding a method is one file (the method) plus one :func:`register_method` call; the harness reads
nothing else. Examples::

    >>> register_method(MethodSpec(
    ...     name="my_method", description="my learned method", fit=fit_fn, load=load_fn,
    ...     rows=lambda ctx, obj: [Row(name="my_method", base="my_method", domain=ctx.domain,
    ...                                attribute=obj.attribute, kind="learned")]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from torch import Tensor, nn

from .._utils import to_jsonable
from ..errors import CheckpointError, InputError
from .schema import Section, suggest, to_dict

Explainer = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``explain(model, X, target) -> mask``: a method recomputed on another (randomised) classifier."""


KINDS = ("baseline", "learned", "reference")
"""Method kinds: a mask baseline, a learned (fitted) method, a reference row (a floor, never ranked)."""


@dataclass
class Row:
    """One row of the result tables.

    Attributes:
        name: Row name (e.g. ``"gradcam"``, ``"lmac"``, ``"l2i (RT=0.2)"``).
        base: The registry name it comes from (``"l2i"`` for every L2I row).
        domain: ``"stft"`` or ``"mel"``.
        attribute: ``X -> mask`` (N, 1, F, T) in [0, 1] explaining the model's decision on X.
        kind: ``"baseline"``, ``"learned"`` or ``"reference"`` (a floor such as the unmasked
            mixture: shown in the tables, never counted as the best of a column).
        mask_rule: How the method's output becomes the mask.
        info: Fit information (seconds, best epoch, validation scores, cache file) for reports.
        explainer: ``explain(model, X, target) -> mask`` on another classifier of the same
            architecture (the cascading-randomisation check); None if not applicable.
        method: The fitted explainer object behind the row (method-specific metrics read it).
        options: Row-specific options (e.g. ``{"threshold": 0.2}``).
        masked: ``(X, M) -> (X_in, X_out)`` when the explanation is not ``M ⊙ X`` / ``(1 − M) ⊙ X``.
        refit: For learned methods that can be fitted again on another classifier: ``refit(epochs)``
            → an :data:`Explainer` that fits the method on the model it is given (with the suite's
            fit settings; ``epochs`` None = the suite's) and explains with it — the like-with-like
            randomisation check (``sanity.refit``). On the original classifier it returns the
            row's own explanation (that fit has been done).
        clips: For methods that explain the clip itself rather than a mask on X (LMAC-TD): an
            object with ``masks(X, phase, length)`` (an STFT-domain view of the explanation, for
            the mask metrics and pictures), ``masked(X, M, phase, length) -> (X_in, X_out, P_in,
            P_out)`` and ``waveforms(X, phase, length)`` (the listenable explanation); the harness
            gives it each condition's phase and clip length. ``attribute`` and ``masked`` are then
            unused.
    """

    name: str
    base: str
    domain: str
    attribute: Callable[[Tensor], Tensor]
    kind: str = "baseline"
    mask_rule: str = ""
    info: Dict[str, Any] = field(default_factory=dict)
    explainer: Optional[Explainer] = None
    method: Any = None
    options: Dict[str, Any] = field(default_factory=dict)
    masked: Optional[Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]] = None
    refit: Optional[Callable[[Optional[int]], Explainer]] = None
    clips: Any = None


@dataclass
class MethodContext:
    """What a spec sees when it is built, fitted or loaded for one domain of one run.

    Attributes:
        name: The method name being built.
        model: The classifier in this domain's input (``model`` or ``model.in_feature_domain()``).
        domain: ``"stft"`` or ``"mel"``.
        config: The whole suite configuration (:class:`~captum_lmac.benchmark.config.SuiteConfig`).
        section: This method's configuration section (None without one).
        options: ``config.method_options[name]`` (keyword arguments of a baseline).
        data: Lazy access to training data in this domain (:class:`~captum_lmac.benchmark.harness.DomainData`).
        cache: Where fitted explainers are stored.
        fitted: Explainers fitted so far in this domain, by method name.
        obtain: ``obtain(name)`` → the fitted explainer of another learned method in this domain
            (fitted or loaded on first use; ``lmac_ft`` starts from ``lmac``'s decoder).
        seed, progress, log: Run settings.
    """

    name: str
    model: nn.Module
    domain: str
    config: Any
    section: Any = None
    options: Dict[str, Any] = field(default_factory=dict)
    data: Any = None
    cache: Optional["InterpreterCache"] = None
    fitted: Dict[str, Any] = field(default_factory=dict)
    obtain: Optional[Callable[[str], Any]] = None
    seed: int = 0
    progress: bool = True
    log: Callable[[str], None] = print


@dataclass
class MethodSpec:
    """The declaration of one benchmark method (see the module documentation).

    Attributes:
        name: Registry name (``--methods`` and config ``methods`` use it).
        rows: ``rows(ctx, fitted) -> list of Row`` (``fitted`` is None for a method without ``fit``).
        description: One line for listings and reports.
        kind: ``"baseline"``, ``"learned"`` or ``"reference"`` (see :class:`Row`).
        section: Configuration section dataclass (None: the method has no section).
        fit: ``fit(ctx) -> explainer`` for a learned method (None: nothing to fit).
        load: ``load(path, ctx) -> explainer`` reading what the explainer's ``save(path)`` wrote.
        cache_key: ``cache_key(ctx) -> dict``: the settings a cached explainer must have been
            fitted with to be reused (default: the section, the domain and the seed).
        feature_domain: Whether it can run in the classifier's feature ("mel") domain.
        section_name: The configuration key of its section (default: ``name``; variants of one
            method — e.g. LMAC-TD's α — share one section).
    """

    name: str
    rows: Callable[[MethodContext, Any], List[Row]]
    description: str = ""
    kind: str = "baseline"
    section: Optional[Type[Section]] = None
    fit: Optional[Callable[[MethodContext], Any]] = None
    load: Optional[Callable[[Path, MethodContext], Any]] = None
    cache_key: Optional[Callable[[MethodContext], Dict[str, Any]]] = None
    feature_domain: bool = True
    section_name: Optional[str] = None

    def __post_init__(self) -> None:
        if self.section_name is None:
            self.section_name = self.name
        if not isinstance(self.name, str) or not self.name:
            raise InputError("a method name must be a non-empty string")
        if not callable(self.rows):
            raise InputError(f"method {self.name!r}: rows must be callable (ctx, fitted) -> list of Row")
        if self.fit is not None and self.load is None:
            raise InputError(f"method {self.name!r}: a fitted method needs load(path, ctx) for the interpreter cache")
        if self.kind not in KINDS:
            raise InputError(f"method {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def key_for(self, ctx: MethodContext) -> Dict[str, Any]:
        """The settings a stored explainer of this method must have been fitted with for ``ctx``
        (``cache_key(ctx)``, else :func:`default_cache_key`)."""
        return self.cache_key(ctx) if self.cache_key is not None else default_cache_key(ctx)


METHODS: Dict[str, MethodSpec] = {}
"""Registered methods by name, in registration order."""

_FALLBACKS: List[Callable[[str], Optional[MethodSpec]]] = []


def _register(table: Dict[str, Any], spec: Any, cls: type, what: str, overwrite: bool) -> Any:
    if not isinstance(spec, cls):
        raise InputError(f"register_{what} takes a {cls.__name__}, got {type(spec).__name__}")
    if spec.name in table and not overwrite:
        raise InputError(f"{what} {spec.name!r} is already registered; pass overwrite=True to replace it")
    table[spec.name] = spec
    return spec


def register_method(spec: MethodSpec, overwrite: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (the harness, the command line and the reports then know it)."""
    return _register(METHODS, spec, MethodSpec, "method", overwrite)


def unregister_method(name: str) -> None:
    """Remove a registered method (tests and notebooks that register toy methods clean up with it)."""
    METHODS.pop(name, None)


def register_fallback(resolve: Callable[[str], Optional[MethodSpec]]) -> None:
    """Add a resolver for names that are not registered (e.g. any ``captum.attr`` class name)."""
    _FALLBACKS.append(resolve)


def get_method(name: str) -> MethodSpec:
    """The spec of ``name``: a registered method, else one a fallback resolver builds.

    Raises:
        InputError: for an unknown name, listing the registered ones.
    """
    if name in METHODS:
        return METHODS[name]
    for resolve in _FALLBACKS:
        spec = resolve(name)
        if spec is not None:
            return spec
    raise InputError(f"unknown method {name!r}{suggest(name, list(METHODS))}; registered methods: "
                     f"{', '.join(METHODS)} (or any captum.attr class name, or register_method() your own)")


def method_names(kind: Optional[str] = None) -> List[str]:
    """Registered method names (optionally only those of one kind: ``"baseline"``, ``"learned"``, ``"reference"``)."""
    return [n for n, s in METHODS.items() if kind is None or s.kind == kind]


def section_types() -> Dict[str, Type[Section]]:
    """Configuration section of every registered method that has one, by method name."""
    return {s.section_name: s.section for s in METHODS.values() if s.section is not None}


# --- suite-level analyses ----------------------------------------------------------------------------


@dataclass
class AnalysisSpec:
    """A suite-level check run after the per-clip metrics (e.g. cascading randomisation).

    ``run(ctx)`` gets an :class:`~captum_lmac.benchmark.harness.AnalysisContext` and returns a
    JSON-able dict stored under ``results["analyses"][name]`` (None: nothing to report);
    ``markdown(result)`` renders it for ``results.md`` and the HTML report.
    """

    name: str
    run: Callable[[Any], Optional[Dict[str, Any]]]
    description: str = ""
    markdown: Optional[Callable[[Dict[str, Any]], str]] = None


ANALYSES: Dict[str, AnalysisSpec] = {}
"""Registered analyses by name."""


def register_analysis(spec: AnalysisSpec, overwrite: bool = False) -> AnalysisSpec:
    """Add a suite-level analysis (a suite lists it in ``analyses``)."""
    return _register(ANALYSES, spec, AnalysisSpec, "analysis", overwrite)


# --- the interpreter cache ----------------------------------------------------------------------------

INFO_KEYS = ("cache_file", "pairs_description")
"""Entries stored with a fit that are not part of its cache key."""


def history_summary(hist: Dict[str, Any]) -> Dict[str, Any]:
    """Fit information: best epoch, time, the validation scores at the best epoch, ``mask_stats`` and
    ``warnings`` (a fit that did not learn; the reports flag its rows) where the method records them and,
    under ``"history"``, every per-epoch series of the fit (training loss terms and ``val_*`` scores;
    non-finite values as None)."""
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
            out[k] = round(float(v[i]), 4) if v[i] is not None else None
    if isinstance(hist.get("loss"), list):
        out["epochs_run"] = len(hist["loss"])
    if isinstance(hist.get("mask_stats"), dict):  # how much the fitted masks vary (L-MAC)
        out["mask_stats"] = {k: round(float(v), 4) if _finite_number(v) else v for k, v in hist["mask_stats"].items()}
    if isinstance(hist.get("warnings"), list):  # why the fit may not have learned (empty: it did); reports flag the row
        out["warnings"] = [str(w) for w in hist["warnings"]]
    curves = {k: [None if not _finite_number(x) else round(float(x), 6) for x in v]
              for k, v in hist.items() if isinstance(v, list) and v and all(_is_number(x) or x is None for x in v)}
    if curves:
        out["history"] = curves  # every per-epoch series: loss terms and validation scores (the reports plot them)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite_number(x: Any) -> bool:
    return _is_number(x) and math.isfinite(x)


class InterpreterCache:
    """Where fitted explainers are stored (``<dir>/<suite>_<method>[_<domain>].pt``) and whether a
    stored one may be reused: it must load for this classifier (its ``load`` raises
    :class:`~captum_lmac.errors.CheckpointError` otherwise) *and* have been fitted with the same
    settings (kept in the explainer's history under ``"benchmark"``)."""

    def __init__(self, directory: Optional[Path], suite: str, refit: bool = False, log: Callable[[str], None] = print,
                 base_seed: int = 0):
        self.directory = Path(directory) if directory is not None else None
        self.suite = suite
        self.refit = refit
        self.log = log
        self.base_seed = int(base_seed)

    def path(self, method: str, domain: str, seed: Optional[int] = None) -> Optional[Path]:
        """``<dir>/<suite>_<method>[_<domain>][_s<seed>].pt`` (the seed only when it is not the first one)."""
        if self.directory is None:
            return None
        suffix = "" if domain == "stft" else f"_{domain}"
        if seed is not None and int(seed) != self.base_seed:
            suffix += f"_s{int(seed)}"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in method)
        return self.directory / f"{self.suite}_{safe}{suffix}.pt"

    @staticmethod
    def _key(key: Dict[str, Any]) -> Any:
        return to_jsonable({k: v for k, v in key.items() if k not in INFO_KEYS})

    def get(self, spec: MethodSpec, ctx: MethodContext, key: Dict[str, Any]) -> Optional[Any]:
        """The cached explainer of ``spec`` fitted with ``key``, or None."""
        return self._get(spec.name, spec.load, ctx, key)

    def _get(self, name: str, load: Callable[[Path, MethodContext], Any], ctx: MethodContext,
             key: Dict[str, Any]) -> Optional[Any]:
        path = self.path(name, ctx.domain, ctx.seed)
        if path is None or self.refit or not path.is_file():
            return None
        try:
            obj = load(path, ctx)
        except CheckpointError as exc:
            self.log(f"[benchmark] cached {name} ({ctx.domain}) not reusable, refitting: {exc}")
            return None
        stored = self._key((getattr(obj, "history", None) or {}).get("benchmark") or {})
        if stored != self._key(key):
            self.log(f"[benchmark] cached {path.name} was fitted with other settings; refitting")
            return None
        self.log(f"[benchmark] reusing {path}")
        return obj

    def put(self, obj: Any, spec: MethodSpec, ctx: MethodContext, key: Dict[str, Any]) -> Optional[Path]:
        """Record ``key`` in the explainer's history and save it (when the cache has a folder)."""
        return self._put(obj, spec.name, ctx, key)

    def _put(self, obj: Any, name: str, ctx: MethodContext, key: Dict[str, Any]) -> Optional[Path]:
        path = self.path(name, ctx.domain, ctx.seed)
        key = dict(key, cache_file=str(path) if path else None)
        obj.history = dict(getattr(obj, "history", None) or {})
        obj.history["benchmark"] = to_jsonable(key)
        if path is None:
            return None
        return obj.save(path)

    def get_or_fit(self, spec: MethodSpec, ctx: MethodContext) -> Any:
        """The explainer of a learned spec: from the cache if reusable, else fitted and cached."""
        return self.fetch(spec.name, ctx, spec.key_for(ctx), spec.load, lambda: spec.fit(ctx))[0]

    def fetch(self, name: str, ctx: MethodContext, key: Dict[str, Any], load: Callable[[Path, MethodContext], Any],
              fit: Callable[[], Any]) -> Tuple[Any, bool]:
        """``(explainer, reused)``: the one stored under ``name`` for ``ctx`` if it loads and was fitted
        with ``key``, else ``fit()``, stored (e.g. the sanity check's refits on a randomised classifier)."""
        obj = self._get(name, load, ctx, key)
        if obj is not None:
            return obj, True
        obj = fit()
        extra = {k: v for k, v in ((getattr(obj, "history", None) or {}).get("benchmark") or {}).items()
                 if k in INFO_KEYS}
        self._put(obj, name, ctx, {**key, **extra})
        return obj, False


def default_cache_key(ctx: MethodContext) -> Dict[str, Any]:
    """The settings a cached explainer must share: method, domain, section, training-set size, seed."""
    return {"method": ctx.name, "domain": ctx.domain, "section": to_dict(ctx.section),
            "n_train": getattr(ctx.config, "n_train", None), "seed": ctx.seed}


__all__ = ["Row", "MethodContext", "MethodSpec", "METHODS", "register_method", "unregister_method",
           "AnalysisSpec", "ANALYSES", "register_analysis",
           "register_fallback", "get_method", "method_names", "section_types", "InterpreterCache",
           "history_summary", "default_cache_key", "INFO_KEYS", "Explainer"]
