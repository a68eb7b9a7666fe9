r"""The networks of LMAC-TD (Mancini, Paissan, Ravanelli, Subakan, ICASSP 2025): a learned
time-domain representation, a masker on it and the map ψ from classifier representations.

- :class:`LearnedEncoder` / :class:`LearnedDecoder`: ``Conv1d(1 → C, kernel K, stride S)`` + ReLU and
  ``ConvTranspose1d(C → 1, K, S, no bias)`` (the reference: C 256, K 16, S 8), pretrained as an
  autoencoder (:func:`autoencoder_si_sdr`) and frozen by default;
- :class:`TemporalConvMasker`: the CPU-sized default masker, a stack of dilated depthwise-separable
  temporal convolutions with residuals (Conv-TasNet style) on the (N, C, L) representation;
- :class:`DualPathMasker`: the reference's dual-path transformer (intra-chunk then inter-chunk
  attention, SepFormer-like), sized by its arguments;
- :class:`PsiMap`: hooked classifier representations — 2-D maps (N, C', F', T') or 1-D sequences
  (N, C', T') — projected to C channels and interpolated to the encoder's L frames, summed.

The masker reads ``(1 − α)·Enc(x) + α·ψ(h)`` and outputs a sigmoid mask M (N, C, L).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError


class LearnedEncoder(nn.Module):
    """Waveform (N, samples) → non-negative representation (N, C, L): ``ReLU(Conv1d(1 → C, K, S))``."""

    def __init__(self, channels: int = 256, kernel: int = 16, stride: int = 8) -> None:
        super().__init__()
        if kernel < stride or kernel % stride:
            raise InputError(f"kernel ({kernel}) must be a multiple of stride ({stride}) for an exact overlap-add")
        self.channels, self.kernel, self.stride = int(channels), int(kernel), int(stride)
        self.conv = nn.Conv1d(1, self.channels, self.kernel, stride=self.stride, bias=False)

    def n_frames(self, n_samples: int) -> int:
        """L for a clip of ``n_samples`` (after padding to a whole number of hops)."""
        return (self.padded_length(n_samples) - self.kernel) // self.stride + 1

    def padded_length(self, n_samples: int) -> int:
        """Samples after the zero padding that gives every sample full overlap-add support."""
        core = -(-int(n_samples) // self.stride) * self.stride
        return core + 2 * (self.kernel - self.stride)

    def forward(self, waveform: Tensor) -> Tensor:
        n = waveform.shape[-1]
        pad = self.kernel - self.stride
        x = F.pad(waveform.unsqueeze(1), (pad, self.padded_length(n) - n - pad))
        return F.relu(self.conv(x))


def tight_frame_(encoder: LearnedEncoder, decoder: LearnedDecoder, seed: int = 0) -> None:
    r"""Initialise the encoder / decoder pair as an exact-reconstruction filterbank (in place).

    The analysis filters are ± pairs of the rows of B (C/2 × K), the stack of C/(2K) random
    orthonormal bases of R^K divided by √(C/(2K)) (so Bᵀ B = I), windowed by a periodic √Hann window
    (whose squares overlap-add to 1 at hop K/2); the synthesis filters are the same rows with the
    pair's sign. ReLU(Bf) − ReLU(−Bf) = Bf, so ``decoder(encoder(x)) = x`` exactly: training starts
    from a perfect autoencoder and only has to keep it so.

    Raises:
        InputError: unless the stride is half the kernel and the channels a multiple of 2K.
    """
    k, st, c = encoder.kernel, encoder.stride, encoder.channels
    if st * 2 != k or c % (2 * k):
        raise InputError(f"the tight-frame initialisation needs stride = kernel / 2 and channels a multiple of "
                         f"2·kernel (got kernel {k}, stride {st}, channels {c})")
    g = torch.Generator().manual_seed(int(seed))
    n_bases = c // (2 * k)
    bases = [torch.linalg.qr(torch.randn(k, k, generator=g))[0] for _ in range(n_bases)]
    B = torch.cat(bases, 0) / n_bases ** 0.5  # (C/2, K), Bᵀ B = I
    window = torch.sqrt(0.5 - 0.5 * torch.cos(2 * torch.pi * torch.arange(k) / k))
    filters = torch.cat([B, -B], 0) * window  # (C, K)
    with torch.no_grad():
        encoder.conv.weight.copy_(filters.unsqueeze(1))
        decoder.deconv.weight.copy_(filters.unsqueeze(1))


class LearnedDecoder(nn.Module):
    """Representation (N, C, L) → waveform (N, samples): ``ConvTranspose1d(C → 1, K, S, bias=False)``,
    cropped back to the clip's length."""

    def __init__(self, channels: int = 256, kernel: int = 16, stride: int = 8) -> None:
        super().__init__()
        self.channels, self.kernel, self.stride = int(channels), int(kernel), int(stride)
        self.deconv = nn.ConvTranspose1d(self.channels, 1, self.kernel, stride=self.stride, bias=False)

    def forward(self, h: Tensor, length: int) -> Tensor:
        y = self.deconv(h)[:, 0]
        pad = self.kernel - self.stride
        return y[:, pad : pad + int(length)]


