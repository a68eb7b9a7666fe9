"""Contrastive training of the small CLAP (:class:`~captum_lmac.nn.zeroshot.SmallCLAP`), its zero-shot
accuracy, and pickle-free save / load."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._io import load_checkpoint, save_checkpoint
from ..audio import STFT
from ..errors import CheckpointError, InputError
from ..nn.zeroshot import SmallCLAP, TextEncoder, check_prompts, encode_texts


def _spec_augment(feats: Tensor, g: torch.Generator, max_time: float = 0.1, max_freq: float = 0.15) -> Tensor:
    """Random circular time shift plus one time mask and one frequency mask per item (fill: 0 = silence)."""
    n, _, nf, nt = feats.shape
    shifts = torch.randint(0, nt, (n,), generator=g)
    idx = (torch.arange(nt).unsqueeze(0) - shifts.unsqueeze(1)) % nt
    out = torch.gather(feats, 3, idx.view(n, 1, 1, nt).expand_as(feats)).clone()
    for i in range(n):
        wt = int(torch.randint(0, max(1, int(max_time * nt)) + 1, (1,), generator=g))
        t0 = int(torch.randint(0, nt - wt + 1, (1,), generator=g))
        wf = int(torch.randint(0, max(1, int(max_freq * nf)) + 1, (1,), generator=g))
        f0 = int(torch.randint(0, nf - wf + 1, (1,), generator=g))
        out[i, :, :, t0 : t0 + wt] = 0.0
        out[i, :, f0 : f0 + wf, :] = 0.0
    return out


def clap_loss(audio_emb: Tensor, text_emb: Tensor, logit_scale: Tensor, groups: Optional[Tensor] = None) -> Tensor:
    r"""Symmetric InfoNCE of a batch of (audio, caption) pairs (CLIP/CLAP loss).

    ``logits = logit_scale · norm(a) norm(t)ᵀ``; cross-entropy audio→text and text→audio, averaged.
    With ``groups`` (a concept id per pair), pairs of the same concept are all positives (soft
    targets spread uniformly over them) instead of false negatives — needed when a small label
    set makes same-class pairs frequent within a batch.
    """
    a = F.normalize(audio_emb, dim=1)
    t = F.normalize(text_emb, dim=1)
    logits = logit_scale * a @ t.t()
    n = logits.shape[0]
    if groups is None:
        target = torch.eye(n, device=logits.device)
    else:
        g = groups.to(logits.device)
        target = (g.view(-1, 1) == g.view(1, -1)).float()
    target = target / target.sum(1, keepdim=True)
    l_a = torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
    l_t = torch.sum(-target.t() * F.log_softmax(logits.t(), 1), 1).mean()
    return 0.5 * (l_a + l_t)


def train_clap(
    clap: SmallCLAP,
    feats: Tensor,
    captions: Sequence[Union[str, Sequence[str]]],
    groups: Optional[Tensor] = None,
    val: Optional[Tuple[Tensor, Tensor, Sequence[str]]] = None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    augment: bool = True,
    patience: Optional[int] = None,
    seed: int = 0,
    progress: bool = True,
) -> Dict[str, Any]:
    r"""Contrastive training of :class:`SmallCLAP` on precomputed log-mel features and captions.

    Each epoch draws one caption per clip (from its list of paraphrases, seeded), embeds it with
    the frozen base text encoder (cached) and the trainable text projection, and minimises
    :func:`clap_loss` (symmetric InfoNCE with a learnable temperature; same-``groups`` pairs are
    positives). Adam with a cosine learning-rate schedule. With ``val`` the epoch with the best
    zero-shot validation accuracy is kept (ties: the later one).

    Args:
        clap (SmallCLAP): The model (trained in place).
        feats (Tensor): Log-mel features (N, 1, n_mels, T) of the audio tower
            (``clap.audio.features(X)``), precomputed once to save time.
        captions: One caption or a list of captions per clip.
        groups (Tensor, optional): Concept id per clip (N,), see :func:`clap_loss`.
        val (tuple, optional): ``(feats_val, y_val, prompts)``: zero-shot accuracy of
            ``argmax_j t_j·a`` against ``y_val`` with one prompt per class.
        epochs, batch_size, lr, weight_decay: Optimisation. augment (bool): time shift + SpecAugment masks.
        patience (int, optional): Stop after this many epochs without validation gain.
        seed (int): Seed of initialisation-independent randomness (order, captions, augmentation).
        progress (bool): Show a tqdm bar.

    Returns:
        dict: per-epoch ``loss``, ``logit_scale`` (and ``val_acc``), ``best_epoch``, ``seconds``.
    """
    n = feats.shape[0]
    if n < 2 or len(captions) != n:
        raise InputError(f"need at least 2 clips with one caption entry each; got {n} clips and {len(captions)} captions")
    if groups is not None and groups.shape[0] != n:
        raise InputError(f"groups has {groups.shape[0]} entries for {n} clips")
    if not torch.isfinite(feats).all():
        raise InputError("training features contain NaN or infinite values")
    options = [[c] if isinstance(c, str) else list(c) for c in captions]
    for o in options:
        check_prompts(o, "captions")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # embed every distinct caption once with the frozen base encoder
    distinct = list(dict.fromkeys(c for o in options for c in o))
    base = torch.cat([clap.text.base_embeddings(distinct[s : s + 256]) for s in range(0, len(distinct), 256)])
    base_index = {c: i for i, c in enumerate(distinct)}
    params = [p for p in clap.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    hist: Dict[str, Any] = {"loss": [], "logit_scale": []}
    best_acc, best_state, since = -1.0, None, 0
    t0 = time.time()
    bar = tqdm(range(epochs), desc="training CLAP", disable=not progress)
    for epoch in bar:
        clap.train()
        order = torch.randperm(n, generator=g)
        total, seen = 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            if len(idx) < 2:
                continue
            xb = feats[idx]
            if augment:
                xb = _spec_augment(xb, g)
            chosen = [options[int(i)][int(torch.randint(len(options[int(i)]), (1,), generator=g))] for i in idx]
            a = clap.audio.embed_features(xb)
            t = clap.text.proj(base[[base_index[c] for c in chosen]])
            scale = clap.log_scale.exp().clamp(max=SmallCLAP.MAX_LOGIT_SCALE)
            loss = clap_loss(a, t, scale, groups[idx] if groups is not None else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        sched.step()
        hist["loss"].append(total / max(seen, 1))
        hist["logit_scale"].append(clap.logit_scale)
        if val is not None:
            acc = clap_zero_shot_accuracy(clap, val[0], val[1], val[2], features=True)
            hist.setdefault("val_acc", []).append(acc)
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", val_acc=f"{acc:.3f}", scale=f"{clap.logit_scale:.1f}")
            if acc >= best_acc:
                since = 0 if acc > best_acc else since + 1
                best_acc, hist["best_epoch"] = acc, epoch
                best_state = {k: v.detach().clone() for k, v in clap.state_dict().items()}
            else:
                since += 1
            if patience is not None and since >= patience:
                break
        else:
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", scale=f"{clap.logit_scale:.1f}")
    if best_state is not None:
        clap.load_state_dict(best_state)
    else:
        hist["best_epoch"] = len(hist["loss"]) - 1
    clap.eval()
    hist["seconds"] = time.time() - t0
    return hist


@torch.no_grad()
def clap_zero_shot_accuracy(
    clap: SmallCLAP, X: Tensor, y: Tensor, prompts: Sequence[str], features: bool = False, batch_size: int = 64
) -> float:
    """Zero-shot accuracy: fraction of clips whose best-matching prompt is ``prompts[y]``.

    ``X`` is the magnitude (N, 1, F, T), or log-mel features if ``features``.
    """
    was = clap.training
    clap.eval()
    try:
        t = encode_texts(clap.text, prompts)
        embed = clap.audio.embed_features if features else clap.audio
        a = torch.cat([F.normalize(embed(X[s : s + batch_size]), dim=1) for s in range(0, X.shape[0], batch_size)])
        pred = (a @ t.t()).argmax(1)
    finally:
        clap.train(was)
    return float((pred.cpu() == torch.as_tensor(y).cpu()).float().mean())


def save_clap(path: Union[str, Path], clap: SmallCLAP, info: Optional[dict] = None) -> Path:
    """Save a :class:`SmallCLAP` atomically and pickle-free (the frozen MiniLM weights are not stored)."""
    meta = {"stft": clap.stft_config, "config": clap.config(), "info": info or {},
            "text_base": type(clap.text.base).__name__}
    return save_checkpoint(path, "clap", clap.state_dict(), meta)


def load_clap(path: Union[str, Path], text_base: Optional[TextEncoder] = None) -> Tuple[SmallCLAP, STFT, dict]:
    """Load a model saved by :func:`save_clap`. Returns ``(clap, stft, info)`` (eval mode).

    Args:
        path: The checkpoint.
        text_base (callable, optional): The frozen base text encoder it was trained with
            (default: a new :class:`MiniLMTextEncoder`).
    """
    state, meta = load_checkpoint(path, "clap", required=("stft", "config"))
    try:
        stft = STFT(**meta["stft"])
        cfg = dict(meta["config"])
        text_dim = cfg.pop("text_dim")
    except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed stored configuration: {exc!r}") from None
    try:
        clap = SmallCLAP(stft, text_base=text_base, text_dim=text_dim, **cfg)
    except TypeError as exc:
        raise CheckpointError(f"{path}: malformed stored configuration: {exc}") from None
    try:
        clap.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored architecture: {exc}") from None
    clap.eval()
    return clap, stft, meta.get("info", {})



__all__ = ["clap_loss", "train_clap", "clap_zero_shot_accuracy", "save_clap", "load_clap"]
