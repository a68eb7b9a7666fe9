r"""Sanity metric: cascading model randomisation (Adebayo et al., 2018, https://arxiv.org/abs/1810.03292).

The classifier's parameterised stages are re-initialised one after the other *from the logits
down* (for :class:`~captum_lmac.nn.CompactCNN`: ``fc``, ``block4``, ``block3``, ... ``bn0``) on a
copy of the model; after each step every method explains the same clips again and the structural
similarity (SSIM) between the original and the new explanation is measured. An explanation that
depends on what the classifier learnt must change (SSIM falls); one that mostly reflects the input
(edge detectors) stays similar. Gradient and CAM methods are recomputed on the randomised copy for
the class the original model chose. A learned explainer (L-MAC) can be checked two ways, and the
benchmark reports both (``sanity.refit``, :mod:`captum_lmac.benchmark.analyses`):

- *decoder fixed* (every stage, cheap): the decoder fitted on the original classifier reads the
  randomised classifier's layers and explains its decision — does the fitted explainer read what
  the classifier learnt? A randomly initialised CNN still passes on the input's local energy, so
  a decoder reading it can keep input-shaped masks;
- *refitted* (the like-with-like comparison with the recomputed gradient methods: the same
  method, fit included, on the randomised classifier): costs a fit per stage, so it is usually run
  at the last stage only (everything randomised). ``only`` restricts a method to some stages.

Read SSIM against its **chance level** (``chance``: SSIM between a clip's original explanation and
another clip's, same method): for sparse masks most bins are ≈ 0 in both maps, and the SSIM
constants make such shared emptiness count as similarity (L-MAC on SyntheticEvents, mask mean 0.05:
two unrelated clips' masks already score ≈ 0.5). Maps are divided by their own maximum first, so a
near-empty map (a refitted decoder on a randomised classifier typically gives mask values ≈ 1e-3)
is compared by its shape, not by its (tiny) level.

SSIM (Wang et al., 2004) is computed per sample on masks divided by their own maximum, with an
11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, data range 1, population covariances, averaged
over the interior where the window fits — the settings of
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import InputError
from .aggregate import aggregate
from .base import Metric, declare

SANITY = declare(
    Metric("SSIM", "SSIM", False, 2, "sanity",
           "similarity of the explanation before and after randomising the classifier (lower = depends on it)"),
)

Explainer = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``explain(model, X, target) -> mask`` (N, 1, F, T): one method recomputed on a (randomised) model."""


def _gaussian_window(size: int, sigma: float, dtype=torch.float64) -> Tensor:
    r = (size - 1) / 2
    x = torch.arange(size, dtype=dtype) - r
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _normalise(a: Tensor) -> Tensor:
    peak = a.flatten(1).amax(dim=1).view(-1, *([1] * (a.dim() - 1)))
    return torch.where(peak > 0, a / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(a))


