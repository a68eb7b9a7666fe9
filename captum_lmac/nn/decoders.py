"""Mask decoders built from the shapes of the hooked classifier layers.

- :class:`LMACDecoder` — L-MAC's decoder (issue 14): the classifier's representations only, U-Net
  style, 1-D sequences' channels mapped to frequency (:class:`SequenceToMap`), learned ×2
  upsampling to the input's frame rate, a frequency map initialised from the classifier's mel
  filterbank, no bias terms except one global offset.
- :class:`InputMaskDecoder` — for classifiers that cannot be hooked (TorchScript): reads the input only.
- :class:`MaskDecoder` — the former L-MAC decoder (with the input gain path); the base of LMAC-ZS's
  :class:`TextConditionedMaskDecoder`, and what L-MAC checkpoints written before issue 14 load into.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError


def layer_shape_spec(outputs: Sequence[Tensor], sequence_layout: str = "NCT") -> List[dict]:
    """Describe hooked outputs as ``{"channels", "freqs"}`` (``freqs`` 1 for 1-D sequences).

    2-D feature maps are (N, C, F', T'); 1-D sequences are (N, C, T') (``"NCT"``) or (N, T', C)
    (``"NTC"``, e.g. a batch-first recurrent layer).
    """
    spec = []
    for i, h in enumerate(outputs):
        if h.dim() == 4:
            spec.append({"channels": int(h.shape[1]), "freqs": int(h.shape[2])})
        elif h.dim() == 3:
            c = h.shape[2] if sequence_layout == "NTC" else h.shape[1]
            spec.append({"channels": int(c), "freqs": 1})
        else:
            raise InputError(
                f"hooked layer {i} outputs shape {tuple(h.shape)}; the decoder needs (N, C, F', T') maps "
                "or (N, C, T') sequences"
            )
    return spec


def as_map(h: Tensor, sequence_layout: str = "NCT") -> Tensor:
    """Hooked output → (N, C, F', T') map (1-D sequences get F' = 1)."""
    if h.dim() == 3:
        if sequence_layout == "NTC":
            h = h.transpose(1, 2)
        return h.unsqueeze(2)
    return h


class MaskDecoder(nn.Module):
    r"""U-Net-style decoder from classifier representations to a mask on the (F, T) input grid.

    The deepest representation is projected to ``hidden`` channels, upsampled to the next
    shallower one's grid and summed with its projection, refined by a 3×3 conv, and so on up to the
    shallowest layer. A learned linear map along frequency (``F'`` of the shallowest layer → ``F``
    of the input; it learns e.g. the mel → linear-frequency relation) and interpolation along time
    bring it to the input grid, so every frame of any length is covered. Optionally (``use_input``)
    a predicted gain map multiplies the standardised ``log(1 + |x|)`` of the input for fine
    time-frequency detail at no convolution cost. A sigmoid (applied by the caller) gives M in [0, 1].

    Works for 2-D maps (N, C, F', T') and 1-D sequences (N, C, T'), any number of layers.

    Args:
        layer_spec (list of dict): ``{"channels", "freqs"}`` per hooked layer, shallowest first
            (from :func:`layer_shape_spec`).
        out_freqs (int): F of the input to be masked.
        hidden (int): Channels inside the decoder.
        use_input (bool): Modulate by the input spectrogram (an extension of the paper's decoder).
        cond_dim (int, optional): Size of a conditioning vector (LMAC-ZS text embedding) that
            modulates every level by cross-attention; None for an unconditional decoder.
        sequence_layout (str): Layout of 3-D hooked outputs, ``"NCT"`` or ``"NTC"``.
    """

    def __init__(
        self,
        layer_spec: Sequence[dict],
        out_freqs: int,
        hidden: int = 32,
        use_input: bool = True,
        cond_dim: Optional[int] = None,
        sequence_layout: str = "NCT",
    ) -> None:
        super().__init__()
        if not layer_spec:
            raise InputError("the decoder needs at least one layer")
        self.layer_spec = [dict(s) for s in layer_spec]
        self.out_freqs = int(out_freqs)
        self.hidden = int(hidden)
        self.use_input = bool(use_input)
        self.cond_dim = cond_dim
        self.sequence_layout = sequence_layout
        self.proj = nn.ModuleList(nn.Conv2d(s["channels"], hidden, 1) for s in self.layer_spec)
        self.refine = nn.ModuleList(
            nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.GroupNorm(4 if hidden % 4 == 0 else 1, hidden), nn.ReLU())
            for _ in self.layer_spec
        )
        if cond_dim is not None:
            self.cond = nn.ModuleList(CrossAttention(hidden, cond_dim) for _ in self.layer_spec)
        shallow_freqs = self.layer_spec[0]["freqs"]
        # Everything at the full (F, T) grid is kept element-wise: it is large (513 × 431 for a 5 s
        # clip) and convolutions there dominate the cost. The decoder predicts, at the shallowest
        # layer's resolution, a bias map β and (with ``use_input``) a gain map γ; on the input grid
        # the mask logit is β + γ · s(X), with s(X) the per-sample standardised log(1 + |X|), so the
        # mask can follow the fine time-frequency structure of the input.
        self.squeeze = nn.Conv2d(hidden, 2 if self.use_input else 1, 1)
        self.freq_map = nn.Linear(shallow_freqs, self.out_freqs)

    def config(self) -> dict:
        return dict(
            layer_spec=self.layer_spec, out_freqs=self.out_freqs, hidden=self.hidden, use_input=self.use_input,
            cond_dim=self.cond_dim, sequence_layout=self.sequence_layout,
        )

    def forward(self, feats: Sequence[Tensor], x: Tensor, cond: Optional[Tensor] = None) -> Tensor:
        """Return mask logits (N, 1, F, T) for hooked outputs ``feats`` (shallowest first) and input ``x``.

        ``cond`` (N, cond_dim) is the conditioning vector of a conditional decoder.
        """
        if len(feats) != len(self.layer_spec):
            raise InputError(f"decoder expects {len(self.layer_spec)} layer outputs, got {len(feats)}")
        maps = [as_map(h, self.sequence_layout) for h in feats]
        for i, (m, s) in enumerate(zip(maps, self.layer_spec)):
            if m.shape[1] != s["channels"] or m.shape[2] != s["freqs"]:
                raise InputError(
                    f"hooked layer {i} gives {tuple(m.shape[1:3])} (channels, freqs) but the decoder was built for "
                    f"({s['channels']}, {s['freqs']}): is this the classifier it was fitted for?"
                )
        if (self.cond_dim is not None) != (cond is not None):
            raise InputError("a conditioning vector is required exactly when the decoder was built with cond_dim")
        p = None
        for i in reversed(range(len(maps))):  # deepest first
            z = self.proj[i](maps[i])
            if p is not None:
                z = z + F.interpolate(p, size=z.shape[-2:], mode="bilinear", align_corners=False)
            if cond is not None:
                z = self.cond[i](z, cond)
            p = self.refine[i](z)
        T = x.shape[-1]
        p = self.freq_map(self.squeeze(p).transpose(2, 3)).transpose(2, 3)  # (N, 1 or 2, F, T')
        p = F.interpolate(p, size=(self.out_freqs, T), mode="bilinear", align_corners=False)
        if not self.use_input:
            return p
        s = torch.log1p(x.abs())
        mu = s.mean(dim=(2, 3), keepdim=True)
        sd = s.std(dim=(2, 3), keepdim=True).clamp_min(1e-5)
        return p[:, :1] + p[:, 1:] * (s - mu) / sd


