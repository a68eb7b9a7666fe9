r"""The comparative benchmark: suites, the method registry, the harness, analyses and reports.

- :mod:`.registry` — every method the harness can run (:func:`register_method`) and every
  suite-level analysis (:func:`register_analysis`); :mod:`.methods` registers the built-in ones;
- :mod:`.config` / :mod:`.schema` — typed, validated suite configurations; :mod:`.suites` — the
  built-in suites;
- :mod:`.data`, :mod:`.classifiers`, :mod:`.conditions` — a suite's data, its classifier recipe,
  its out-of-domain conditions;
- :mod:`.harness` — :func:`run_benchmark`; :mod:`.analyses` — sanity check and zero-shot checks;
- :mod:`.media` / :mod:`.report` — pictures, sound and the JSON / CSV / Markdown / HTML reports;
- :mod:`.cli` — :func:`run_suite` and ``captum-lmac benchmark``.
"""

from .registry import (
    ANALYSES,
    METHODS,
    AnalysisSpec,
    InterpreterCache,
    MethodContext,
    MethodSpec,
    Row,
    get_method,
    method_names,
    register_analysis,
    register_method,
    unregister_method,
)
from .._utils import reuse_freed_memory
from . import methods  # noqa: F401  (registers the built-in methods)
from .config import SuiteConfig, builtin_config, load_config
from .harness import AnalysisContext, DomainData, evaluate_masks, run_benchmark
from . import analyses, roar  # noqa: F401  (register the built-in analyses)
from .cli import main, run_suite

__all__ = [
    "METHODS", "ANALYSES", "MethodSpec", "MethodContext", "Row", "AnalysisSpec", "InterpreterCache", "get_method",
    "method_names", "register_method", "unregister_method", "register_analysis", "SuiteConfig", "builtin_config",
    "load_config", "run_benchmark", "evaluate_masks", "DomainData", "AnalysisContext", "run_suite", "main",
    "reuse_freed_memory",
]
