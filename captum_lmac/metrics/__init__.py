r"""Metrics of mask explanations, one small module per family.

Every metric is computed **per sample** and aggregated afterwards (:func:`aggregate`: mean, median
and a 95 % bootstrap interval, NaN ignored), so reports can show spread and degenerate samples are
counted rather than silently averaged. Each metric declares its name, direction, label, number
format and category once (:class:`Metric`, :data:`METRICS`); reports read the declarations.

- :mod:`.faithfulness` — AI, AD, AG, FF, Fid-In, MM (:func:`faithfulness`);
- :mod:`.complexity` — Quantus Sparseness and Complexity (and their vectorised twins);
- :mod:`.ground_truth` — SI-SDR, oracle mask, precision / recall;
- :mod:`.sanity` — SSIM and cascading model randomisation;
- :mod:`.l2i` — L2I's top-k fidelity and FF median vs random components;
- :mod:`.aggregate` — aggregation.

The benchmark computes every registered :class:`Scorer` that applies to a row
(:func:`register_scorer` adds one).
"""

from .base import (
    CATEGORIES,
    METRICS,
    SCORERS,
    EvalContext,
    Metric,
    Scorer,
    declare,
    higher_is_better,
    metric_info,
    register_scorer,
    score,
)
from .faithfulness import FAITHFULNESS_KEYS, class_probabilities, faithfulness
from .complexity import (
    complexity_scores,
    fast_complexity,
    fast_sparseness,
    quantus_complexity,
    quantus_explain_func,
    quantus_sparseness,
)
from .ground_truth import mask_precision_recall, oracle_mask, si_sdr
from .l2i import component_ff, ff_median, topk_fidelity
from .sanity import cascading_randomisation, randomisation_stages, randomise_, ssim
from .aggregate import aggregate, aggregate_all

HIGHER_IS_BETTER = {name: m.higher_is_better for name, m in METRICS.items()}
"""Direction of each declared metric (read from the declarations)."""

__all__ = [
    "Metric", "METRICS", "CATEGORIES", "declare", "metric_info", "higher_is_better", "HIGHER_IS_BETTER",
    "EvalContext", "Scorer", "SCORERS", "register_scorer", "score",
    "FAITHFULNESS_KEYS", "class_probabilities", "faithfulness", "quantus_explain_func", "quantus_sparseness", "quantus_complexity",
    "fast_sparseness", "fast_complexity", "complexity_scores", "si_sdr", "oracle_mask", "mask_precision_recall",
    "topk_fidelity", "ff_median", "component_ff", "ssim", "randomisation_stages", "randomise_",
    "cascading_randomisation", "aggregate", "aggregate_all",
]
