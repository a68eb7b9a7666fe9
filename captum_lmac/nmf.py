r"""Sparse non-negative matrix factorisation for L2I's spectral dictionary.

L2I (Parekh et al., NeurIPS 2022, https://arxiv.org/abs/2202.11479) explains a classifier with a
dictionary ``W`` (F × K) of non-negative spectral templates learnt beforehand on the log-compressed
magnitudes ``V = log(1 + |X|)`` of the training set. This module learns that dictionary and the
activations ``H`` (K × frames) of new spectrograms on a fixed dictionary.

Objective (the one every update here decreases; frames of all clips are the columns of V)::

    J(W, H) = ½ ‖V − W H‖²_F + β ‖H‖₁,   W ≥ 0, H ≥ 0, ‖w_k‖₂ = 1 for every column k.

Updates, alternated once per iteration, each of which never increases J:

- **H** (W fixed): the multiplicative update of sparse NMF (Hoyer 2002; Eggert & Körner 2004)
  ``H ← H ⊙ WᵀV / (WᵀW H + β)``, the minimiser of a quadratic majoriser of J (Lee & Seung's
  auxiliary function plus the linear ℓ1 term), so J does not increase.
- **W** (H fixed), two choices:

  - ``"exact"`` (default): each column in turn is replaced by the exact minimiser of J over
    non-negative unit-norm vectors with the others fixed. With ``R_k = V − Σ_{j≠k} w_j h_j``,
    ``‖R_k − w h_k‖² = ‖R_k‖² − 2 wᵀ R_k h_kᵀ + ‖h_k‖²`` when ‖w‖ = 1, so the minimiser is
    ``[R_k h_kᵀ]₊ / ‖[R_k h_kᵀ]₊‖`` (a rank-one residue step). J cannot increase, and the
    ℓ1 term is untouched because H does not change.
  - ``"multiplicative"``: the normalisation-aware multiplicative update of Le Roux, Weninger &
    Hershey ("Sparse NMF – half-baked or well done?", 2015) followed by column normalisation. It
    usually decreases J but has no monotonicity proof. (Simply normalising W after a plain
    multiplicative step — the "half-baked" variant — rescales H and can increase the ℓ1 term, which
    is why it is not offered.)

Everything runs on a frames matrix (F × M) in torch: the data terms ``WᵀV`` and ``V Hᵀ`` are two
matrix products per iteration, ``‖V − WH‖²`` is evaluated from ``‖V‖²``, ``VHᵀ`` and ``HHᵀ``
without forming ``WH``, and all-zero frames (digital silence, padding) are dropped, so ESC-10
(240 clips × 513 bins × 431 frames ≈ 10⁵ frames) takes about a second per iteration on two CPU
cores. ``max_frames`` subsamples frames for larger sets.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .errors import InputError

_EPS = 1e-12


def log_magnitude(X: Tensor) -> Tensor:
    """``V = log(1 + |X|)``: the domain L2I's dictionary models."""
    return torch.log1p(X.abs())


def frames_matrix(V: Tensor) -> Tensor:
    """Arrange spectrograms as one (F, M) matrix of frames.

    Accepts (F, M) (already frames), (N, F, T) or (N, 1, F, T); clips are concatenated along time.
    """
    if not torch.is_tensor(V):
        raise InputError(f"V must be a tensor, got {type(V).__name__}")
    if V.dim() == 4:
        if V.shape[1] != 1:
            raise InputError(f"V must have shape (N, 1, F, T), got {tuple(V.shape)}")
        V = V[:, 0]
    if V.dim() == 3:
        V = V.permute(1, 0, 2).reshape(V.shape[1], -1)
    if V.dim() != 2:
        raise InputError(f"V must be (F, frames), (N, F, T) or (N, 1, F, T), got shape {tuple(V.shape)}")
    return V


def _check_nonneg(V: Tensor, name: str) -> None:
    if V.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(V.shape)})")
    if not torch.isfinite(V).all():
        raise InputError(f"{name} contains NaN or infinite values")
    if float(V.min()) < 0:
        raise InputError(
            f"{name} must be non-negative (min {float(V.min()):.4g}); use log_magnitude(X) for a spectrogram"
        )


def normalise_columns(W: Tensor) -> Tensor:
    """Columns of W scaled to unit ℓ2 norm (all-zero columns are left as they are)."""
    return W / W.norm(dim=0, keepdim=True).clamp_min(_EPS)


def _update_h(V: Tensor, W: Tensor, H: Tensor, beta: float, WtW: Optional[Tensor] = None) -> Tensor:
    """One multiplicative ℓ1-penalised update of H (K, M) for V ≈ W H."""
    WtW = W.T @ W if WtW is None else WtW
    return H * (W.T @ V) / (WtW @ H + beta + _EPS)