def ssim(
    a: Tensor,
    b: Tensor,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    normalise: bool = True,
) -> Tensor:
    r"""Per-sample structural similarity of two batches of 2-D maps.

    Args:
        a, b (Tensor): (N, H, W) or (N, 1, H, W) maps of the same shape.
        data_range (float): Range of the values (1 for masks in [0, 1]).
        sigma (float): Standard deviation of the Gaussian window (size 2·round(3.5σ)+1, 11 for 1.5;
            shrunk to the map size for tiny maps).
        k1, k2 (float): SSIM stabilising constants.
        normalise (bool): Divide each map by its own maximum first (all-zero maps stay zero).

    Returns:
        Tensor: (N,) float64 mean SSIM per sample (1 for identical maps).
    """
    if not torch.is_tensor(a) or not torch.is_tensor(b) or a.shape != b.shape:
        shapes = (getattr(a, "shape", a), getattr(b, "shape", b))
        raise InputError(f"ssim needs two tensors of one shape, got {shapes[0]} and {shapes[1]}")
    if a.dim() == 4:
        if a.shape[1] != 1:
            raise InputError(f"ssim compares single-channel maps, got {tuple(a.shape)}")
        a, b = a[:, 0], b[:, 0]
    if a.dim() != 3:
        raise InputError(f"ssim needs (N, H, W) or (N, 1, H, W) maps, got {tuple(a.shape)}")
    x, y = a.detach().double().cpu(), b.detach().double().cpu()
    if normalise:
        x, y = _normalise(x.clamp_min(0)), _normalise(y.clamp_min(0))
    size = 2 * int(3.5 * sigma + 0.5) + 1
    size = min(size, x.shape[1] - (1 - x.shape[1] % 2), x.shape[2] - (1 - x.shape[2] % 2))
    if size < 1:
        raise InputError(f"maps of shape {tuple(x.shape[1:])} are too small for SSIM")
    g = _gaussian_window(size, sigma)
    wh, ww = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def filt(z: Tensor) -> Tensor:  # 'valid' separable Gaussian filter (the interior skimage averages)
        return F.conv2d(F.conv2d(z.unsqueeze(1), wh), ww)[:, 0]

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(dim=1)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _stage_modules(root: nn.Module, prefix: str) -> List[Tuple[str, str]]:
    """``(label, name)`` of ``root``'s parameterised parts in registration order: a ``net`` child is
    opened into its own children, and a part that is the only parameterised one is opened too (a
    wrapper such as ``WaveformClassifier.model`` is not one stage but the network it holds)."""
    children = [(n, c) for n, c in root.named_children() if _has_parameters(c)]
    if len(children) == 1 and any(True for _ in children[0][1].named_children()):
        name, child = children[0]
        return _stage_modules(child, f"{prefix}{name}.")
    out: List[Tuple[str, str]] = []
    for name, child in children:
        if name == "net" and any(_has_parameters(c) for c in child.children()):
            out.extend(_stage_modules(child, f"{prefix}{name}."))
        else:
            out.append((name, prefix + name))
    return out


def randomisation_stages(model: nn.Module) -> List[Tuple[str, List[str]]]:
    """The parameterised stages of a classifier from the logits down: ``[(label, [module names]), ...]``.

    The parameterised children of ``model.net`` and of the model itself, in reverse registration
    order (CompactCNN: ``fc``, ``block4`` … ``block1``, ``bn0``; CNN14: ``fc_audioset``, ``fc1``,
    ``conv_block6`` … ``bn0``); a wrapper around one network (a waveform model's ``model``) is
    opened into that network's parts. For a zero-shot classifier (an ``audio_encoder`` and a text
    tower) only the audio tower is randomised, its projection head first (as in the LMAC-ZS
    paper's check). Names are relative to ``model``.
    """
    audio = getattr(model, "audio_encoder", None)
    root, prefix = (audio, "audio_encoder.") if isinstance(audio, nn.Module) else (model, "")
    stages = [(label, [name]) for label, name in _stage_modules(root, prefix)]
    if not stages:
        raise InputError("the model has no parameterised stages to randomise")
    return stages[::-1]


