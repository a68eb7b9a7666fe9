r"""The comparative benchmark harness: methods × domains × conditions → per-clip metrics → reports.

:func:`run_benchmark` takes a classifier (X → scores, e.g. a
:class:`~captum_lmac.SpectrogramClassifier` or a zero-shot
:class:`~captum_lmac.ZeroShotClassifier`), its :class:`~captum_lmac.STFT`, ``{"train", "val",
"test"}`` :class:`~captum_lmac.data.SpectrogramSet` splits and a configuration
(:class:`~captum_lmac.benchmark.config.SuiteConfig` or a dict). It builds every method from the
registry (:mod:`captum_lmac.benchmark.registry`; learned ones fitted or loaded from the interpreter
cache), runs it on every condition of the test split, scores it with every registered metric
scorer that applies (:mod:`captum_lmac.metrics`), runs the suite's analyses (cascading
randomisation, ...) and writes ``results.json``, ``results.csv``, ``results.md`` and ``report.html``.

What is measured, per clip, then aggregated as mean (and median) with a 95 % bootstrap interval:

- AI, AD, AG, FF, Fid-In, MM (c = argmax f(input), on the contaminated input for out-of-domain
  conditions), SPS and COMP (the Quantus formulas);
- where the true source is known (SyntheticEvents; any contaminated clip): SI-SDR of the
  listenable explanation ``stft.listen(X, phase, M)`` against the true target waveform (STFT domain
  only) and precision / recall of the mask (≥ 0.5) against the oracle mask;
- method-specific metrics (L2I's top-k fidelity and FF median vs random components);
- attribution time in ms per clip.

Domains: ``"stft"`` (mask on the linear STFT magnitude; the papers' "STFT→Mel" rows; listenable) and
``"mel"`` (mask on the classifier's own features, ``model.in_feature_domain()`` fed ``model.features(X)``;
the "Mel" rows; learned methods are fitted separately in that domain).

Examples::

    >>> res = run_benchmark(model, stft, {"train": tr, "val": va, "test": te},
    ...                     config={"methods": ["gradcam", "ig", "lmac"], "lmac": {"fit": {"epochs": 5}}},
    ...                     out_dir="bench_out", cache_dir="cache/interpreters")
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._utils import eval_mode, peak_rss_mb, release_memory
from ..audio import STFT
from ..data.contamination import WhamMixtures
from ..data.folders import default_data_root
from ..data.streaming import FeatureTransform, StreamingSpectrograms, is_stream
from ..data.tensors import SpectrogramSet
from ..errors import DataNotFoundError, InputError
from ..metrics import EvalContext, aggregate, class_probabilities, score
from ..nn.adapters import bound_slice, needs_phase, using_phase
from ..training import seed_everything
from .conditions import (AUGMENT_KEYS, SetDataset, augmented_training_set, condition_set, ground_truth,
                         ground_truth_info, resolve_conditions, stratified_indices, wham_pairs)
from .config import SuiteConfig, from_dict
from .data import train_stream
from .media import write_examples
from .registry import ANALYSES, InterpreterCache, MethodContext, Row, get_method
from .report import write_report

PathLike = Union[str, Path]

DOMAINS = ("stft", "mel")


def domain_label(model: nn.Module, domain: str) -> str:
    """``"STFT→Mel"`` / ``"Mel"`` for a log-mel classifier (``"STFT→features"`` / ``"features"`` otherwise)."""
    is_mel = type(getattr(model, "features", None)).__name__ == "LogMel"
    if domain == "stft":
        return "STFT→Mel" if is_mel else "STFT→features"
    return "Mel" if is_mel else "features"


#: Clips per forward pass when the harness scores masks: small batches keep a convolutional classifier's
#: activations in the CPU caches (80 five-second clips through the esc10 CompactCNN on 2 threads: 0.62 s
#: in batches of 32, 0.45 s in batches of 8; the same probabilities to the bit). Every pass of a row's
#: scoring uses the same batches.
SCORE_BATCH = 8


@torch.no_grad()
def to_features(model: nn.Module, X: Tensor, batch_size: int = 64) -> Tensor:
    """``model.features(X)`` in batches (the classifier's own input representation)."""
    return torch.cat([model.features(X[s : s + batch_size]) for s in range(0, X.shape[0], batch_size)])


def progress_log(progress: bool) -> Callable[[str], None]:
    """Where the harness logs: above the progress bars, or plain prints."""
    def log(msg: str) -> None:
        if progress:
            tqdm.write(msg)
        else:
            print(msg, flush=True)
    return log


def evaluate_masks(
    model: nn.Module,
    X: Tensor,
    masks: Tensor,
    batch_size: int = SCORE_BATCH,
    gt: Optional[Dict[str, Tensor]] = None,
    listen: Optional[Callable[[Tensor], Tensor]] = None,
    quantus_mode: str = "fast",
    log: Callable[[str], None] = print,
    quantus_check: bool = True,
    row: Optional[Row] = None,
    seed: int = 0,
    masked: Optional[Callable[[Tensor, Tensor], Tuple[Tensor, ...]]] = None,
    probs_X: Optional[Tensor] = None,
) -> Dict[str, np.ndarray]:
    """Per-sample metrics of ``masks`` explaining ``model`` on ``X``: every registered scorer that applies.

    Args:
        gt: ``{"target_wave", "oracle"}`` when the true source is known (oracle in this domain).
        listen: ``masks -> waveforms`` (the listenable explanation); enables SI-SDR.
        quantus_mode: ``"fast"`` (vectorised Quantus formulas) or ``"quantus"`` (Quantus itself).
        quantus_check: In fast mode, recompute one sample with Quantus and fall back on a mismatch.
        row: The method's row (its fitted object, options and masked-in/out rule feed method-specific metrics).
        masked: ``(X, M) -> (X_in, X_out[, P_in, P_out])`` overriding the row's rule.
        probs_X: The model's probabilities on X (:func:`~captum_lmac.metrics.faithfulness.class_probabilities`,
            batch ``batch_size``) when already computed; default: computed here.
    """
    masked = masked if masked is not None else (row.masked if row else None)
    ctx = EvalContext(model=model, X=X, masks=masks, masked=masked, gt=gt, listen=listen,
                      method=row.method if row else None, base=row.base if row else "",
                      options=dict(row.options) if row else {}, batch_size=batch_size, seed=seed,
                      quantus_mode=quantus_mode, quantus_check=quantus_check, log=log, probs_X=probs_X)
    return score(ctx)


def attribute_rows(row: Row, X: Tensor, chunk: int, desc: str, progress: bool,
                   row_model: Optional[nn.Module] = None, phase: Optional[Tensor] = None,
                   length: Optional[int] = None) -> Tuple[Tensor, float]:
    """Masks of ``row`` for X in chunks (with a progress bar) and the time per clip in ms.

    ``row_model`` is the classifier the row explains; a waveform model gets each chunk's phase, and
    so does a row that explains clips (``row.clips``, with ``phase`` and ``length``)."""
    out = []
    t0 = time.perf_counter()
    for s in tqdm(range(0, X.shape[0], chunk), desc=desc, disable=not progress, leave=False):
        with torch.enable_grad(), bound_slice(row_model, s, s + chunk):
            if row.clips is not None:
                m = row.clips.masks(X[s : s + chunk], phase[s : s + chunk], length)
            else:
                m = row.attribute(X[s : s + chunk])
            out.append(m.detach().float().cpu())
    ms = 1000.0 * (time.perf_counter() - t0) / max(1, X.shape[0])
    masks = torch.cat(out)
    if masks.shape != X.shape:
        masks = masks.expand_as(X).contiguous()
    return masks.clamp(0.0, 1.0), ms


def _forward(model: nn.Module, X: Tensor, start: int, stop: int) -> Tensor:
    """``model(X[start:stop])`` with that chunk's phase for a waveform model."""
    with bound_slice(model, start, stop):
        return model(X[start:stop])


def _augment_memo_key(limit: Optional[int], augment: Mapping[str, Any]) -> str:
    """Memo key of an augmented training set (its mixtures are computed once per run)."""
    return f"augmented:{limit}:{sorted((k, augment[k]) for k in AUGMENT_KEYS if k in augment)}"


def _first(s: SpectrogramSet, limit: Optional[int]) -> SpectrogramSet:
    """The first ``limit`` clips of ``s`` (all of them when ``limit`` is None or not smaller)."""
    return s.subset(list(range(limit))) if limit is not None and limit < len(s) else s


def example_indices(y: Tensor, n: int) -> List[int]:
    """The first clip of each of the first ``n`` classes met (distinct classes where possible)."""
    seen, out = set(), []
    for i, c in enumerate(y.tolist()):
        if c not in seen:
            seen.add(c)
            out.append(i)
        if len(out) == n:
            return out
    rest = [i for i in range(len(y)) if i not in out]
    return out + rest[: n - len(out)]


@dataclass
class DomainData:
    """Lazy access to the training data of the learned methods in one domain (computed once per run)."""

    model: nn.Module
    domain: str
    data: Mapping[str, SpectrogramSet]
    config: SuiteConfig
    stft: STFT
    data_root: Optional[Path]
    memo: Dict[str, Any]
    seed: int = 0
    progress: bool = True

    def split(self, name: str) -> SpectrogramSet:
        if name not in self.data:
            raise InputError(f"fitting a learned method needs a {name!r} split")
        return self.data[name]

    def train_split(self) -> Any:
        """The training split: a :class:`SpectrogramSet`, or a stream when it was loaded as one or the
        suite sets ``streaming.enabled: true`` (then the in-memory clips are streamed from their waveforms)."""
        tr = self.split("train")
        if is_stream(tr) or not self.config.streaming.enabled is True:
            return tr
        if "train_stream" not in self.memo:
            self.memo["train_stream"] = train_stream(self.config, SetDataset(tr, self.stft.sample_rate), self.stft)
        return self.memo["train_stream"]

    def streaming(self) -> bool:
        """True when the learned methods read their training clips on the fly."""
        return "train" in self.data and is_stream(self.train_split())

    def to_domain(self, X: Any) -> Any:
        """STFT magnitudes (a tensor or a stream of them) in this domain (the classifier's features
        in the ``mel`` domain)."""
        if self.domain == "stft":
            return X
        if is_stream(X):
            return X.with_transform(FeatureTransform(self.model.features))
        return to_features(self.model, X)

    def _stream_in_domain(self, stream: StreamingSpectrograms, limit: Optional[int]) -> StreamingSpectrograms:
        if limit is not None and limit < len(stream):
            stream = stream.subset(range(limit))
        return self.to_domain(stream)

    def _in_domain(self, key: str, X: Callable[[], Tensor]) -> Tensor:
        if self.domain == "stft":
            return X()
        if key not in self.memo:
            self.memo[key] = to_features(self.model, X())
        return self.memo[key]

    def train_X(self) -> Tensor:
        """The training clips in this domain (in memory)."""
        if self.streaming():
            raise InputError("the training split streams: use fit_data('train') (a StreamingSpectrograms)")
        return self._in_domain("train_mel", lambda: self.split("train").X)

    def fit_data(self, split: str = "train", limit: Optional[int] = None,
                 augment: Optional[Mapping[str, Any]] = None) -> Any:
        """Data a learned method fits on: the inputs in this domain, or — for a classifier that needs
        the clips' phase (waveform models) — the split itself (X with its phase), first ``limit`` clips;
        a :class:`~captum_lmac.data.StreamingSpectrograms` of them when the training split streams.

        ``augment`` (training split only; ``fraction``, ``kinds``, ``snr_db``, ``add`` of
        :func:`~captum_lmac.benchmark.conditions.augmented_training_set`): that share of the clips
        replaced by seeded mixtures, computed once per run."""
        if split == "train" and augment and float(augment.get("fraction", 0.0)) > 0:
            return self._augmented(limit, augment)
        if split == "train" and self.streaming():
            return self._stream_in_domain(self.train_split(), limit)
        if needs_phase(self.model) and self.domain == "stft":
            if split not in self.data:
                return None
            s = self.data[split]
            s = _first(s, limit)
            return SpectrogramSet(s.waveform, s.X, s.phase, s.y, {}, list(s.classes))
        X = self.train_X() if split == "train" else self.val_X()
        return X if X is None or limit is None or limit >= X.shape[0] else X[:limit]

    def require_in_memory(self, setting: str) -> None:
        """Raise if the training split streams: ``setting`` (e.g. augmentation) needs it in memory."""
        if self.streaming():
            raise InputError(f"{setting} needs the training clips in memory; this training split streams "
                             f"(set {setting}.fraction to 0, or streaming.enabled to false)")

    def augmented_set(self, limit: Optional[int], augment: Mapping[str, Any]) -> SpectrogramSet:
        """The first ``limit`` training clips with ``augment``'s share of them contaminated
        (:func:`~captum_lmac.benchmark.conditions.augmented_training_set`; STFT domain, labels kept),
        computed once per run and shared by the domains."""
        self.require_in_memory("the method's augment")
        opts = {k: augment[k] for k in AUGMENT_KEYS if k in augment}
        key = _augment_memo_key(limit, augment)
        if key not in self.memo:
            tr = _first(self.split("train"), limit)
            self.memo[key] = augmented_training_set(tr, self.stft, seed=self.seed, progress=self.progress, **opts)
        return self.memo[key]

    def _augmented(self, limit: Optional[int], augment: Mapping[str, Any]) -> Any:
        aug = self.augmented_set(limit, augment)
        if self.domain == "stft":
            return aug if needs_phase(self.model) else aug.X
        return self._in_domain(f"{_augment_memo_key(limit, augment)}:{self.domain}", lambda: aug.X)

    def val_X(self) -> Optional[Tensor]:
        """The validation clips in this domain (None without a validation split)."""
        if "val" not in self.data:
            return None
        return self._in_domain("val_mel", lambda: self.data["val"].X)

    def val_set(self) -> SpectrogramSet:
        """The validation split as loaded (STFT domain, with labels and class names)."""
        return self.split("val")

    def pair_data(self, limit: Optional[int] = None) -> Tuple[Any, str]:
        """Fine-tuning data in this domain and its description: ``(X_mix, X_clean)`` tensors (first
        ``limit``), or — when the training split streams — a stream whose batches carry the clean part
        (the clips' known clean events, or WHAM!-style mixtures computed on the fly)."""
        if not self.streaming():
            if needs_phase(self.model) and self.domain == "stft":  # waveform models: the mixtures' phase too
                p, what = self._pair_set()
                return _first(p, limit), what
            X_mix, X_clean, what = self.pairs()
            if limit is not None and limit < X_mix.shape[0]:
                X_mix, X_clean = X_mix[:limit], X_clean[:limit]
            return (X_mix, X_clean), what
        tr = self.train_split()
        ft = self.config.section("lmac_ft")
        has_clean = tr.first_batch(1).clean is not None
        mode = ft.pairs if ft.pairs != "auto" else ("synthetic" if has_clean else "wham")
        if mode == "synthetic":
            if not has_clean:
                raise InputError("lmac_ft.pairs 'synthetic' needs training clips with a known clean source")
            return self._stream_in_domain(tr, limit), "training clips with their clean event (event vs background)"
        noise = Path(ft.noise_dir) if ft.noise_dir is not None else None
        if noise is not None and not noise.is_absolute():
            noise = (self.data_root or default_data_root()) / noise
        if noise is None or not noise.is_dir():
            raise DataNotFoundError(f"WHAM!-style fine-tuning mixtures need a noise folder; {noise} not found")
        mixtures = WhamMixtures(tr.reader, noise, float(ft.snr_db), seed=self.seed)
        pairs = StreamingSpectrograms(mixtures, self.stft, clip_seconds=self.config.streaming.clip_seconds,
                                      crop=self.config.streaming.crop, seed=self.seed,
                                      num_workers=self.config.streaming.workers, index=tr.index)
        return (self._stream_in_domain(pairs, limit),
                f"training clips + ambient noise ({noise.name}) at {float(ft.snr_db):g} dB, mixed on the fly")

    def pairs(self) -> Tuple[Tensor, Tensor, str]:
        """Fine-tuning pairs ``(X_mix, X_clean, description)`` in this domain (WHAM!-style mixtures or
        the clips' known clean events, see :func:`~captum_lmac.benchmark.conditions.wham_pairs`)."""
        if needs_phase(self.model):
            p, what = self._pair_set()
            X_mix, X_clean = p.X, p.extra["clean_X"]
        else:
            X_mix, X_clean, what = self._pair_spectra()
        if self.domain == "stft":
            return X_mix, X_clean, what
        return to_features(self.model, X_mix), to_features(self.model, X_clean), what

    def _pair_spectra(self) -> Tuple[Tensor, Tensor, str]:
        """The mixtures' and clean parts' magnitudes alone (STFT domain), computed once per run: a classifier
        without a phase input never reads the mixtures' waveforms or phase, so they are not kept."""
        if "pairs" in self.memo:  # the whole set is held already (a waveform model's fit built it)
            p, what = self.memo["pairs"]
            return p.X, p.extra["clean_X"], what
        if "pair_spectra" not in self.memo:
            p, what = self._build_pairs(phase=False)
            self.memo["pair_spectra"] = (p.X, p.extra["clean_X"], what)
            del p
            release_memory()
        return self.memo["pair_spectra"]

    def _pair_set(self) -> Tuple[SpectrogramSet, str]:
        """The fine-tuning mixtures as a :class:`SpectrogramSet` (STFT domain, with their phase and
        ``extra["clean_X"]``) and their description, computed once per run."""
        if "pairs" not in self.memo:
            self.memo["pairs"] = self._build_pairs()
        return self.memo["pairs"]

    def _build_pairs(self, phase: bool = True) -> Tuple[SpectrogramSet, str]:
        ft = self.config.section("lmac_ft")
        noise = Path(ft.noise_dir) if ft.noise_dir is not None else None
        if noise is not None and not noise.is_absolute():
            noise = (self.data_root or default_data_root()) / noise
        tr = _first(self.split("train"), self.config.n_train)
        return wham_pairs(tr, self.stft, noise, float(ft.snr_db), seed=self.seed, mode=ft.pairs, progress=self.progress,
                          phase=phase)


@dataclass
class AnalysisContext:
    """What a suite-level analysis sees after the per-clip metrics (see :class:`~captum_lmac.benchmark.registry.AnalysisSpec`)."""

    model: nn.Module
    stft: STFT
    config: SuiteConfig
    test: SpectrogramSet
    rows: Dict[str, List[Row]]
    out_dir: Optional[Path]
    seed: int = 0
    progress: bool = True
    log: Callable[[str], None] = print
    skipped: List[str] = field(default_factory=list)
    data: Optional[Mapping[str, SpectrogramSet]] = None


class ConditionSets:
    """The test clips under each condition, built on demand by ``build(condition)`` and holding at most
    the last one built (with its ground truth), so a run keeps one condition's copy of the test split in
    memory, not all of them. ``build`` must be deterministic (the condition sets are seeded per clip)."""

    def __init__(self, build: Callable[[Any], SpectrogramSet]) -> None:
        self._build = build
        self._name: Optional[str] = None
        self._set: Optional[SpectrogramSet] = None
        self._gt: Any = _UNSET

    def get(self, cond: Any) -> SpectrogramSet:
        """The set of ``cond`` (built now unless it is the one held)."""
        if self._name != cond.name or self._set is None:
            self.release()
            self._set = self._build(cond)
            self._name = cond.name
            self._gt = _UNSET
        return self._set

    def ground_truth(self, cond: Any) -> Optional[Tuple[Tensor, Tensor, str]]:
        """``(target_wave, rest_wave, description)`` of ``cond``'s clips, or None (:func:`ground_truth`)."""
        s = self.get(cond)
        if self._gt is _UNSET:
            self._gt = ground_truth(s, cond)
        return self._gt

    def release(self) -> None:
        """Drop the held set (call :func:`~captum_lmac._utils.release_memory` after)."""
        self._name, self._set, self._gt = None, None, _UNSET


_UNSET = object()


def build_rows(names: Sequence[str], model: nn.Module, domain: str, cfg: SuiteConfig, data: DomainData,
               cache: InterpreterCache, seed: int, progress: bool, log: Callable[[str], None],
               baseline_seed: Optional[int] = None) -> List[Row]:
    """The table rows of ``names`` on ``model`` in one domain (learned methods fitted or loaded with
    ``seed``; baselines seeded with ``baseline_seed``, default ``seed``)."""
    fitted: Dict[str, Any] = {}

    def context(name: str) -> MethodContext:
        spec = get_method(name)
        s = seed if spec.kind == "learned" or baseline_seed is None else baseline_seed
        return MethodContext(name=name, model=model, domain=domain, config=cfg, section=cfg.section(spec.section_name),
                             options=dict(cfg.method_options.get(name, {}) or {}), data=data, cache=cache,
                             fitted=fitted, obtain=obtain, seed=s, progress=progress, log=log)

    def obtain(name: str) -> Any:
        if name not in fitted:
            spec = get_method(name)
            if spec.fit is None:
                raise InputError(f"method {name!r} has nothing to fit")
            fitted[name] = cache.get_or_fit(spec, context(name))
        return fitted[name]

    rows: List[Row] = []
    for name in names:
        spec = get_method(name)
        obj = obtain(name) if spec.fit is not None else None
        if spec.fit is not None:
            release_memory()  # the fit's activations and temporaries
        made = spec.rows(context(name), obj)
        if not made:
            raise InputError(f"method {name!r} produced no table rows")
        rows.extend(made)
    return rows


def seed_summary(seeds: Sequence[int], per_seed: Sequence[Mapping[str, np.ndarray]]) -> Dict[str, Any]:
    """Mean over clips per seed, and their mean and (sample) sd over seeds, for every metric."""
    values = {k: [float(np.nanmean(p[k])) if np.isfinite(p[k]).any() else float("nan") for p in per_seed]
              for k in per_seed[0]}
    return {"seeds": list(seeds), "values": values,
            "mean": {k: float(np.nanmean(v)) for k, v in values.items()},
            "sd": {k: float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()}}


def evaluate_row(r: Row, model: nn.Module, X: Tensor, s: SpectrogramSet, bs: int, gt: Optional[Dict[str, Tensor]],
                 listen, cfg: SuiteConfig, log, seed: int, progress: bool, desc: str,
                 quantus_check: bool = False, probs_X: Optional[Tensor] = None
                 ) -> Tuple[Dict[str, np.ndarray], Tensor, float]:
    """Per-clip metrics, masks and ms per clip of one row on one condition set ``s`` (its clips'
    phase bound for waveform models; a row that explains the clips gets its own masked-in/out
    inputs and listenable explanation). ``probs_X``: the model's probabilities on X, shared by the
    condition's rows (:func:`condition_probabilities`)."""
    n_samples = int(s.waveform.shape[-1])
    with using_phase(model, s.phase, n_samples):
        masks, ms = attribute_rows(r, X, bs, desc, progress, model, s.phase, n_samples)
        masked, row_listen = r.masked, listen
        if r.clips is not None:
            masked = lambda X_, M: r.clips.masked(X_, M, s.phase, n_samples)
            row_listen = lambda M: r.clips.waveforms(X, s.phase, n_samples)
        per = evaluate_masks(model, X, masks, batch_size=SCORE_BATCH, gt=gt, listen=row_listen,
                             quantus_mode=cfg.quantus, log=log, quantus_check=quantus_check, row=r, seed=seed,
                             masked=masked, probs_X=probs_X)
    return per, masks, ms


def condition_probabilities(model: nn.Module, X: Tensor, s: SpectrogramSet) -> Tensor:
    """The model's probabilities on a condition's clips, with their phase bound (waveform models), in
    the batches :func:`evaluate_row` scores in: computed once, they serve every row of the condition."""
    with using_phase(model, s.phase, int(s.waveform.shape[-1])):
        return class_probabilities(model, X, batch_size=SCORE_BATCH)


def run_benchmark(
    model: nn.Module,
    stft: STFT,
    data: Mapping[str, SpectrogramSet],
    methods: Optional[Sequence[str]] = None,
    config: Union[None, SuiteConfig, Mapping[str, Any]] = None,
    conditions: Optional[Sequence[str]] = None,
    snr: Union[None, float, Mapping[str, float]] = None,
    snr_preset: Optional[str] = None,
    domains: Optional[Sequence[str]] = None,
    n_test: Optional[int] = None,
    seed: Optional[int] = None,
    out_dir: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
    data_root: Optional[PathLike] = None,
    classifier_info: Optional[Mapping[str, Any]] = None,
    sanity: Optional[bool] = None,
    refit: bool = False,
    progress: bool = True,
) -> Dict[str, Any]:
    r"""Run the comparative benchmark on one classifier and write the reports.

    Args:
        model (nn.Module): The classifier, X (N, 1, F, T) linear magnitude → scores. For the
            ``"mel"`` domain it must offer ``features`` and ``in_feature_domain()``
            (:class:`~captum_lmac.SpectrogramClassifier`); otherwise that domain is skipped.
        stft (STFT): The analysis of the data (for listening and contamination).
        data (dict): ``{"train", "val", "test"}`` splits (``train``/``val`` are needed only when a
            learned method must be fitted). ``train`` may be a
            :class:`~captum_lmac.data.StreamingSpectrograms` (read on the fly; see the suite's
            ``streaming`` settings).
        methods (list of str, optional): Registered method names (overrides ``config.methods``).
        config (SuiteConfig or dict, optional): Suite configuration (a dict is merged over the defaults).
        conditions, snr, snr_preset, domains, n_test, seed: Override the configuration's
            ``conditions``, ``snr_db``, ``snr_preset`` (``"paper"`` 3 dB, ``"released"`` 12/12/6 dB),
            ``domains``, ``n_test``, ``seed``.
        out_dir (path, optional): Where the reports go (None: no files are written).
        cache_dir (path, optional): Folder of fitted interpreters (``<suite>_<method>[_mel].pt``);
            None: interpreters are fitted and not saved.
        data_root (path, optional): Data root for the speech / ambient folders.
        classifier_info (dict, optional): Shown in the reports (e.g. test accuracy).
        sanity (bool, optional): Run the cascading-randomisation check (default: the configuration).
        refit (bool): Ignore cached interpreters.
        progress (bool): tqdm progress bars.

    Returns:
        dict: the results (``rows``, ``conditions``, ``domains``, ``sanity``, ``analyses``,
        ``timing``, ...), as written to ``results.json``.
    """
    t_start = time.time()
    overrides = {"methods": list(methods) if methods is not None else None,
                 "conditions": list(conditions) if conditions is not None else None,
                 "snr_db": snr, "snr_preset": snr_preset, "domains": list(domains) if domains is not None else None,
                 "n_test": n_test, "seed": seed}
    raw = config.to_dict() if isinstance(config, SuiteConfig) else dict(config or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if sanity is not None:
        raw["sanity"] = {**raw.get("sanity", {}), "enabled": bool(sanity)}
    cfg = from_dict(raw)
    log = progress_log(progress)
    seed_everything(cfg.seed)
    with eval_mode(model, freeze=True):  # attributions need input gradients only
        return _run(model, stft, data, cfg, log, out_dir, cache_dir, data_root, classifier_info, refit,
                    progress, t_start)


def _run(model: nn.Module, stft: STFT, data: Mapping[str, SpectrogramSet], cfg: SuiteConfig, log, out_dir,
         cache_dir, data_root, classifier_info, refit: bool, progress: bool, t_start: float) -> Dict[str, Any]:
    suite, seed, bs = cfg.suite, cfg.seed, cfg.batch_size
    out = Path(out_dir) if out_dir is not None else None
    timing: Dict[str, float] = {}
    skipped: List[str] = []

    if "test" not in data:
        raise InputError("data needs a 'test' split")
    release_memory()  # what reading the data (and training a classifier) left behind
    memory: Dict[str, Optional[float]] = {"start": peak_rss_mb()}  # the high-water mark after each phase
    test_full = data["test"]
    idx = stratified_indices(test_full.y, cfg.n_test)
    test = test_full.subset(idx) if len(idx) < len(test_full) else test_full
    names = list(cfg.methods)
    doms = list(cfg.domains or ["stft"])
    if "mel" in doms and not (hasattr(model, "in_feature_domain") and hasattr(model, "features")):
        skipped.append("mel domain (the model has no features / in_feature_domain)")
        doms.remove("mel")
    conds = resolve_conditions(cfg.conditions, cfg.snr_db, cfg.snr_preset)
    root = Path(data_root) if data_root is not None else None

    # --- condition sets ---------------------------------------------------------------------------
    # Built when needed and not kept (seeded: item i depends only on (seed, condition, i), so every build
    # is the same set): the contaminated copies of the test split would otherwise sit in memory through
    # every fit. Each is built once here (accuracy, what ground truth it has, whether its data exists).
    t0 = time.time()
    sets = ConditionSets(lambda cond: condition_set(test, cond, stft, data_root=data_root, speech_dir=cfg.speech_dir,
                                                    ambient_dir=cfg.ambient_dir, seed=seed, progress=progress))
    cond_info = []
    kept = []
    for cond in conds:
        try:
            s = sets.get(cond)
        except DataNotFoundError as exc:
            log(f"[benchmark] condition {cond.name!r} skipped: {exc}")
            skipped.append(f"{cond.name} ({exc})")
            continue
        kept.append(cond)
        with torch.no_grad(), using_phase(model, s.phase, s.waveform.shape[-1]):
            pred = torch.cat([_forward(model, s.X, i, i + SCORE_BATCH)
                              for i in range(0, len(s), SCORE_BATCH)]).argmax(1)
        info = cond.to_dict()
        info["n"] = len(s)
        info["accuracy"] = float((pred == s.y).float().mean())
        if cond.contaminated and "snr_db" in s.extra:
            info["snr_db_measured"] = float(s.extra["snr_db"].mean())
        g = sets.ground_truth(cond)
        info["ground_truth"] = g[2] if g is not None else None
        cond_info.append(info)
    conds = kept
    s = pred = None  # the last set built must not outlive the release
    sets.release()
    release_memory()
    timing["conditions_seconds"] = time.time() - t0
    memory["conditions"] = peak_rss_mb()

    seeds = cfg.interpreter_seeds
    cache = InterpreterCache(Path(cache_dir) if cache_dir is not None else None, suite, refit=refit, log=log,
                             base_seed=seeds[0])
    memo: Dict[str, Any] = {}
    n_ex = int(cfg.report.n_examples) if out is not None else 0
    ex_idx = example_indices(test.y, n_ex) if n_ex else []
    ex_masks: Dict[Tuple[str, str, str], Tensor] = {}
    ex_waves: Dict[Tuple[str, str, str], Tensor] = {}
    rows: List[Dict[str, Any]] = []
    per_sample: Dict[str, Dict[str, list]] = {}
    mask_rules: Dict[str, str] = {}
    fits: Dict[str, Any] = {}
    domain_rows: Dict[str, List[Row]] = {}
    timing["fit_seconds"] = 0.0
    timing["evaluate_seconds"] = 0.0

    def names_for(domain: str) -> List[str]:
        if domain == "stft":
            return names
        keep = [n for n in names if get_method(n).feature_domain]
        if cfg.feature_domain_methods is not None:
            keep = [n for n in keep if n in cfg.feature_domain_methods]
        return keep

    # --- fits: every domain's rows before any evaluation, so that what only the fits need (fine-tuning
    # pairs, feature-domain training inputs) is dropped before the condition sets are built
    fitted: List[Tuple[str, nn.Module, List[Row], Dict[int, Dict[str, Row]]]] = []
    for domain in doms:
        m_dom = model if domain == "stft" else model.in_feature_domain()
        m_dom.eval()
        dom_names = names_for(domain)
        if not dom_names:
            continue
        t0 = time.time()
        dd = DomainData(model=model, domain=domain, data=data, config=cfg, stft=stft, data_root=root, memo=memo,
                        seed=seed, progress=progress)
        mrows = build_rows(dom_names, m_dom, domain, cfg, dd, cache, seeds[0], progress, log, baseline_seed=seed)
        learned = [n for n in dom_names if get_method(n).kind == "learned"]
        more_seeds: Dict[int, Dict[str, Row]] = {}  # further interpreter seeds: the same learned rows again
        for s_ in seeds[1:]:
            if learned:
                more_seeds[s_] = {r.name: r for r in build_rows(learned, m_dom, domain, cfg, dd, cache, s_, progress,
                                                                log, baseline_seed=seed)}
                for r in more_seeds[s_].values():
                    if r.info:
                        fits[f"{r.base} ({domain}) seed {s_}"] = r.info
        timing["fit_seconds"] += time.time() - t0
        memory[f"fit_{domain}"] = peak_rss_mb()
        domain_rows[domain] = mrows
        for r in mrows:
            mask_rules.setdefault(r.name, r.mask_rule)
            if r.kind == "learned" and r.info:
                fits[f"{r.base} ({domain})"] = r.info
        fitted.append((domain, m_dom, mrows, more_seeds))
    memo.clear()
    release_memory()

    # --- evaluation: one condition set at a time ----------------------------------------------------
    for domain, m_dom, mrows, more_seeds in fitted:
        t0 = time.time()
        label = domain_label(model, domain)
        bar = tqdm(total=len(conds) * len(mrows), desc=f"evaluating [{label}]", disable=not progress)
        for ci, cond in enumerate(conds):
            s = sets.get(cond)
            X_dom = s.X if domain == "stft" else to_features(model, s.X)
            g = sets.ground_truth(cond)
            features = (lambda X_: to_features(model, X_)) if domain == "mel" else None
            gt_info = None if g is None else ground_truth_info(g, stft, features)
            listen = None
            if domain == "stft":
                n_samples = s.waveform.shape[-1]

                def listen(M: Tensor, s: SpectrogramSet = s, n: int = n_samples) -> Tensor:
                    return torch.cat([stft.listen(s.X[i : i + 32], s.phase[i : i + 32], M[i : i + 32], length=n)
                                      for i in range(0, M.shape[0], 32)])
            n_samples = s.waveform.shape[-1]
            probs_X = condition_probabilities(m_dom, X_dom, s)
            for r in mrows:
                per, masks, ms = evaluate_row(r, m_dom, X_dom, s, bs, gt_info, listen, cfg, log, seed, progress,
                                              f"{r.name} [{domain}/{cond.name}]", quantus_check=ci == 0,
                                              probs_X=probs_X)
                aggs = {k: aggregate(v, seed=seed) for k, v in per.items()}
                entry = {
                    "suite": suite, "domain": domain, "domain_label": label, "condition": cond.name,
                    "condition_label": cond.label, "snr_db": cond.snr_db, "method": r.name, "base_method": r.base,
                    "kind": r.kind, "n": int(X_dom.shape[0]), "ms_per_clip": ms, "metrics": aggs,
                }
                flagged = [w for w in (r.info or {}).get("warnings") or []]
                for s_, more in more_seeds.items():
                    if r.name in more:
                        flagged += [f"seed {s_}: {w}" for w in (more[r.name].info or {}).get("warnings") or []]
                if flagged:  # the fit did not learn (the reports flag the row)
                    entry["fit_warnings"] = flagged
                if r.kind == "learned" and len(seeds) > 1:
                    entry["seeds"] = seed_summary(seeds, [per] + [
                        evaluate_row(more_seeds[s_][r.name], m_dom, X_dom, s, bs, gt_info, listen, cfg, log, seed,
                                     progress, f"{r.name} s{s_} [{domain}/{cond.name}]", probs_X=probs_X)[0]
                        for s_ in seeds[1:]])
                rows.append(entry)
                per_sample[f"{domain}|{cond.name}|{r.name}"] = {k: [round(float(x), 6) for x in v]
                                                                  for k, v in per.items()}
                if ex_idx:
                    ex_masks[(domain, cond.name, r.name)] = masks[ex_idx].clone()
                    if r.clips is not None and domain == "stft":
                        ex_waves[(domain, cond.name, r.name)] = r.clips.waveforms(
                            X_dom[ex_idx], s.phase[ex_idx], n_samples).detach().cpu()
                log(f"[benchmark] {label:>13} | {cond.name:>9} | {r.name:<16} "
                    f"AI {aggs['AI']['mean']:6.2f} AD {aggs['AD']['mean']:6.2f} FF {aggs['FF']['mean']:6.3f} "
                    f"Fid-In {aggs['FidIn']['mean']:5.3f} MM {aggs['MM']['mean']:5.3f} {ms:7.1f} ms/clip")
                del masks
                release_memory()
                bar.update(1)
            del s, X_dom, gt_info, g, listen
            sets.release()
            release_memory()  # this condition's set, attributions and metric temporaries
        bar.close()
        timing[f"evaluate_{domain}_seconds"] = time.time() - t0
        timing["evaluate_seconds"] += time.time() - t0
        memory[f"evaluate_{domain}"] = peak_rss_mb()

    # --- analyses (the sanity check first) --------------------------------------------------------------
    actx = AnalysisContext(model=model, stft=stft, config=cfg, test=test, rows=domain_rows, out_dir=out, seed=seed,
                           progress=progress, log=log, skipped=skipped, data=data)
    analyses: Dict[str, Any] = {}
    wanted = (["sanity"] if cfg.sanity.enabled else []) + [a for a in cfg.analyses if a != "sanity"]
    for name in wanted:
        t0 = time.time()
        res = ANALYSES[name].run(actx)
        release_memory()
        if res is not None:
            analyses[name] = res
        timing[f"{name}_seconds"] = time.time() - t0
        memory[name] = peak_rss_mb()

    # --- examples (pictures and audio) ----------------------------------------------------------------
    examples = []
    if out is not None and ex_idx:
        t0 = time.time()
        examples = write_examples(out, out / "media", model, stft, test, conds, sets, ex_idx, ex_masks,
                                  ex_waves=ex_waves,
                                  with_mel=bool(cfg.report.mel_examples), progress=progress)
        sets.release()
        timing["examples_seconds"] = time.time() - t0
        memory["examples"] = peak_rss_mb()

    timing["total_seconds"] = time.time() - t_start
    snr_used = {c.name: c.snr_db for c in conds if c.contaminated}
    any_gt = any(c.get("ground_truth") for c in cond_info)
    stft_rows = domain_rows.get("stft", [])
    results: Dict[str, Any] = {
        "suite": suite,
        "description": cfg.description,
        "notes": cfg.notes,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "n_test": len(test),
        "snr_preset": cfg.snr_preset if cfg.snr_db is None else None,
        "snr_db": snr_used,
        "conditions": cond_info,
        "domains": [{"name": d, "label": domain_label(model, d)} for d in doms],
        "methods": [r.name for r in stft_rows] or list(dict.fromkeys(r["method"] for r in rows)),
        "mask_rules": mask_rules,
        "fits": fits,
        "classifier": dict(classifier_info or {}),
        "rows": rows,
        "sanity": analyses.pop("sanity", None),
        "analyses": analyses,
        "examples": examples,
        "timing": {k: round(v, 2) for k, v in timing.items()},
        "memory": {"peak_rss_mb": memory},
        "skipped": skipped,
        "ground_truth_note": (
            "Ground truth (SI-SDR of the listenable explanation vs the true source; precision/recall of mask ≥ 0.5 "
            "vs the oracle mask where the true source dominates): " +
            "; ".join(f"{c['name']}: {c['ground_truth']}" for c in cond_info if c.get("ground_truth"))
        ) if any_gt else "",
        "config": cfg.to_dict(),
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "machine": platform.machine()},
    }
    if out is not None:
        paths = write_report(results, out, per_sample=per_sample)
        log(f"[benchmark] wrote {', '.join(str(p) for p in paths.values())}")
    return results


__all__ = ["run_benchmark", "evaluate_masks", "build_rows", "attribute_rows", "DomainData", "AnalysisContext",
           "to_features", "domain_label", "progress_log", "example_indices", "DOMAINS"]