def _update_w_exact(W: Tensor, VHt: Tensor, HHt: Tensor) -> Tensor:
    """Column-wise exact minimisation over non-negative unit-norm columns (H fixed)."""
    W = W.clone()
    for k in range(W.shape[1]):
        # R_k h_kᵀ = (V Hᵀ)_k − W (H Hᵀ)_k + w_k (H Hᵀ)_kk, with W holding the updated columns j < k.
        g = VHt[:, k] - W @ HHt[:, k] + W[:, k] * HHt[k, k]
        g = g.clamp_min(0)
        n = g.norm()
        if n > _EPS:  # otherwise h_k = 0 or no positive direction: J does not depend on w_k; keep it
            W[:, k] = g / n
    return W


def _update_w_multiplicative(W: Tensor, VHt: Tensor, HHt: Tensor) -> Tensor:
    """Le Roux et al. (2015) normalisation-aware multiplicative update of W, then renormalisation."""
    Wn = normalise_columns(W)
    LHt = Wn @ HHt  # (W H) Hᵀ
    num = VHt + Wn * (LHt * Wn).sum(0, keepdim=True)
    den = LHt + Wn * (VHt * Wn).sum(0, keepdim=True)
    return normalise_columns(Wn * num / (den + _EPS))


def nmf_objective(sq_norm_V: Tensor, W: Tensor, H: Tensor, VHt: Tensor, HHt: Tensor, beta: float) -> float:
    """J = ½‖V − WH‖² + β‖H‖₁ from ‖V‖², V Hᵀ and H Hᵀ (no F × M temporary)."""
    rec = sq_norm_V - 2 * (W * VHt).sum() + ((W.T @ W) * HHt).sum()
    return float(0.5 * rec.clamp_min(0) + beta * H.sum())


def learn_dictionary(
    V: Tensor,
    n_components: int = 100,
    beta: float = 0.1,
    n_iter: int = 200,
    w_update: str = "exact",
    max_frames: Optional[int] = None,
    tol: float = 1e-5,
    seed: int = 0,
    progress: bool = True,
    return_info: bool = False,
) -> Union[Tensor, Tuple[Tensor, Dict[str, Any]]]:
    r"""Learn a sparse NMF dictionary W (F, K) with non-negative unit-norm columns.

    Minimises ``½‖V − W H‖²_F + β‖H‖₁`` over W ≥ 0 with unit-norm columns and H ≥ 0 by
    alternating the multiplicative H update and a W update (see the module docs). W is
    initialised with K distinct random non-silent frames of V (normalised, plus a little positive
    noise so no entry starts at zero), H with the matching constant that equalises the means of V
    and WH.

    Paper (L2I, section 3): https://arxiv.org/abs/2202.11479

    Args:
        V (Tensor): Non-negative data: ``log_magnitude(X)`` of the training spectrograms, as
            (N, 1, F, T), (N, F, T) or a frames matrix (F, M).
        n_components (int): K, the number of spectral templates (L2I: 100 for ESC-50).
        beta (float): ℓ1 penalty on H, relative to the *summed* squared error (0 = plain NMF).
        n_iter (int): Maximum number of iterations (one H and one W update each).
        w_update (str): ``"exact"`` (monotone, default) or ``"multiplicative"`` (Le Roux et al.).
        max_frames (int, optional): Learn on at most this many random frames (seeded).
        tol (float): Stop when the objective's relative decrease over one iteration falls below this.
        seed (int): Seed of the initialisation and of the frame subsample.
        progress (bool): Show a tqdm progress bar.
        return_info (bool): Also return a dict with the per-iteration ``objective``, the final
            ``relative_error`` ‖V − WH‖/‖V‖, ``frames`` used, ``iterations`` and ``seconds``.

    Returns:
        Tensor: W (F, K), float32 on the CPU — or ``(W, info)`` with ``return_info=True``.

    Raises:
        InputError: on negative / non-finite data, K < 1, or fewer non-silent frames than K.

    Examples::

        >>> V = log_magnitude(train_set.X)                 # (N, 1, F, T)
        >>> W = learn_dictionary(V, n_components=100)      # (F, 100)
        >>> H = nmf_activations(log_magnitude(X), W)       # (N, 100, T)
    """
    t0 = time.time()
    if int(n_components) < 1:
        raise InputError(f"n_components must be >= 1, got {n_components}")
    if beta < 0:
        raise InputError(f"beta must be >= 0, got {beta}")
    if int(n_iter) < 1:
        raise InputError(f"n_iter must be >= 1, got {n_iter}")
    if w_update not in ("exact", "multiplicative"):
        raise InputError(f"w_update must be 'exact' or 'multiplicative', got {w_update!r}")
    K = int(n_components)
    M_all = frames_matrix(V).detach()
    _check_nonneg(M_all, "V")
    dtype = M_all.dtype if M_all.dtype == torch.float64 else torch.float32
    gen = torch.Generator().manual_seed(seed)
    active = (M_all.sum(0) > 0).nonzero().flatten()
    if max_frames is not None and len(active) > int(max_frames):
        active = active[torch.randperm(len(active), generator=gen)[: int(max_frames)]].sort().values
    if len(active) < K:
        raise InputError(f"V has {len(active)} non-silent frames, fewer than n_components={K}")
    Vm = M_all[:, active].to(dtype).contiguous()
    F_, M = Vm.shape
    sq_norm = (Vm * Vm).sum()
    init = Vm[:, torch.randperm(M, generator=gen)[:K]]
    W = normalise_columns(normalise_columns(init) + 0.01 * torch.rand(F_, K, generator=gen, dtype=dtype) / F_**0.5)
    H = torch.full((K, M), float(Vm.mean() / (K * W.mean()).clamp_min(_EPS)), dtype=dtype)
    objective = []
    bar = tqdm(range(int(n_iter)), desc="learning NMF dictionary", disable=not progress)
    for _ in bar:
        H = _update_h(Vm, W, H, beta)
        VHt, HHt = Vm @ H.T, H @ H.T
        W = _update_w_exact(W, VHt, HHt) if w_update == "exact" else _update_w_multiplicative(W, VHt, HHt)
        objective.append(nmf_objective(sq_norm, W, H, VHt, HHt, beta))
        if len(objective) > 1:
            rel = (objective[-2] - objective[-1]) / max(abs(objective[-2]), _EPS)
            bar.set_postfix(objective=f"{objective[-1]:.4g}", rel_change=f"{rel:.1e}")
            if 0 <= rel < tol:
                break
    W = W.float().contiguous()
    if not return_info:
        return W
    rec = (sq_norm - 2 * (W.to(dtype) * VHt).sum() + ((W.to(dtype).T @ W.to(dtype)) * HHt).sum()).clamp_min(0)
    info = {
        "objective": objective,
        "relative_error": float((rec / sq_norm.clamp_min(_EPS)).sqrt()),
        "h_mean": float(H.mean()),
        "frames": int(M),
        "iterations": len(objective),
        "n_components": K,
        "beta": float(beta),
        "w_update": w_update,
        "seconds": time.time() - t0,
    }
    return W, info