def randomise_(model: nn.Module, names: Sequence[str], seed: int = 0) -> nn.Module:
    """Re-initialise (in place) every submodule with ``reset_parameters`` under the named modules.

    BatchNorm layers get their initial weights and running statistics back; convolutions and
    linear layers are drawn again from their default initialisation with the given seed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for name in names:
            module = model.get_submodule(name)
            for m in module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
                elif hasattr(m, "reset_running_stats"):
                    m.reset_running_stats()
    return model


def _eval_masks(explain: Explainer, model: nn.Module, X: Tensor, target: Tensor) -> Tensor:
    with torch.enable_grad():
        return explain(model, X, target).detach().float().cpu()


def chance_ssim(masks: Tensor, shifts: int = 3) -> np.ndarray:
    """Per clip, the mean SSIM between its explanation and that of the next ``shifts`` clips (cyclically):
    what an unrelated explanation of the same method and sparsity scores. NaN for a single clip."""
    n = masks.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    k = min(int(shifts), n - 1)
    return np.mean([ssim(masks, masks.roll(j, 0)).numpy() for j in range(1, k + 1)], axis=0)


def cascading_randomisation(
    model: nn.Module,
    X: Tensor,
    explainers: Mapping[str, Explainer],
    seed: int = 0,
    stages: Optional[List[Tuple[str, List[str]]]] = None,
    progress: bool = True,
    only: Optional[Mapping[str, Sequence[int]]] = None,
) -> Dict[str, object]:
    r"""Cascading randomisation: SSIM between the original and randomised explanations, per depth.

    Args:
        model (nn.Module): The classifier (X → logits). It is not modified (a copy is randomised).
        X (Tensor): Clips to explain (N, 1, F, T), in the model's input domain.
        explainers (dict): Method name → ``explain(model, X, target) -> mask``; called with the
            original model first, then with each randomised copy. ``target`` is the original
            model's decision.
        seed (int): Seed of the re-initialisation (stage k uses ``seed + k``).
        stages (list, optional): ``[(label, [module names]), ...]`` from the logits down (default
            :func:`randomisation_stages`).
        progress (bool): Show a progress bar.
        only (dict, optional): Method name → the stage indices (1 = the first randomised stage,
            ``len(stages)`` = everything randomised) at which it is computed (e.g. a method refitted
            on the randomised classifier, at the last stage only); None elsewhere. Default: every stage.

    Returns:
        dict: ``stages`` (labels; the first is ``"none"``), ``methods`` → name →
        ``{"mean", "lo", "hi"}`` lists (one entry per stage, 95 % bootstrap CI; None at stages a
        method skipped), ``per_sample`` (per stage, N values or None) and ``chance`` (mean
        :func:`chance_ssim` of its original explanations), ``decision_unchanged`` (fraction of clips
        whose decision is unchanged per stage), ``n``.

    Examples::

        >>> gc = lambda m, x, t: make_baseline("gradcam", m).attribute(x, t)
        >>> res = cascading_randomisation(model, X, {"gradcam": gc})
        >>> res["methods"]["gradcam"]["mean"][0]
        1.0
    """
    if not explainers:
        raise InputError("give at least one explainer")
    stages = stages if stages is not None else randomisation_stages(model)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        target = model(X).argmax(dim=1)
    only = {name: {int(k) for k in ks} for name, ks in (only or {}).items()}
    unknown = set(only) - set(explainers)
    if unknown:
        raise InputError(f"only names methods without an explainer: {sorted(unknown)}")
    originals = {name: _eval_masks(fn, model, X, target) for name, fn in explainers.items()}
    labels = ["none"]
    per_stage: Dict[str, List[Optional[np.ndarray]]] = {name: [] for name in explainers}
    agreement = [1.0]
    for name in explainers:
        again = _eval_masks(explainers[name], model, X, target)
        per_stage[name].append(ssim(originals[name], again).numpy())
    rand = copy.deepcopy(model).eval()
    bar = tqdm(list(enumerate(stages, start=1)), desc="cascading randomisation", disable=not progress, leave=False)
    for k, (label, names) in bar:
        randomise_(rand, names, seed=seed + k)
        labels.append(label if k == 1 else f"+{label}")
        with torch.no_grad():
            agreement.append(float((rand(X).argmax(dim=1) == target).float().mean()))
        for name, fn in explainers.items():
            if name in only and k not in only[name]:
                per_stage[name].append(None)
                continue
            masks = _eval_masks(fn, rand, X, target)
            per_stage[name].append(ssim(originals[name], masks).numpy())
    model.train(was_training)
    methods = {}
    for name, rows in per_stage.items():
        aggs = [aggregate(r) if r is not None else {"mean": None, "lo": None, "hi": None} for r in rows]
        methods[name] = {
            "mean": [a["mean"] for a in aggs],
            "lo": [a["lo"] for a in aggs],
            "hi": [a["hi"] for a in aggs],
            "per_sample": [None if r is None else [round(float(v), 5) for v in r] for r in rows],
            "chance": float(np.nanmean(chance_ssim(originals[name]))) if X.shape[0] > 1 else None,
        }
    return {"stages": labels, "methods": methods, "decision_unchanged": agreement, "n": int(X.shape[0])}


__all__ = ["SANITY", "ssim", "chance_ssim", "randomisation_stages", "randomise_", "cascading_randomisation"]
