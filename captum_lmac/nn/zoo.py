r"""CPU-sized test architectures of the kinds people bring, for tests and the benchmark (issue 10).

Each is realistic by default (0.1–0.7 M parameters) and tiny with a small ``width``; every ReLU is
its own ``nn.ReLU`` module used once (Captum's GuidedBackprop / GuidedGradCam override only
those), and each class names its GradCAM layer in ``cam_layer`` (relative to the network).

======================  ==========================================================  ===============
name                    architecture                                                input
======================  ==========================================================  ===============
``crnn``                :class:`CRNN` — conv blocks on log-mel + bidirectional GRU  spectrogram
``conv1d``              :class:`Conv1DNet` — mel bins as channels, Conv1d over time  spectrogram
``patch_transformer``   :class:`PatchTransformer` — AST-like patches + Transformer  spectrogram
``waveform_cnn``        :class:`WaveformCNN` — own torchaudio log-mel front end      waveform
``streaming``           :class:`StreamingDetector` — 32 ms chunks folded into batch  waveform
``torchscript``         a traced copy of another one (no hooks; ``base=``)           spectrogram
======================  ==========================================================  ===============

:func:`build_architecture` returns the model every method explains (X (N, 1, F, T) → logits):
spectrogram networks inside :class:`~captum_lmac.SpectrogramClassifier` with
:class:`~captum_lmac.LogMel`, waveform networks inside
:class:`~captum_lmac.nn.adapters.WaveformClassifier`; plus an info dict with the GradCAM layer and
suggested decoder layers (dotted names in the returned model, or :class:`~captum_lmac.nn.hooks.Hook`
specs where the output needs reading options).

Training: spectrogram models train with :func:`captum_lmac.training.train_classifier` on X as the
reference CNNs do. Waveform models train on waveforms through their inner network
(``train_classifier(model.model, waveforms, y, augment=False)``): the augmentation of
``train_classifier`` is written for (N, 1, F, T) tensors.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from .hooks import Hook
from ..audio import STFT, LogMel
from ..errors import InputError
from .adapters import WaveformClassifier
from .classifier import SpectrogramClassifier
from .cnn import ConvBlock, band_norm_and_blocks, count_parameters


# --- building blocks --------------------------------------------------------------------------------------------


class ConvBlock1d(nn.Module):
    """conv3-BN-ReLU ×2 then average pooling along time (the 1-D twin of :class:`ConvBlock`)."""

    def __init__(self, in_channels: int, out_channels: int, pool: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool1d(pool) if pool > 1 else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.dropout(self.pool(x))


class LogCompression(nn.Module):
    """log(x + eps): the log of a power mel spectrogram."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x + self.eps)


class TokensToGrid(nn.Module):
    r"""Token sequence (N, P + F'·T', D) → map (N, D, F', T'): drop ``n_prefix`` tokens, unflatten.

    The patch order is that of ``conv(x).flatten(2).transpose(1, 2)`` (frequency-major).
    """

    def __init__(self, n_prefix: int, n_freq: int) -> None:
        super().__init__()
        self.n_prefix = int(n_prefix)
        self.n_freq = int(n_freq)

    def forward(self, tokens: Tensor) -> Tensor:
        patches = tokens[:, self.n_prefix :].transpose(1, 2)
        return patches.reshape(patches.shape[0], patches.shape[1], self.n_freq, -1)


def _time_pool(x: Tensor) -> Tensor:
    """max + mean over the last (time) axis."""
    return x.amax(dim=-1) + x.mean(dim=-1)


