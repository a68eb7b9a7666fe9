r"""Metric declarations and the scorer protocol every metric module follows.

Like Quantus' metric classes, each metric *declares* its name, the direction that is better, its
label, its number format and its category once (:class:`Metric`); tables, plots and reports read
that declaration (:func:`metric_info`) instead of keeping their own lists.

Metrics that the benchmark computes per clip come in :class:`Scorer` groups: a scorer declares the
metrics it produces and computes them, one value per clip, from an :class:`EvalContext` (the
model, the inputs, the masks and what else is known). A new metric is one module with a scorer
plus one :func:`register_scorer` call; the harness runs every registered scorer whose
:meth:`Scorer.applies` is true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from ..errors import InputError

CATEGORIES = ("faithfulness", "complexity", "ground truth", "sanity", "l2i", "cost")


@dataclass(frozen=True)
class Metric:
    """The declaration of one metric.

    Attributes:
        name: Key in results (``"AI"``, ``"FidIn"``, ``"SI-SDR"``).
        label: Column header (``"Fid-In"``).
        higher_is_better: True / False, or None when neither (reported, not ranked).
        decimals: Digits after the point in tables.
        category: One of :data:`CATEGORIES`.
        description: One sentence for "how to read this" sections.
        summary: How per-clip values are summarised in tables: ``"mean"`` (with a bootstrap
            interval) or ``"median"``.
    """

    name: str
    label: str
    higher_is_better: Optional[bool]
    decimals: int = 3
    category: str = "faithfulness"
    description: str = ""
    summary: str = "mean"

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise InputError(f"metric {self.name!r}: category must be one of {CATEGORIES}, got {self.category!r}")
        if self.summary not in ("mean", "median"):
            raise InputError(f"metric {self.name!r}: summary must be 'mean' or 'median', got {self.summary!r}")

    @property
    def arrow(self) -> str:
        """`` ↑`` / `` ↓`` / ``""`` for table headers."""
        return {True: " ↑", False: " ↓"}.get(self.higher_is_better, "")


METRICS: Dict[str, Metric] = {}
"""Every declared metric by name, in declaration order (the column order of reports)."""


def declare(*metrics: Metric) -> Tuple[Metric, ...]:
    """Register metric declarations (a name may be declared once)."""
    for m in metrics:
        if m.name in METRICS and METRICS[m.name] != m:
            raise InputError(f"metric {m.name!r} is already declared differently")
        METRICS[m.name] = m
    return tuple(metrics)


def metric_info(name: str) -> Metric:
    """The declaration of metric ``name`` (an undeclared name gets a neutral default)."""
    return METRICS.get(name) or Metric(name=name, label=name, higher_is_better=None)


def higher_is_better(name: str) -> Optional[bool]:
    """Direction of metric ``name``: True, False or None."""
    return metric_info(name).higher_is_better


@dataclass
class EvalContext:
    """Everything a scorer may use to score the masks of one method on one condition.

    Attributes:
        model: The classifier in this domain's input (X → scores).
        X: The explained inputs (N, 1, F, T).
        masks: The method's masks (N, 1, F, T) in [0, 1].
        masked: ``(X, M) -> (X_in, X_out)`` forming the masked-in and masked-out inputs (None:
            ``M ⊙ X`` and ``(1 − M) ⊙ X``).
        gt: ``{"target_wave", "oracle"}`` when the true source is known.
        listen: ``masks -> waveforms`` (the listenable explanation) in the STFT domain, else None.
        method: The fitted explainer object behind the row (for method-specific metrics), or None.
        base: The registry name of the method (``"l2i"`` for every L2I row).
        options: Method-specific options of the row (e.g. ``{"threshold": 0.2}`` for L2I).
        batch_size: Samples per forward pass.
        seed: Seed for scorers that draw at random.
        quantus_mode: ``"fast"`` or ``"quantus"`` for Sparseness / Complexity.
        quantus_check: Re-check one fast score against Quantus itself.
        log: Where warnings go.
        probs_X: The model's probabilities on ``X`` (N, C) when already computed (every row of a
            condition explains the same clips with the same model), else None.
    """

    model: Callable[[Tensor], Tensor]
    X: Tensor
    masks: Tensor
    masked: Optional[Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]] = None
    gt: Optional[Mapping[str, Tensor]] = None
    listen: Optional[Callable[[Tensor], Tensor]] = None
    method: Any = None
    base: str = ""
    options: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    seed: int = 0
    quantus_mode: str = "fast"
    quantus_check: bool = True
    log: Callable[[str], None] = print
    probs_X: Optional[Tensor] = None


class Scorer:
    """A group of per-clip metrics computed together.

    Subclasses set :attr:`name` and :attr:`metrics` and implement :meth:`compute`; they override
    :meth:`applies` when they need something only some rows have (ground truth, an L2I object).
    """

    name: str = "scorer"
    metrics: Tuple[Metric, ...] = ()

    def applies(self, ctx: EvalContext) -> bool:
        return True

    def compute(self, ctx: EvalContext) -> Dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError


SCORERS: Dict[str, Scorer] = {}
"""Registered scorers by name, in the order the harness runs them."""


def register_scorer(scorer: Scorer, overwrite: bool = False) -> Scorer:
    """Add a scorer (and declare its metrics) so the harness computes it for every row it applies to."""
    if not isinstance(scorer, Scorer):
        raise InputError(f"register_scorer takes a Scorer instance, got {type(scorer).__name__}")
    if scorer.name in SCORERS and not overwrite:
        raise InputError(f"scorer {scorer.name!r} is already registered; pass overwrite=True to replace it")
    declare(*scorer.metrics)
    SCORERS[scorer.name] = scorer
    return scorer


def score(ctx: EvalContext, scorers: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Run the scorers (default: every registered one) that apply to ``ctx``; merge their outputs."""
    names: List[str] = list(SCORERS) if scorers is None else list(scorers)
    out: Dict[str, np.ndarray] = {}
    for name in names:
        if name not in SCORERS:
            raise InputError(f"unknown scorer {name!r}; registered: {list(SCORERS)}")
        s = SCORERS[name]
        if s.applies(ctx):
            out.update(s.compute(ctx))
    return out


__all__ = ["Metric", "METRICS", "CATEGORIES", "declare", "metric_info", "higher_is_better", "EvalContext", "Scorer",
           "SCORERS", "register_scorer", "score"]