class TemporalConvMasker(nn.Module):
    r"""Dilated temporal convolutions on (N, C, L) → mask logits (N, C, L) (Conv-TasNet-style blocks).

    A 1×1 bottleneck C → B, ``repeats`` × ``blocks`` residual blocks (1×1 B → H, PReLU, GroupNorm,
    depthwise conv of kernel 3 with dilation 2^i, PReLU, GroupNorm, 1×1 H → B), then 1×1 B → C.
    With the defaults (C 256, B 96, H 192, 6 blocks × 2 repeats) ≈ 0.6 M parameters; the receptive
    field is ≈ 2·(2^6 − 1)·2 ≈ 250 frames ≈ 0.13 s at stride 8 and 16 kHz on each side.
    """

    def __init__(self, channels: int = 256, bottleneck: int = 96, hidden: int = 192, blocks: int = 6,
                 repeats: int = 2) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.inp = nn.Conv1d(channels, bottleneck, 1)
        layers: List[nn.Module] = []
        for _ in range(int(repeats)):
            for i in range(int(blocks)):
                d = 2 ** i
                layers.append(nn.Sequential(
                    nn.Conv1d(bottleneck, hidden, 1), nn.PReLU(), nn.GroupNorm(1, hidden),
                    nn.Conv1d(hidden, hidden, 3, padding=d, dilation=d, groups=hidden), nn.PReLU(),
                    nn.GroupNorm(1, hidden), nn.Conv1d(hidden, bottleneck, 1),
                ))
        self.blocks = nn.ModuleList(layers)
        self.out = nn.Sequential(nn.PReLU(), nn.Conv1d(bottleneck, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        z = self.inp(self.norm(h))
        for block in self.blocks:
            z = z + block(z)
        return self.out(z)


class DualPathMasker(nn.Module):
    r"""Dual-path transformer on (N, C, L) → mask logits (N, C, L) (the reference's SepFormer masker).

    The sequence is split into chunks of ``chunk`` frames with 50 % overlap; each of ``repeats``
    blocks runs ``intra_layers`` transformer layers inside every chunk and ``inter_layers`` across
    chunks at each position; overlap-add restores the sequence. Reference sizes: chunk 250, intra 4,
    inter 2, d_model 256 (several M parameters — an option, not the CPU default).
    """

    def __init__(self, channels: int = 256, d_model: int = 128, chunk: int = 250, intra_layers: int = 4,
                 inter_layers: int = 2, heads: int = 4, repeats: int = 1, ff: int = 256) -> None:
        super().__init__()
        self.chunk = int(chunk)
        self.norm = nn.GroupNorm(1, channels)
        self.inp = nn.Conv1d(channels, d_model, 1)

        def stack(n: int) -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
            return nn.TransformerEncoder(layer, int(n), enable_nested_tensor=False)

        self.intra = nn.ModuleList(stack(intra_layers) for _ in range(int(repeats)))
        self.inter = nn.ModuleList(stack(inter_layers) for _ in range(int(repeats)))
        self.out = nn.Sequential(nn.PReLU(), nn.Conv1d(d_model, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        z = self.inp(self.norm(h))  # (N, D, L)
        n, d, length = z.shape
        k, hop = self.chunk, max(1, self.chunk // 2)
        total = max(k, -(-(length - k) // hop) * hop + k) if length > k else k
        z = F.pad(z, (0, total - length))
        chunks = z.unfold(2, k, hop)  # (N, D, S, K)
        s = chunks.shape[2]
        x = chunks.permute(0, 2, 3, 1)  # (N, S, K, D)
        for intra, inter in zip(self.intra, self.inter):
            x = x + intra(x.reshape(n * s, k, d)).reshape(n, s, k, d)
            x = x + inter(x.transpose(1, 2).reshape(n * k, s, d)).reshape(n, k, s, d).transpose(1, 2)
        y = F.fold(x.permute(0, 3, 2, 1).reshape(n, d * k, s), output_size=(1, total), kernel_size=(1, k),
                   stride=(1, hop))[:, :, 0]
        ones = F.fold(torch.ones(1, k, s, device=y.device, dtype=y.dtype), output_size=(1, total),
                      kernel_size=(1, k), stride=(1, hop))[:, :, 0]
        return self.out((y / ones)[..., :length])


class PsiMap(nn.Module):
    r"""ψ: hooked classifier representations → (N, C, L) on the encoder's grid.

    Each representation — a 2-D map (N, C', F', T') (its C'·F' values per frame are one vector) or
    a 1-D sequence (N, C', T') — is projected by a 1×1 convolution to C channels, interpolated
    linearly to L frames and the layers are summed (cropped to the encoder's frame count).

    Args:
        layer_spec (list of dict): ``{"channels", "freqs"}`` per hooked layer (``freqs`` 1 for
            sequences), from :func:`captum_lmac.nn.decoders.layer_shape_spec`.
        channels (int): C, the encoder's channels.
    """

    def __init__(self, layer_spec: Sequence[dict], channels: int = 256) -> None:
        super().__init__()
        self.layer_spec = [dict(s) for s in layer_spec]
        self.proj = nn.ModuleList(nn.Conv1d(s["channels"] * s["freqs"], channels, 1) for s in self.layer_spec)

    def forward(self, feats: Sequence[Tensor], n_frames: int) -> Tensor:
        if len(feats) != len(self.layer_spec):
            raise InputError(f"ψ expects {len(self.layer_spec)} layer outputs, got {len(feats)}")
        out = None
        for i, (h, proj) in enumerate(zip(feats, self.proj)):
            seq = h.flatten(1, 2) if h.dim() == 4 else h  # (N, C'·F', T')
            if seq.shape[1] != proj.in_channels:
                raise InputError(f"hooked layer {i} gives {seq.shape[1]} values per frame but ψ was built for "
                                 f"{proj.in_channels}: is this the classifier it was fitted for?")
            z = F.interpolate(proj(seq), size=int(n_frames), mode="linear", align_corners=False)
            out = z if out is None else out + z
        return out


def autoencoder_si_sdr(encoder: LearnedEncoder, decoder: LearnedDecoder, waveform: Tensor) -> Tensor:
    """Per-clip SI-SDR (dB) of ``decoder(encoder(x))`` against ``x`` (the reconstruction quality)."""
    with torch.no_grad():
        y = decoder(encoder(waveform), waveform.shape[-1])
    x, y = waveform - waveform.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    a = (x * y).sum(-1, keepdim=True) / x.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
    t = a * x
    return 10 * torch.log10(t.pow(2).sum(-1).clamp_min(1e-12) / (y - t).pow(2).sum(-1).clamp_min(1e-12))


MASKERS = {"tcn": TemporalConvMasker, "dual_path": DualPathMasker}
"""Maskers by name (``LMACTD(masker=...)``)."""

__all__ = ["LearnedEncoder", "LearnedDecoder", "TemporalConvMasker", "DualPathMasker", "PsiMap", "MASKERS",
           "autoencoder_si_sdr", "tight_frame_"]