def _sinusoid(length: int, dim: int, device: torch.device) -> Tensor:
    """Sinusoidal position codes (length, dim) — any clip length, no parameters."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


# --- spectrogram networks (input: log-mel (N, 1, n_mels, T)) -----------------------------------------------------


class CRNN(nn.Module):
    r"""Convolutional recurrent network: conv blocks on the log-mel, a bidirectional GRU over time.

    ``bn0`` normalises each mel band; ``block1`` … ``blockK`` (:class:`ConvBlock`, 2×2 pooling)
    shrink the grid; the frequency axis is averaged; a batch-first bidirectional ``gru`` reads the
    frame sequence; time max + mean pooling and a linear head give logits. Default ≈ 0.36 M
    parameters (width 32, three blocks).

    Args:
        n_classes (int): Output classes.
        n_mels (int): Mel bands of the input.
        width (int): Channels of the first block (doubling per block).
        n_blocks (int): Conv blocks.
        rnn_hidden (int, optional): GRU size per direction (default: half the last block's channels).
        dropout (float): Dropout after blocks and before the head.

    Attributes:
        cam_layer (str): ``"block{n_blocks}"``, the last conv block (GradCAM layer).
    """

    def __init__(self, n_classes: int, n_mels: int = 64, width: int = 32, n_blocks: int = 3,
                 rnn_hidden: Optional[int] = None, dropout: float = 0.2) -> None:
        super().__init__()
        self.n_blocks = int(n_blocks)
        self.bn0 = nn.BatchNorm2d(n_mels)
        c_in = 1
        for i in range(1, self.n_blocks + 1):
            c = int(width) * 2 ** (i - 1)
            self.add_module(f"block{i}", ConvBlock(c_in, c, (2, 2), dropout=dropout))
            c_in = c
        hidden = int(rnn_hidden) if rnn_hidden else max(2, c_in // 2)
        self.gru = nn.GRU(c_in, hidden, batch_first=True, bidirectional=True)
        self.head_dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden, n_classes)
        self.cam_layer = f"block{self.n_blocks}"
        self.to(memory_format=torch.channels_last)  # as the reference CNNs (captum_lmac.nn.cnn)

    @property
    def blocks(self) -> List[nn.Module]:
        return [getattr(self, f"block{i}") for i in range(1, self.n_blocks + 1)]

    def forward(self, x: Tensor) -> Tensor:
        x = band_norm_and_blocks(self.bn0, self.blocks, x)
        seq, _ = self.gru(x.mean(dim=2).transpose(1, 2))  # (N, T', 2H)
        return self.fc(self.head_dropout(_time_pool(seq.transpose(1, 2))))


class Conv1DNet(nn.Module):
    r"""A 1-D CNN over mel frames: the mel bins are the input channels, convolutions run over time.

    ``bn0`` (BatchNorm1d over mel bins), ``block1`` … ``blockK`` (:class:`ConvBlock1d`, time
    pooling 2), time max + mean pooling, a linear head. Default ≈ 0.49 M parameters
    (width 96, channels 96-96-192-192).

    Args:
        n_classes (int): Output classes.
        n_mels (int): Mel bands (input channels).
        width (int): Channels of the first two blocks (twice that for the others).
        n_blocks (int): Conv blocks.
        dropout (float): Dropout after blocks and before the head.

    Attributes:
        cam_layer (str): ``"block{n_blocks}"`` (a (N, C, T') map: GradCAM over time).
    """

    def __init__(self, n_classes: int, n_mels: int = 64, width: int = 96, n_blocks: int = 4,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.n_blocks = int(n_blocks)
        self.bn0 = nn.BatchNorm1d(n_mels)
        c_in = n_mels
        for i in range(1, self.n_blocks + 1):
            c = int(width) * (1 if i <= 2 else 2)
            self.add_module(f"block{i}", ConvBlock1d(c_in, c, pool=2, dropout=dropout))
            c_in = c
        self.head_dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, n_classes)
        self.cam_layer = f"block{self.n_blocks}"

    @property
    def blocks(self) -> List[nn.Module]:
        return [getattr(self, f"block{i}") for i in range(1, self.n_blocks + 1)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn0(x[:, 0])  # (N, n_mels, T)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.head_dropout(_time_pool(x)))


class PatchTransformer(nn.Module):
    r"""A small Audio-Spectrogram-Transformer-like model (Gong et al., 2021) for the CPU.

    The log-mel (after ``bn0``) is cut into non-overlapping ``patch`` = (mel bands, frames)
    patches by ``patch_embed`` (a strided Conv2d, giving an (F', T') grid), flattened
    frequency-major into tokens, given a learned frequency embedding and a sinusoidal time
    embedding (any clip length), prefixed with a CLS token and read by a batch-first
    ``nn.TransformerEncoder`` (``encoder``; ReLU feed-forward as ``nn.ReLU`` modules). ``grid``
    turns the output tokens back into a (N, D, F', T') map; ``pool="mean"`` (default) averages it
    (then ``grid`` is the GradCAM layer), ``pool="cls"`` uses the CLS token (then use
    ``patch_embed``). Clips are zero-padded to whole patches. Default ≈ 0.41 M parameters.

    Args:
        n_classes (int): Output classes.
        n_mels (int): Mel bands (a multiple of ``patch[0]``).
        width (int): Model dimension D (a multiple of ``heads``).
        depth (int): Transformer layers.
        heads (int): Attention heads.
        patch (tuple of int): Patch size (mel bands, frames).
        pool (str): ``"mean"`` or ``"cls"``.
        dropout (float): Dropout inside the encoder.

    Attributes:
        cam_layer (str): ``"grid"`` (mean pooling) or ``"patch_embed"`` (CLS pooling).
        n_freq_patches (int): F'.
    """

    def __init__(self, n_classes: int, n_mels: int = 64, width: int = 128, depth: int = 3, heads: int = 4,
                 patch: Tuple[int, int] = (16, 4), pool: str = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        if n_mels % patch[0]:
            raise InputError(f"n_mels ({n_mels}) must be a multiple of the patch height ({patch[0]})")
        if width % heads:
            raise InputError(f"width ({width}) must be a multiple of heads ({heads})")
        if pool not in ("mean", "cls"):
            raise InputError(f"pool must be 'mean' or 'cls', got {pool!r}")
        self.patch = (int(patch[0]), int(patch[1]))
        self.pool = pool
        self.width = int(width)
        self.n_freq_patches = n_mels // self.patch[0]
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.patch_embed = nn.Conv2d(1, width, kernel_size=self.patch, stride=self.patch)
        self.freq_pos = nn.Parameter(torch.zeros(1, width, self.n_freq_patches, 1))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.freq_pos, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, activation=nn.ReLU(), batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.grid = TokensToGrid(1, self.n_freq_patches)
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, n_classes)
        self.cam_layer = "grid" if pool == "mean" else "patch_embed"

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn0(x.transpose(1, 2)).transpose(1, 2)
        pad = (-x.shape[-1]) % self.patch[1]
        if pad:
            x = F.pad(x, (0, pad))
        p = self.patch_embed(x) + self.freq_pos  # (N, D, F', T')
        p = p + _sinusoid(p.shape[-1], self.width, p.device).t().unsqueeze(0).unsqueeze(2)
        tokens = torch.cat([self.cls_token.expand(p.shape[0], -1, -1), p.flatten(2).transpose(1, 2)], dim=1)
        out = self.encoder(tokens)
        grid = self.grid(out)
        z = out[:, 0] if self.pool == "cls" else grid.mean(dim=(2, 3))
        return self.fc(self.norm(z))


# --- waveform networks (input: (N, samples)) --------------------------------------------------------------------


class WaveformCNN(nn.Module):
    r"""A waveform classifier with its own torchaudio front end inside (PANNs-style).

    ``frontend`` = ``torchaudio.transforms.MelSpectrogram`` (power) + :class:`LogCompression`;
    then ``bn0``, ``block1`` … ``blockK`` (:class:`ConvBlock`), frequency mean, time max + mean, a
    linear head. Wrap it in :class:`~captum_lmac.nn.adapters.WaveformClassifier` to explain it on
    an STFT magnitude. Default ≈ 0.66 M parameters (width 24, four blocks).

    Args:
        n_classes (int): Output classes.
        sample_rate (int): Sample rate the model expects (checked by WaveformClassifier).
        n_mels (int): Mel bands of the front end.
        n_fft (int, optional): Front-end FFT size (default: ≈ 32 ms, a power of 2).
        hop_length (int, optional): Front-end hop (default: 10 ms).
        width (int): Channels of the first block (doubling per block).
        n_blocks (int): Conv blocks.
        dropout (float): Dropout after blocks.

    Attributes:
        cam_layer (str): ``"block{n_blocks}"``.
    """

    def __init__(self, n_classes: int, sample_rate: int = 16000, n_mels: int = 64, n_fft: Optional[int] = None,
                 hop_length: Optional[int] = None, width: int = 24, n_blocks: int = 4, dropout: float = 0.2) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        n_fft = int(n_fft) if n_fft else 2 ** int(round(math.log2(0.032 * sample_rate)))
        hop = int(hop_length) if hop_length else max(1, sample_rate // 100)
        self.n_blocks = int(n_blocks)
        self.frontend = nn.Sequential(
            torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=2.0),
            LogCompression(),
        )
        self.bn0 = nn.BatchNorm2d(n_mels)
        c_in = 1
        for i in range(1, self.n_blocks + 1):
            c = int(width) * 2 ** (i - 1)
            self.add_module(f"block{i}", ConvBlock(c_in, c, (2, 2), dropout=dropout))
            c_in = c
        self.fc = nn.Linear(c_in, n_classes)
        self.cam_layer = f"block{self.n_blocks}"
        self.to(memory_format=torch.channels_last)  # as the reference CNNs (captum_lmac.nn.cnn)

    @property
    def blocks(self) -> List[nn.Module]:
        return [getattr(self, f"block{i}") for i in range(1, self.n_blocks + 1)]

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise InputError(f"WaveformCNN expects waveforms (N, samples), got shape {tuple(waveform.shape)}")
        x = self.frontend(waveform).contiguous().unsqueeze(1)  # (N, 1, n_mels, frames); see eval_mode on why contiguous
        return self.fc(_time_pool(band_norm_and_blocks(self.bn0, self.blocks, x).mean(dim=2)))


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """Conv1d(k=3) + BatchNorm1d + ReLU."""
    return nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm1d(c_out), nn.ReLU())


class ChunkEmbedding(nn.Module):
    """Per-chunk vector: time mean of a (B, C, t) map, then Linear + ReLU → (B, D)."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, dim)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.fc(x.mean(dim=-1)))


class StreamingDetector(nn.Module):
    r"""A streaming voice-activity / keyword-detector shaped model: chunks folded into the batch.

    The clip (N, samples) is zero-padded to whole ``chunk_ms`` chunks (32 ms = 512 samples at
    16 kHz) and folded into the batch as (N·C, chunk) rows. Per chunk: a log-mel ``frontend``
    (``torchaudio.transforms.MelSpectrogram``, 4 frames + 1 per chunk), ``bn0``, two Conv1d blocks
    over the chunk's frames (``enc1``, ``enc2``: (N·C, D, t)), and ``embed`` (time mean + Linear +
    ReLU: (N·C, D)). The chunk vectors are unfolded to (N, C, D), a causal batch-first ``gru``
    reads them, ``context`` (Conv1d over chunks, (N, H, C)) and max + mean over chunks give clip
    logits. Hooks on ``enc1``/``enc2``/``embed`` see N·C rows: :func:`normalize_output` restores
    (N, D, C·t) and (N, D, C). Default ≈ 0.13 M parameters.

    Args:
        n_classes (int): Output classes.
        sample_rate (int): Sample rate the model expects.
        chunk_ms (float): Chunk length in milliseconds.
        n_mels (int): Mel bands per chunk frame.
        width (int): Channels D of the chunk encoder and size H of the GRU.

    Attributes:
        cam_layer (str): ``"context"`` (batch-consistent (N, H, C) map over chunks).
        chunk (int): Chunk length in samples.
    """

    def __init__(self, n_classes: int, sample_rate: int = 16000, chunk_ms: float = 32.0, n_mels: int = 40,
                 width: int = 96) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.chunk = int(round(sample_rate * chunk_ms / 1000.0))
        if self.chunk < 16:
            raise InputError(
                f"chunk_ms={chunk_ms} gives chunks of {self.chunk} samples at {sample_rate} Hz; need >= 16"
            )
        n_fft = 2 ** int(math.floor(math.log2(self.chunk // 2)))
        self.frontend = nn.Sequential(
            torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=max(1, self.chunk // 4),
                                                 n_mels=n_mels, power=2.0),
            LogCompression(),
        )
        self.bn0 = nn.BatchNorm1d(n_mels)
        self.enc1 = _conv_bn_relu(n_mels, width)
        self.enc2 = _conv_bn_relu(width, width)
        self.embed = ChunkEmbedding(width, width)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.context = _conv_bn_relu(width, width)
        self.fc = nn.Linear(width, n_classes)
        self.cam_layer = "context"

    def n_chunks(self, n_samples: int) -> int:
        """Chunks C of a clip of ``n_samples`` samples (the last one zero-padded)."""
        return max(1, -(-int(n_samples) // self.chunk))

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise InputError(f"StreamingDetector expects waveforms (N, samples), got shape {tuple(waveform.shape)}")
        n, s = waveform.shape
        c = self.n_chunks(s)
        rows = F.pad(waveform, (0, c * self.chunk - s)).reshape(n * c, self.chunk)  # (N·C, chunk)
        z = self.bn0(self.frontend(rows).contiguous())
        e = self.embed(self.enc2(self.enc1(z)))  # (N·C, D)
        seq, _ = self.gru(e.reshape(n, c, -1))  # (N, C, H)
        h = self.context(seq.transpose(1, 2))  # (N, H, C)
        return self.fc(_time_pool(h))


# --- TorchScript ------------------------------------------------------------------------------------------------


def to_torchscript(model: nn.Module, example_inputs: Union[Tensor, Tuple[Tensor, ...]],
                   path: Optional[str] = None) -> torch.jit.ScriptModule:
    r"""A traced TorchScript copy of ``model`` (in eval mode), optionally saved with ``torch.jit.save``.

    Tracing records the operations run on ``example_inputs``: the copy has the same weights and
    gives gradients, but no hookable layers, and eval-mode BatchNorm/Dropout are baked in — train
    the eager model first. Shape-dependent Python control flow is frozen at the example's shape
    (the zoo's ``conv1d`` and ``crnn`` trace to any clip length; ``patch_transformer`` pads to
    whole patches in Python, so its copy is fixed to clips of the example's length).

    Args:
        model (nn.Module): The model (X → logits).
        example_inputs: An input (or tuple of inputs) of the shape to trace with.
        path (str, optional): Where to save the copy.

    Returns:
        torch.jit.ScriptModule: the traced copy.
    """
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about the input-shape checks
            traced = torch.jit.trace(model, example_inputs, check_trace=False)
    finally:
        model.train(was_training)
    if path is not None:
        torch.jit.save(traced, str(path))
    return traced


# --- the registry --------------------------------------------------------------------------------------------------

ArchitectureFactory = Callable[..., Tuple[nn.Module, Dict[str, Any]]]
ARCHITECTURES: Dict[str, ArchitectureFactory] = {}
"""name → factory ``(n_classes, stft, width=None, **kw) -> (model, info)``; see :func:`build_architecture`."""


def register_architecture(name: str, factory: ArchitectureFactory, overwrite: bool = False) -> None:
    """Add an architecture under ``name`` for :func:`build_architecture` (and the benchmark / CLI)."""
    if name in ARCHITECTURES and not overwrite:
        raise InputError(f"architecture {name!r} is already registered; pass overwrite=True to replace it")
    ARCHITECTURES[name] = factory


def _info(name: str, model: nn.Module, kind: str, prefix: str, net: nn.Module, decoder_layers: Sequence[Any],
          **extra: Any) -> Dict[str, Any]:
    cam = getattr(net, "cam_layer", None)
    return {
        "name": name,
        "input": kind,
        "cam_layer": f"{prefix}.{cam}" if cam else None,
        "decoder_layers": list(decoder_layers),
        "parameters": count_parameters(model),
        **extra,
    }


def _spectrogram(name: str, net: nn.Module, stft: STFT, n_mels: int, decoder_layers: Sequence[Any], **extra: Any):
    model = SpectrogramClassifier(LogMel(stft, n_mels=n_mels), net)
    return model, _info(name, model, "spectrogram", "net", net, decoder_layers, **extra)


def _crnn(n_classes: int, stft: STFT, width: Optional[int] = None, n_mels: int = 64, **kw: Any):
    net = CRNN(n_classes, n_mels=n_mels, width=width or 32, **kw)
    layers = [f"net.block{i}" for i in range(1, net.n_blocks + 1)] + ["net.gru"]
    return _spectrogram("crnn", net, stft, n_mels, layers[-4:])


def _conv1d(n_classes: int, stft: STFT, width: Optional[int] = None, n_mels: int = 64, **kw: Any):
    net = Conv1DNet(n_classes, n_mels=n_mels, width=width or 96, **kw)
    return _spectrogram("conv1d", net, stft, n_mels, [f"net.block{i}" for i in range(1, net.n_blocks + 1)][-4:])


def _patch_transformer(n_classes: int, stft: STFT, width: Optional[int] = None, n_mels: int = 64, **kw: Any):
    net = PatchTransformer(n_classes, n_mels=n_mels, width=width or 128, **kw)
    f = net.n_freq_patches
    depth = len(net.encoder.layers)
    tokens = dict(drop_tokens=1, grid=(f, -1))  # CLS first, then the F' x T' patches
    layers: List[Any] = ["net.patch_embed"]
    layers += [Hook(f"net.encoder.layers.{depth - 2}", **tokens)] if depth >= 2 else []
    layers += [Hook("net.encoder", **tokens)]  # the last layer's output
    layers += ["net.grid"] if net.pool == "mean" else []
    return _spectrogram("patch_transformer", net, stft, n_mels, layers[-4:])


def _waveform(name: str, net: nn.Module, stft: STFT, decoder_layers: Sequence[Any], **extra: Any):
    model = WaveformClassifier(net, stft)
    return model, _info(name, model, "waveform", "model", net, decoder_layers, **extra)


def _waveform_cnn(n_classes: int, stft: STFT, width: Optional[int] = None, n_mels: int = 64, **kw: Any):
    net = WaveformCNN(n_classes, sample_rate=stft.sample_rate, n_mels=n_mels, width=width or 24, **kw)
    return _waveform("waveform_cnn", net, stft, [f"model.block{i}" for i in range(1, net.n_blocks + 1)][-4:])


def _streaming(n_classes: int, stft: STFT, width: Optional[int] = None, n_mels: int = 40, **kw: Any):
    net = StreamingDetector(n_classes, sample_rate=stft.sample_rate, n_mels=n_mels, width=width or 96, **kw)
    return _waveform("streaming", net, stft, ["model.enc2", "model.embed", "model.gru", "model.context"],
                     chunk_samples=net.chunk)


def _torchscript(n_classes: int, stft: STFT, width: Optional[int] = None, base: str = "conv1d",
                 example_seconds: float = 1.0, **kw: Any):
    if base == "torchscript" or base not in ARCHITECTURES:
        raise InputError(f"unknown base architecture {base!r} for a TorchScript copy; choose one of "
                         f"{sorted(k for k in ARCHITECTURES if k != 'torchscript')}")
    eager, info = ARCHITECTURES[base](n_classes, stft, width=width, **kw)
    if info["input"] != "spectrogram":
        raise InputError(f"the TorchScript copy is made of a spectrogram model; {base!r} takes waveforms")
    g = torch.Generator().manual_seed(0)
    X, _ = stft.analyze(torch.randn(2, int(example_seconds * stft.sample_rate), generator=g))
    traced = to_torchscript(eager, X)
    return traced, {**info, "name": "torchscript", "base": base, "cam_layer": None, "decoder_layers": [],
                    "parameters": count_parameters(traced)}


for _name, _factory in (("crnn", _crnn), ("conv1d", _conv1d), ("patch_transformer", _patch_transformer),
                        ("waveform_cnn", _waveform_cnn), ("streaming", _streaming), ("torchscript", _torchscript)):
    register_architecture(_name, _factory)


def build_architecture(name: str, n_classes: int, stft: STFT, width: Optional[int] = None,
                       **kw: Any) -> Tuple[nn.Module, Dict[str, Any]]:
    r"""Build a test architecture as the X → logits model every method explains.

    Args:
        name (str): One of :data:`ARCHITECTURES` (``crnn``, ``conv1d``, ``patch_transformer``,
            ``waveform_cnn``, ``streaming``, ``torchscript``).
        n_classes (int): Output classes.
        stft (STFT): The analysis of X (and the sample rate of waveform models).
        width (int, optional): Size knob (first block channels / model dimension); small values
            (4–8) give tiny models for tests. Default: the realistic size.
        **kw: Architecture options (``n_mels``, ``n_blocks``, ``depth``, ``heads``, ``patch``,
            ``pool``, ``chunk_ms``, ``base`` for ``torchscript``, …).

    Returns:
        ``(model, info)``: ``model`` maps X (N, 1, F, T) to logits (a
        :class:`~captum_lmac.SpectrogramClassifier`, a
        :class:`~captum_lmac.nn.adapters.WaveformClassifier` — bind the phase — or a TorchScript
        module); ``info`` has ``name``, ``input`` (``"spectrogram"`` / ``"waveform"``),
        ``cam_layer`` (dotted name in ``model``, None for TorchScript), ``decoder_layers``
        (names or :class:`Hook` specs, shallowest first) and ``parameters``.

    Examples::

        >>> model, info = build_architecture("crnn", 10, STFT(), width=8)
        >>> gradcam = make_baseline("gradcam", model, layer=model.get_submodule(info["cam_layer"]))
    """
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    if not isinstance(stft, STFT):
        raise InputError(f"stft must be a captum_lmac.STFT, got {type(stft).__name__}")
    return ARCHITECTURES[name](n_classes, stft, width=width, **kw)


__all__ = [
    "ConvBlock1d", "LogCompression", "TokensToGrid", "ChunkEmbedding", "CRNN", "Conv1DNet", "PatchTransformer",
    "WaveformCNN", "StreamingDetector", "to_torchscript", "ARCHITECTURES", "register_architecture",
    "build_architecture",
]
