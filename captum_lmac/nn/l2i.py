"""L2I's networks (Parekh et al., NeurIPS 2022): the interpreter Ψ, the head Θ and the container
holding both with the (fixed) NMF dictionary W. The method itself is :class:`captum_lmac.attr.L2I`."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from .decoders import as_map


class L2IInterpreter(nn.Module):
    r"""Ψ: hooked classifier representations → non-negative component activations H (N, K, T).

    Each hooked output (2-D map (N, C, F', T') or 1-D sequence (N, C, T')) is pooled over its
    frequency axis by a learned full-height convolution (kernel F' × 1: a linear map of the C·F'
    values of a frame to ``hidden`` channels, which keeps *where* in frequency the energy was),
    resampled to the finest time grid among the layers and summed; two temporal convolutions refine
    it; it is then interpolated to the input's T frames and a last temporal convolution gives K
    activations, made non-negative by ReLU (default) or softplus.
    """

    def __init__(
        self, layer_spec: Sequence[dict], n_components: int, hidden: int = 64, activation: str = "relu",
        sequence_layout: str = "NCT",
    ) -> None:
        super().__init__()
        self.layer_spec = [dict(s) for s in layer_spec]
        self.sequence_layout = sequence_layout
        self.activation = activation
        self.pool = nn.ModuleList(nn.Conv2d(s["channels"], hidden, (s["freqs"], 1)) for s in self.layer_spec)
        groups = 4 if hidden % 4 == 0 else 1
        self.refine = nn.Sequential(
            nn.GroupNorm(groups, hidden), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.GroupNorm(groups, hidden), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
        )
        self.out = nn.Conv1d(hidden, n_components, 5, padding=2)
        nn.init.constant_(self.out.bias, 0.05)  # start with every component slightly active (no dead ReLUs)

    def forward(self, feats: Sequence[Tensor], n_frames: int) -> Tensor:
        if len(feats) != len(self.layer_spec):
            raise InputError(f"the interpreter expects {len(self.layer_spec)} layer outputs, got {len(feats)}")
        maps = [as_map(h, self.sequence_layout) for h in feats]
        for i, (m, s) in enumerate(zip(maps, self.layer_spec)):
            if m.shape[1] != s["channels"] or m.shape[2] != s["freqs"]:
                raise InputError(
                    f"hooked layer {i} gives {tuple(m.shape[1:3])} (channels, freqs) but the interpreter was built "
                    f"for ({s['channels']}, {s['freqs']}): is this the classifier it was fitted for?"
                )
        t_grid = max(m.shape[-1] for m in maps)
        acc = None
        for m, pool in zip(maps, self.pool):
            p = pool(m)[:, :, 0]  # (N, hidden, T')
            if p.shape[-1] != t_grid:
                p = F.interpolate(p, size=t_grid, mode="linear", align_corners=False)
            acc = p if acc is None else acc + p
        p = self.refine(acc)
        p = F.interpolate(p, size=int(n_frames), mode="linear", align_corners=False)
        a = self.out(p)
        return F.softplus(a) if self.activation == "softplus" else F.relu(a)


class L2IHead(nn.Module):
    r"""Θ: attention pooling of H over time, then a linear layer K → C.

    Each component k gets its own attention weights over time, ``α_k = softmax_t(a_k(H))`` with
    ``a`` a 1 × 1 convolution across components, so ``z_k = Σ_t α_{k,t} h_{k,t} ≥ 0`` stays in the
    units of H and ``r_k = z_k θ_{c,k}`` is the contribution of component k to class c's logit.
    """

    def __init__(self, n_components: int, n_classes: int) -> None:
        super().__init__()
        self.attention = nn.Conv1d(n_components, n_components, 1)
        self.linear = nn.Linear(n_components, n_classes)

    def pool(self, H: Tensor) -> Tensor:
        """H (N, K, T) → z (N, K)."""
        alpha = torch.softmax(self.attention(H), dim=-1)
        return (alpha * H).sum(-1)

    def forward(self, H: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(logits (N, C), z (N, K))``."""
        z = self.pool(H)
        return self.linear(z), z


class L2INet(nn.Module):
    """Everything L2I learns or needs at attribution time: Ψ, Θ and the (fixed) dictionary W.

    W is a buffer, so it is saved and loaded with the weights but never trained.
    """

    def __init__(
        self, layer_spec: Sequence[dict], n_freqs: int, n_components: int, n_classes: int, hidden: int = 64,
        activation: str = "relu", sequence_layout: str = "NCT",
    ) -> None:
        super().__init__()
        self.layer_spec = [dict(s) for s in layer_spec]
        self.n_freqs, self.n_components, self.n_classes = int(n_freqs), int(n_components), int(n_classes)
        self.hidden, self.activation, self.sequence_layout = int(hidden), activation, sequence_layout
        self.register_buffer("dictionary", torch.zeros(self.n_freqs, self.n_components))
        self.psi = L2IInterpreter(self.layer_spec, self.n_components, self.hidden, activation, sequence_layout)
        self.theta = L2IHead(self.n_components, self.n_classes)

    def config(self) -> dict:
        return dict(
            layer_spec=self.layer_spec, n_freqs=self.n_freqs, n_components=self.n_components,
            n_classes=self.n_classes, hidden=self.hidden, activation=self.activation,
            sequence_layout=self.sequence_layout,
        )

    def forward(self, feats: Sequence[Tensor], n_frames: int) -> Tuple[Tensor, Tensor, Tensor]:
        """Return ``(H (N, K, T), logits (N, C), z (N, K))``."""
        H = self.psi(feats, n_frames)
        logits, z = self.theta(H)
        return H, logits, z

    def reconstruct(self, H: Tensor) -> Tensor:
        """W H: the model of log(1 + |X|), (N, F, T)."""
        return torch.einsum("fk,nkt->nft", self.dictionary, H)



__all__ = ["L2IInterpreter", "L2IHead", "L2INet"]
