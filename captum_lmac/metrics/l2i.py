r"""L2I-specific metrics (Parekh et al., NeurIPS 2022): top-k fidelity of the interpreter and the
faithfulness of its interpretations against removing as many random components.

They read a fitted L2I explainer through its public inspection API (``inspect``,
``relevance_from``, ``masks_from``, ``resolve_target``), so this module does not import the method.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
import torch
from torch import Tensor

from .._utils import TargetType, eval_mode
from ..errors import InputError
from ..nn.adapters import bound_slice
from .base import EvalContext, Metric, Scorer, register_scorer

L2I_METRICS = (
    Metric("top1", "top-1 fid", True, 3, "l2i", "share of clips whose decision is Θ's first choice"),
    Metric("top3", "top-3 fid", True, 3, "l2i", "share of clips whose decision is among Θ's three first choices"),
    Metric("FF_median", "FF med", True, 3, "l2i", "median FF of the interpretation (L2I paper)", summary="median"),
    Metric("FF_rand", "FF rand", None, 3, "l2i", "FF when as many random components are removed instead"),
    Metric("n_comp", "comps", None, 1, "l2i", "number of components selected (relevance > RT)"),
)


def _inputs(l2i: Any, X: Any) -> Tensor:
    X = getattr(X, "X", X)
    if not torch.is_tensor(X):
        raise InputError(f"X must be a tensor (N, 1, F, T) or a SpectrogramSet, got {type(X).__name__}")
    return X


def topk_ranks(l2i: Any, X: Any, batch_size: int = 32) -> Tensor:
    """Per sample, the rank (0 = first) of the classifier's decision in Θ's ordering of the classes."""
    out = l2i.inspect(_inputs(l2i, X), batch_size=batch_size)
    pred = out["logits"].argmax(1, keepdim=True)
    order = out["theta_logits"].argsort(1, descending=True)
    return (order == pred).float().argmax(1).cpu()


@torch.no_grad()
def topk_fidelity(l2i: Any, X: Any, k: Sequence[int] = (1, 3, 5), batch_size: int = 32) -> Dict[int, float]:
    r"""Top-k fidelity of the interpreter (L2I paper, Table 1).

    The fraction of samples whose classifier decision ``argmax f(X)`` is among the k classes Θ
    scores highest. k larger than the number of classes counts as all classes.

    Returns:
        dict: k → fraction in [0, 1].
    """
    ks = [int(v) for v in ([k] if isinstance(k, int) else k)]
    if not ks or any(v < 1 for v in ks):
        raise InputError(f"k must hold positive integers, got {k!r}")
    rank = topk_ranks(l2i, X, batch_size)
    return {v: float((rank < v).float().mean()) for v in ks}


@torch.no_grad()
def component_ff(l2i: Any, X: Any, threshold: float = 0.2, target: TargetType = None, seed: int = 0,
                 batch_size: int = 16) -> Dict[str, Tensor]:
    r"""Per-sample FF of the interpretation and of as many random components.

    ``FF = p_c(X) − p_c((1 − M) ⊙ X)`` with M the mask of the selected components (relevance >
    ``threshold``), c the classifier's decision (or ``target``); the baseline removes as many
    components chosen uniformly at random (seeded) from the same decomposition.

    Returns:
        dict of (N,) tensors: ``ff``, ``ff_random``, ``n_selected``.
    """
    X = _inputs(l2i, X)
    out = l2i.inspect(X, batch_size=batch_size)
    n, K = out["z"].shape
    t = l2i.resolve_target(target, n, out["logits"].argmax(1).cpu())
    sel = l2i.relevance_from(out["z"], t) > float(threshold)
    counts = sel.sum(1)
    g = torch.Generator().manual_seed(int(seed))
    rand = torch.zeros_like(sel)
    for i in range(n):
        rand[i, torch.randperm(K, generator=g)[: int(counts[i])]] = True
    p_x = torch.softmax(out["logits"], 1).gather(1, t.view(-1, 1))[:, 0]
    model = l2i.model
    ff, ff_rand = [], []
    with eval_mode(model, freeze=True):
        for s in range(0, n, batch_size):
            xb, hb, tb = X[s : s + batch_size], out["H"][s : s + batch_size], t[s : s + batch_size].view(-1, 1)
            for weights, acc in ((sel, ff), (rand, ff_rand)):
                M = l2i.masks_from(hb, weights[s : s + batch_size]).to(xb.dtype)
                with bound_slice(model, s, s + batch_size):
                    p_out = torch.softmax(model((1 - M) * xb), 1).gather(1, tb)[:, 0]
                acc.append(p_x[s : s + batch_size] - p_out)
    return {"ff": torch.cat(ff).float().cpu(), "ff_random": torch.cat(ff_rand).float().cpu(),
            "n_selected": counts.cpu()}


def ff_median(l2i: Any, X: Any, threshold: float = 0.2, target: TargetType = None, seed: int = 0,
              batch_size: int = 16) -> Dict[str, Any]:
    r"""Faithfulness of L2I interpretations (L2I paper, section 5): FF median vs random components.

    Returns:
        dict: ``ff_median``, ``ff_random_median``, ``ff_mean``, ``ff_random_mean``,
        ``fraction_ff_above_random``, and the per-sample tensors of :func:`component_ff`.
    """
    c = component_ff(l2i, X, threshold, target, seed, batch_size)
    ff_t, ffr_t = c["ff"], c["ff_random"]
    return {
        "ff_median": float(ff_t.median()),
        "ff_random_median": float(ffr_t.median()),
        "ff_mean": float(ff_t.mean()),
        "ff_random_mean": float(ffr_t.mean()),
        "fraction_ff_above_random": float((ff_t > ffr_t).float().mean()),
        **c,
    }


class L2IScorer(Scorer):
    """Top-1/top-3 fidelity, FF median, FF of random components and the number of components of L2I rows."""

    name = "l2i"
    metrics = L2I_METRICS

    def applies(self, ctx: EvalContext) -> bool:
        return ctx.method is not None and hasattr(ctx.method, "inspect") and hasattr(ctx.method, "masks_from")

    def compute(self, ctx: EvalContext) -> Dict[str, np.ndarray]:
        rank = topk_ranks(ctx.method, ctx.X, ctx.batch_size)
        c = component_ff(ctx.method, ctx.X, float(ctx.options.get("threshold", 0.2)), seed=ctx.seed)
        return {
            "top1": (rank < 1).double().numpy(), "top3": (rank < 3).double().numpy(),
            "FF_median": c["ff"].double().numpy(), "FF_rand": c["ff_random"].double().numpy(),
            "n_comp": c["n_selected"].double().numpy(),
        }


register_scorer(L2IScorer())

__all__ = ["L2I_METRICS", "topk_ranks", "topk_fidelity", "component_ff", "ff_median", "L2IScorer"]