class CrossAttention(nn.Module):
    """Every time-frequency position of a map attends to a conditioning vector (LMAC-ZS).

    With a single conditioning token the attention reduces to a gated, position-dependent
    injection: query from the map, key/value from the text embedding, output added to the map.
    """

    def __init__(self, channels: int, cond_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Linear(cond_dim, channels * 2)  # two tokens: the prompt and a learned "null"
        self.v = nn.Linear(cond_dim, channels * 2)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, z: Tensor, cond: Tensor) -> Tensor:
        n, c, f, t = z.shape
        h = self.heads
        q = self.q(z).view(n, h, c // h, f * t)  # (N, h, d, P)
        k = self.k(cond).view(n, 2, h, c // h).permute(0, 2, 1, 3)  # (N, h, 2, d)
        v = self.v(cond).view(n, 2, h, c // h).permute(0, 2, 1, 3)
        att = torch.softmax(torch.einsum("nhkd,nhdp->nhkp", k, q) / (c // h) ** 0.5, dim=2)  # over tokens
        o = torch.einsum("nhkp,nhkd->nhdp", att, v).reshape(n, c, f, t)
        return z + self.out(o)


def _film_hook(module: nn.Module, _inp: Any, out: Tensor) -> Tensor:
    """Forward hook on a decoder level: ``out · (1 + γ(t)) + β(t)`` with the level's FiLM layer.

    The FiLM layer and the current text embedding live in the level module's ``__dict__`` (not as
    submodules), so the hook holds no reference to the decoder and survives ``copy.deepcopy``.
    """
    cond = module.__dict__.get("_film_cond")
    if cond is None:
        return out
    gamma, beta = module.__dict__["_film_layer"](cond).chunk(2, dim=1)
    return out * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class TextConditionedMaskDecoder(MaskDecoder):
    r""":class:`MaskDecoder` with cross-attention **and** FiLM text conditioning.

    The base decoder injects the text embedding by cross-attention before each level's
    ``Conv → GroupNorm → ReLU`` refinement; the GroupNorm removes most of a prompt-dependent offset
    (in particular a global "this prompt is absent from the clip" shift), so on its own the
    conditioning barely steers the mask. In a pilot on the small CLAP (80 ESC-10 clips, 10 epochs,
    λ_1 = 1, one seed) the plain decoder gave mask means 0.034 / 0.047 / 0.053 for the true-class /
    all class / unrelated prompts (correlation with the prompt–audio similarity −0.27); with FiLM
    0.063 / 0.044 / 0.017 (+0.24). A FiLM layer (Perez et al., 2018,
    https://arxiv.org/abs/1709.07871) after every refinement scales and shifts each channel by
    ``(1 + γ(t), β(t))`` — after the normalisation, so it reaches the mask head. γ and β start
    near zero, so the decoder starts as the base one.

    Args: as :class:`MaskDecoder` (``cond_dim`` required); ``film``
    (bool) False leaves the pure cross-attention decoder.
    """

    def __init__(self, layer_spec, out_freqs: int, hidden: int = 32, use_input: bool = True,
                 cond_dim: Optional[int] = None, sequence_layout: str = "NCT", film: bool = True) -> None:
        if cond_dim is None:
            raise InputError("a text-conditioned decoder needs cond_dim (the text embedding size)")
        super().__init__(layer_spec, out_freqs, hidden=hidden, use_input=use_input, cond_dim=cond_dim,
                         sequence_layout=sequence_layout)
        self.use_film = bool(film)
        if self.use_film:
            self.film = nn.ModuleList(nn.Linear(int(cond_dim), 2 * self.hidden) for _ in self.layer_spec)
            for lin, level in zip(self.film, self.refine):
                nn.init.normal_(lin.weight, std=0.02)
                nn.init.zeros_(lin.bias)
                object.__setattr__(level, "_film_layer", lin)
                object.__setattr__(level, "_film_cond", None)
                level.register_forward_hook(_film_hook)

    def config(self) -> dict:
        return {**super().config(), "film": self.use_film}

    def _set_cond(self, cond: Optional[Tensor]) -> None:
        for level in self.refine:
            object.__setattr__(level, "_film_cond", cond)

    def forward(self, feats: Sequence[Tensor], x: Tensor, cond: Optional[Tensor] = None) -> Tensor:
        if not self.use_film:
            return super().forward(feats, x, cond)
        self._set_cond(cond)
        try:
            return super().forward(feats, x, cond)
        finally:
            self._set_cond(None)



# --------------------------------------------------------------------------------------------------
# L-MAC decoders (issue 14)
# --------------------------------------------------------------------------------------------------


def _groups(channels: int) -> int:
    return 4 if channels % 4 == 0 else 1


class ScaleGroupNorm(nn.Module):
    """GroupNorm with a learned per-channel scale and **no** shift: zero in, zero out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.groups = _groups(channels)
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, z: Tensor) -> Tensor:
        return F.group_norm(z, self.groups) * self.weight.view(1, -1, *([1] * (z.dim() - 2)))


def _norm(channels: int, bias: bool) -> nn.Module:
    return nn.GroupNorm(_groups(channels), channels) if bias else ScaleGroupNorm(channels)


def interpolation_matrix(n_out: int, n_in: int) -> Tensor:
    """(n_out, n_in) matrix of 1-D linear interpolation (``align_corners=False``) from n_in to n_out points."""
    eye = torch.eye(int(n_in)).unsqueeze(0)  # (1, n_in, n_in): each column a unit impulse
    return F.interpolate(eye, size=int(n_out), mode="linear", align_corners=False)[0].T.contiguous()


def up_stages_for(in_frames: int, shallow_frames: int, max_stages: int = 4) -> int:
    """Number of ×2 upsampling stages that bring ``shallow_frames`` closest to ``in_frames``."""
    if shallow_frames <= 0 or in_frames <= shallow_frames:
        return 0
    return int(max(0, min(max_stages, round(math.log2(in_frames / shallow_frames)))))


class SequenceToMap(nn.Module):
    r"""A 1-D sequence (N, C, T') → a (N, hidden, F_s, T') map by a learned per-frame channels → frequency map.

    In a classifier that convolves over time with the spectrum in its channels (mel bins as
    ``Conv1d`` channels, a recurrent layer over frames, a transformer's tokens), frequency lives in
    the channels. A 1×1 projection C → rank·F_s per frame, reshaped to (rank, F_s) and mixed to
    ``hidden`` channels, gives the decoder a frequency axis read from the representation itself
    (rather than one row broadcast over frequency, which can only give masks constant along frequency).
    """

    def __init__(self, channels: int, hidden: int, freqs: int, rank: int = 8, bias: bool = True) -> None:
        super().__init__()
        self.freqs, self.rank = int(freqs), int(rank)
        self.to_freq = nn.Conv1d(int(channels), self.rank * self.freqs, 1, bias=bias)
        self.mix = nn.Conv2d(self.rank, int(hidden), 1, bias=bias)

    def forward(self, h: Tensor) -> Tensor:
        n, _, t = h.shape
        return self.mix(self.to_freq(h).view(n, self.rank, self.freqs, t))


class SeparableBlock(nn.Module):
    """Depthwise 3×3 conv + pointwise conv + GroupNorm + ReLU (a cheap 3×3 conv stage)."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=bias)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=bias)
        self.norm = _norm(c_out, bias)
        self.act = nn.ReLU()

    def forward(self, z: Tensor) -> Tensor:
        return self.act(self.norm(self.pw(self.dw(z))))


class UpStage(nn.Module):
    """Learned ×2 upsampling: a transposed conv (kernel 4, stride 2 in time; the same in frequency
    when ``double_freqs``, else kernel 3, stride 1) to an exact output size, GroupNorm, ReLU."""

    def __init__(self, c_in: int, c_out: int, double_freqs: bool = True, bias: bool = True) -> None:
        super().__init__()
        kf, sf = (4, 2) if double_freqs else (3, 1)
        self.conv = nn.ConvTranspose2d(c_in, c_out, (kf, 4), stride=(sf, 2), padding=(1, 1), bias=bias)
        self.norm = _norm(c_out, bias)
        self.act = nn.ReLU()

    def forward(self, z: Tensor, size: Tuple[int, int]) -> Tensor:
        sf, kf = self.conv.stride[0], self.conv.kernel_size[0]
        lo = ((z.shape[2] - 1) * sf - 2 + kf, 2 * z.shape[3])  # smallest reachable (rows, frames)
        if lo[0] <= size[0] <= lo[0] + sf - 1 and lo[1] <= size[1] <= lo[1] + 1:
            z = self.conv(z, output_size=list(size))
        else:  # sizes a transposed conv cannot reach exactly: take the nearest and interpolate
            z = F.interpolate(self.conv(z), size=tuple(size), mode="bilinear", align_corners=False)
        # GroupNorm of a channels-last map with few channels is ~5x slower than of a contiguous one
        return self.act(self.norm(z.contiguous()))


class LMACDecoder(nn.Module):
    r"""L-MAC decoder: the classifier's representations → mask logits on the (F, T) input grid.

    * Every hooked layer is projected to ``hidden`` channels: 2-D maps (N, C, F', T') by a 1×1
      conv; 1-D sequences (N, C, T') — and maps whose frequency axis was pooled to one row — by
      :class:`SequenceToMap` (a learned per-frame channels → ``seq_freqs`` frequency rows map: in
      a 1-D conv over mel frames the channels carry the spectrum).
    * U-Net style from the deepest layer to the shallowest: upsample, add, depthwise-separable
      3×3 conv, GroupNorm, ReLU.
    * ``up_stages`` learned ×2 upsampling stages (transposed convs; few channels on the last one)
      from the shallowest layer's grid to the input's frame rate; 2-D maps double their frequency
      rows as well (up to ``freq_cap``). Every frame of any length is covered exactly (the stage
      sizes are derived from T at run time).
    * A 1×1 head to one channel, a learned linear map along frequency (rows → F, initialised from
      ``freq_init`` — :class:`~captum_lmac.LMAC` passes the classifier's mel filterbank — else
      linear interpolation) and one global offset.

    It reads the classifier's representations only (as in the paper; the input ``x`` only sets the
    number of frames) and by default (``bias=False``) has no additive terms except the global
    offset: all-zero representations give a spatially uniform mask, so no clip-independent
    template (e.g. a fixed frequency profile) can pass for an explanation. ``use_input`` restores
    the former gain path (mask logit β + γ·s(X), s the per-clip standardised log(1 + |X|)) — for
    ablations only: it makes the mask follow the input's energy whatever the classifier does and
    fails the randomisation check (issue 14).

    Args:
        layer_spec (list of dict): ``{"channels", "freqs"}`` per layer, shallowest first
            (:func:`layer_shape_spec`; ``freqs`` 1 marks a 1-D sequence).
        out_freqs (int): F of the input to be masked.
        hidden (int): Channels of the U-Net levels.
        up_stages (int): ×2 upsampling stages after the shallowest level (:func:`up_stages_for`).
        seq_freqs (int): Frequency rows given to 1-D sequences.
        seq_rank (int): Rank of the channels → frequency projection of 1-D sequences.
        freq_cap (int): Upsampling stages double the frequency rows of 2-D maps up to this number.
        use_input (bool): The former input gain path (ablation only).
        bias (bool): Allow bias terms (ablation: lets the decoder hold a clip-independent template).
        freq_init (Tensor, optional): (out_freqs, rows) initial frequency map (not stored in the
            configuration: the weights are).

    Examples::

        >>> dec = LMACDecoder([{"channels": 8, "freqs": 40}, {"channels": 16, "freqs": 20}], 513, up_stages=1)
        >>> dec([torch.randn(2, 8, 40, 215), torch.randn(2, 16, 20, 107)], torch.rand(2, 1, 513, 431)).shape
        torch.Size([2, 1, 513, 431])
    """

    arch = "lmac-v2"

    def __init__(
        self,
        layer_spec: Sequence[dict],
        out_freqs: int,
        hidden: int = 32,
        up_stages: int = 0,
        seq_freqs: int = 40,
        seq_rank: int = 8,
        freq_cap: int = 128,
        use_input: bool = False,
        bias: bool = False,
        freq_init: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        if not layer_spec:
            raise InputError("LMACDecoder needs at least one layer (InputMaskDecoder reads the input without layers)")
        self.layer_spec = [{"channels": int(s["channels"]), "freqs": int(s["freqs"])} for s in layer_spec]
        self.out_freqs, self.hidden = int(out_freqs), int(hidden)
        self.up_stages, self.seq_freqs, self.seq_rank = int(up_stages), int(seq_freqs), int(seq_rank)
        self.freq_cap, self.use_input, self.bias = int(freq_cap), bool(use_input), bool(bias)
        # a layer with one frequency row (a 1-D sequence, or a map whose frequency axis was pooled
        # away) carries its spectral information in the channels
        self.is_seq = [s["freqs"] == 1 for s in self.layer_spec]
        self.proj = nn.ModuleList(
            SequenceToMap(s["channels"], hidden, self.seq_freqs, self.seq_rank, bias=self.bias) if seq
            else nn.Conv2d(s["channels"], hidden, 1, bias=self.bias)
            for s, seq in zip(self.layer_spec, self.is_seq)
        )
        self.refine = nn.ModuleList(SeparableBlock(hidden, hidden, bias=self.bias) for _ in self.layer_spec)
        rows = self.seq_freqs if self.is_seq[0] else self.layer_spec[0]["freqs"]
        n_out = 2 if self.use_input else 1
        self.stage_rows: List[int] = []
        chans, ups = [self.hidden], []
        for k in range(self.up_stages):
            double = not self.is_seq[0] and 2 * rows <= self.freq_cap  # sequences keep seq_freqs rows
            rows = 2 * rows if double else rows
            self.stage_rows.append(rows)
            last = k == self.up_stages - 1
            c_out = max(8, self.hidden // 4) if last else max(8, chans[-1] // 2)  # few channels on the full grid
            ups.append(UpStage(chans[-1], c_out, double_freqs=double, bias=self.bias))
            chans.append(c_out)
        self.rows = rows
        self.up = nn.ModuleList(ups)
        self.head = nn.Parameter(torch.empty(n_out, chans[-1]))
        nn.init.kaiming_uniform_(self.head, a=math.sqrt(5))  # what a 1×1 Conv2d would start with
        self.offset = nn.Parameter(torch.zeros(n_out))  # one global offset per output channel
        self.freq_map = nn.Linear(rows, self.out_freqs, bias=self.bias)
        with torch.no_grad():
            self.set_freq_map(freq_init if freq_init is not None else interpolation_matrix(self.out_freqs, rows))
            if self.bias:
                self.freq_map.bias.zero_()
        self.to(memory_format=torch.channels_last)  # its convolutions' native CPU layout (as the reference CNNs')

    def set_freq_map(self, weight: Tensor) -> None:
        """Set the rows → F frequency map (``(out_freqs, rows)``), e.g. from a mel filterbank."""
        if tuple(weight.shape) != (self.out_freqs, self.rows):
            raise InputError(f"the frequency map must be ({self.out_freqs}, {self.rows}), got {tuple(weight.shape)}")
        with torch.no_grad():
            self.freq_map.weight.copy_(weight)

    def config(self) -> dict:
        return dict(arch=self.arch, layer_spec=self.layer_spec, out_freqs=self.out_freqs, hidden=self.hidden,
                    up_stages=self.up_stages, seq_freqs=self.seq_freqs, seq_rank=self.seq_rank,
                    freq_cap=self.freq_cap, use_input=self.use_input, bias=self.bias)

    def _maps(self, feats: Sequence[Tensor]) -> List[Tensor]:
        if len(feats) != len(self.layer_spec):
            raise InputError(f"decoder expects {len(self.layer_spec)} layer outputs, got {len(feats)}")
        out = []
        for i, (h, s, seq) in enumerate(zip(feats, self.layer_spec, self.is_seq)):
            if h.dim() == 4 and seq and h.shape[2] == 1:
                h = h[:, :, 0]
            if h.dim() not in (3, 4):
                raise InputError(f"hooked layer {i} gives shape {tuple(h.shape)}; expected (N, C, F', T') or (N, C, T')")
            got = (int(h.shape[1]), 1 if h.dim() == 3 else int(h.shape[2]))
            if got != (s["channels"], s["freqs"]):
                raise InputError(
                    f"hooked layer {i} gives {got} (channels, freqs) but the decoder was built for "
                    f"({s['channels']}, {s['freqs']}): is this the classifier it was fitted for?"
                )
            out.append(h)
        return out

    def forward(self, feats: Sequence[Tensor], x: Tensor) -> Tensor:
        """Mask logits (N, 1, F, T) for hooked outputs ``feats`` (shallowest first); ``x`` sets T."""
        maps = self._maps(feats)
        p = None
        for i in reversed(range(len(maps))):  # deepest first
            z = self.proj[i](maps[i])
            if p is not None:
                z = z + F.interpolate(p, size=z.shape[-2:], mode="bilinear", align_corners=False)
            p = self.refine[i](z)
        T = int(x.shape[-1])
        for k, stage in enumerate(self.up):
            frames = -(-T // 2 ** (self.up_stages - 1 - k))  # the last stage lands exactly on T
            p = stage(p, (self.stage_rows[k], frames))
        # the 1×1 head as a weighted channel sum (cheaper on CPUs than a 1×1 conv to one channel or a
        # permuting einsum), then rows → F as one batched matrix product, no transposes
        p = torch.stack([(p * w.view(1, -1, 1, 1)).sum(1) for w in self.head], 1)  # (N, 1|2, rows, T'')
        p = torch.matmul(self.freq_map.weight, p)  # (N, 1|2, F, T'')
        if self.freq_map.bias is not None:
            p = p + self.freq_map.bias.view(1, 1, -1, 1)
        p = p + self.offset.view(1, -1, 1, 1)
        if p.shape[-1] != T:
            p = F.interpolate(p, size=(self.out_freqs, T), mode="bilinear", align_corners=False)
        if not self.use_input:
            return p
        s = torch.log1p(x.abs())
        s = (s - s.mean(dim=(2, 3), keepdim=True)) / s.std(dim=(2, 3), keepdim=True).clamp_min(1e-5)
        return p[:, :1] + p[:, 1:] * s


class InputMaskDecoder(nn.Module):
    r"""Mask decoder that reads only the input spectrogram (for classifiers that cannot be hooked).

    log(1 + |X|) is compressed along frequency by a learned filterbank (F → ``bands``, initialised
    to averaging neighbouring bins), standardised per clip, passed through a small conv
    encoder–decoder (three levels, stride-2 downsampling, skip connections) and expanded back to F
    by a learned linear map. The classifier enters only through the L-MAC loss: this decoder cannot
    see what the classifier computes, so a randomisation check with the decoder kept fixed is
    meaningless for it (its output does not change) — refit it on the randomised classifier.

    Args:
        out_freqs (int): F of the input.
        bands (int): Frequency rows inside the decoder.
        channels (tuple of 3 ints): Widths of the three levels.
    """

    arch = "input-only"

    def __init__(self, out_freqs: int, bands: int = 64, channels: Sequence[int] = (8, 16, 32)) -> None:
        super().__init__()
        self.out_freqs, self.bands = int(out_freqs), int(bands)
        self.channels = tuple(int(c) for c in channels)
        if len(self.channels) != 3:
            raise InputError(f"InputMaskDecoder needs three channel widths, got {list(self.channels)}")
        c0, c1, c2 = self.channels
        block = lambda a, b, **kw: [nn.Conv2d(a, b, 3, **kw), nn.GroupNorm(_groups(b), b), nn.ReLU()]
        self.fbank = nn.Linear(self.out_freqs, self.bands, bias=False)
        self.enc0 = nn.Sequential(*block(1, c0, padding=1))
        self.enc1 = nn.Sequential(*block(c0, c1, stride=2, padding=1))
        self.enc2 = nn.Sequential(*block(c1, c2, stride=2, padding=1), *block(c2, c2, padding=2, dilation=2))
        self.dec1 = nn.Sequential(*block(c2 + c1, c1, padding=1))
        self.dec0 = nn.Sequential(*block(c1 + c0, c0, padding=1))
        self.head = nn.Conv2d(c0, 1, 1)
        self.unbank = nn.Linear(self.bands, self.out_freqs)
        with torch.no_grad():
            down = interpolation_matrix(self.bands, self.out_freqs)
            self.fbank.weight.copy_(down / down.sum(1, keepdim=True).clamp_min(1e-8))
            self.unbank.weight.copy_(interpolation_matrix(self.out_freqs, self.bands))
            self.unbank.bias.zero_()
        self.layer_spec: List[dict] = []

    def config(self) -> dict:
        return dict(arch=self.arch, out_freqs=self.out_freqs, bands=self.bands, channels=list(self.channels))

    def forward(self, feats: Sequence[Tensor], x: Tensor) -> Tensor:
        """Mask logits (N, 1, F, T) from the input ``x`` alone (``feats`` must be empty)."""
        if len(feats):
            raise InputError(f"the input-only decoder takes no layer outputs, got {len(feats)}")
        s = self.fbank(torch.log1p(x.abs()).transpose(2, 3)).transpose(2, 3)  # (N, 1, bands, T)
        s = (s - s.mean(dim=(2, 3), keepdim=True)) / s.std(dim=(2, 3), keepdim=True).clamp_min(1e-5)
        e0 = self.enc0(s)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        up = lambda z, ref: F.interpolate(z, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up(e2, e1), e1], 1))
        d0 = self.dec0(torch.cat([up(d1, e0), e0], 1))
        return self.unbank(self.head(d0).transpose(2, 3)).transpose(2, 3)


def build_lmac_decoder(config: dict) -> nn.Module:
    """The L-MAC decoder a stored ``config()`` describes (:class:`LMACDecoder`, :class:`InputMaskDecoder`,
    or — for checkpoints written before issue 14, which have no ``arch`` — :class:`MaskDecoder`)."""
    d = dict(config)
    arch = d.pop("arch", None)
    if arch == LMACDecoder.arch:
        return LMACDecoder(**d)
    if arch == InputMaskDecoder.arch:
        return InputMaskDecoder(**d)
    if arch is not None:
        raise InputError(f"unknown L-MAC decoder architecture {arch!r}")
    return MaskDecoder(d["layer_spec"], d["out_freqs"], hidden=d["hidden"], use_input=d["use_input"])


__all__ = ["layer_shape_spec", "as_map", "MaskDecoder", "CrossAttention", "TextConditionedMaskDecoder",
           "LMACDecoder", "InputMaskDecoder", "SequenceToMap", "SeparableBlock", "UpStage", "ScaleGroupNorm",
           "interpolation_matrix", "up_stages_for", "build_lmac_decoder"]