def nmf_activations(
    V: Tensor,
    W: Tensor,
    beta: float = 0.1,
    n_iter: int = 100,
    H0: Optional[Tensor] = None,
) -> Tensor:
    r"""Activations H ≥ 0 of V on a fixed dictionary W (multiplicative updates, same objective).

    Minimises ``½‖V − W H‖² + β‖H‖₁`` over H only; every clip of a batch is solved at once.

    Args:
        V (Tensor): Non-negative data (N, 1, F, T), (N, F, T) or (F, M).
        W (Tensor): Dictionary (F, K) from :func:`learn_dictionary`.
        beta (float): ℓ1 penalty (use the value the dictionary was learnt with).
        n_iter (int): Number of multiplicative updates.
        H0 (Tensor, optional): Initial activations, the shape of the result; strictly positive
            entries (a zero stays zero under multiplicative updates).

    Returns:
        Tensor: H of shape (N, K, T) for batched input, (K, M) for a frames matrix.
    """
    if not torch.is_tensor(W) or W.dim() != 2:
        raise InputError(f"W must be an (F, K) tensor, got {getattr(W, 'shape', type(W).__name__)}")
    _check_nonneg(W, "W")
    batched = V.dim() in (3, 4)
    Vb = V[:, 0] if V.dim() == 4 else V
    if V.dim() == 4 and V.shape[1] != 1:
        raise InputError(f"V must have shape (N, 1, F, T), got {tuple(V.shape)}")
    if not batched:
        if V.dim() != 2:
            raise InputError(f"V must be (F, frames), (N, F, T) or (N, 1, F, T), got shape {tuple(V.shape)}")
        Vb = V.unsqueeze(0)
    _check_nonneg(Vb, "V")
    if Vb.shape[1] != W.shape[0]:
        raise InputError(f"V has {Vb.shape[1]} frequency bins but W has {W.shape[0]} rows")
    Wd = W.to(Vb.dtype)
    WtW = Wd.T @ Wd
    WtV = torch.einsum("fk,nft->nkt", Wd, Vb)
    if H0 is None:
        scale = Vb.mean() / (W.shape[1] * Wd.mean()).clamp_min(_EPS)
        H = torch.full_like(WtV, float(scale.clamp_min(1e-6)))
    else:
        H = (H0 if batched else H0.unsqueeze(0)).to(Vb.dtype).clone()
        if H.shape != WtV.shape:
            raise InputError(f"H0 has shape {tuple(H.shape)}, expected {tuple(WtV.shape)}")
    for _ in range(int(n_iter)):
        H = H * WtV / (torch.einsum("kj,njt->nkt", WtW, H) + beta + _EPS)
    return H if batched else H[0]
