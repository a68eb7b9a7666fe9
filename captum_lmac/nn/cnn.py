"""Reference classifiers: a compact PANNs-style CNN and the CNN14 architecture (Kong et al., 2020).

Both take log-mel features (N, 1, n_mels, T) and return logits. Every ReLU is its own
``nn.ReLU`` module used once and never in place, so Captum's GuidedBackprop / GuidedGradCam can
override them. Block outputs (``block1`` … ``blockK``) are the natural layers to hand to
L-MAC / L2I decoders and to GradCAM.

The convolutional stacks keep their weights and activations channels-last
(``torch.channels_last``), oneDNN's native layout on CPUs: no layout conversion around every
convolution, pooling and batch norm (the compact CNN's forward ≈1.7× faster on 2 cores, same
outputs to float rounding). A model loaded from a state dict keeps it (``load_state_dict``
copies into the existing tensors); a saved state is written contiguous.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor, nn


class ConvBlock(nn.Module):
    """conv3x3-BN-ReLU ×2 followed by average pooling (PANNs ``ConvBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, pool: Tuple[int, int] = (2, 2), dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool2d(pool) if tuple(pool) != (1, 1) else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.dropout(self.pool(x))


def band_norm_and_blocks(bn0: nn.Module, blocks: Sequence[nn.Module], x: Tensor) -> Tensor:
    """``bn0`` per mel band of a log-mel (N, 1, n_mels, T), then the conv blocks on a channels-last grid."""
    x = bn0(x.transpose(1, 2)).transpose(1, 2).contiguous(memory_format=torch.channels_last)
    for block in blocks:
        x = block(x)
    return x


def _global_pool(x: Tensor) -> Tensor:
    """PANNs pooling: mean over frequency, then max + mean over time → (N, C)."""
    x = x.mean(dim=2)
    return x.amax(dim=2) + x.mean(dim=2)


class CompactCNN(nn.Module):
    r"""A small PANNs-style CNN for CPU training (default ~0.4 M parameters).

    ``bn0`` normalises each mel band, ``block1`` … ``blockK`` halve the time-frequency grid, then
    frequency-mean / time-(max+mean) pooling and a linear head.

    Args:
        n_classes (int): Number of output classes.
        n_mels (int): Number of mel bands of the input.
        channels (sequence of int): Output channels of each block (one block per entry).
        dropout (float): Dropout after every block and before the head.

    Examples::

        >>> net = CompactCNN(n_classes=10, n_mels=80)
        >>> net(torch.randn(2, 1, 80, 120)).shape
        torch.Size([2, 10])
    """

    def __init__(self, n_classes: int, n_mels: int = 80, channels: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.2) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_mels = int(n_mels)
        self.channels = tuple(int(c) for c in channels)
        self.bn0 = nn.BatchNorm2d(n_mels)
        c_in = 1
        for i, c in enumerate(self.channels, start=1):
            self.add_module(f"block{i}", ConvBlock(c_in, c, (2, 2), dropout=dropout))
            c_in = c
        self.head_dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, n_classes)
        self.to(memory_format=torch.channels_last)

    def config(self) -> dict:
        return dict(n_classes=self.n_classes, n_mels=self.n_mels, channels=list(self.channels))

    @property
    def blocks(self) -> list:
        """The convolutional blocks, shallowest first."""
        return [getattr(self, f"block{i}") for i in range(1, len(self.channels) + 1)]

    def embed(self, x: Tensor) -> Tensor:
        """Log-mel (N, 1, n_mels, T) → pooled embedding (N, channels[-1])."""
        return _global_pool(band_norm_and_blocks(self.bn0, self.blocks, x))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.head_dropout(self.embed(x)))


class CNN14(nn.Module):
    r"""The PANNs CNN14 architecture (Kong et al., 2020, https://arxiv.org/abs/1912.10211).

    Six conv blocks (64 … 2048 channels; 2×2 average pooling after blocks 1-5), a 2048-d
    embedding layer ``fc1`` and a linear head. With 527 classes it has ~80.7 M parameters, the
    published size. Blocks are named ``conv_block1`` … ``conv_block6`` like the PANNs checkpoints,
    so a PANNs state dict loads with :meth:`load_panns_state_dict`.

    Args:
        n_classes (int): Output classes (527 for AudioSet checkpoints).
        n_mels (int): Mel bands (64 in PANNs, 80 in the SpeechBrain L-MAC recipe).
        dropout (float): Dropout after blocks and the embedding (0.2 in PANNs).

    Examples::

        >>> net = CNN14(n_classes=50, n_mels=80)
        >>> net(torch.randn(1, 1, 80, 101)).shape
        torch.Size([1, 50])
    """

    CHANNELS = (64, 128, 256, 512, 1024, 2048)

    def __init__(self, n_classes: int = 527, n_mels: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_mels = int(n_mels)
        self.bn0 = nn.BatchNorm2d(n_mels)
        c_in = 1
        for i, c in enumerate(self.CHANNELS, start=1):
            pool = (2, 2) if i < len(self.CHANNELS) else (1, 1)
            self.add_module(f"conv_block{i}", ConvBlock(c_in, c, pool, dropout=dropout))
            c_in = c
        self.fc1 = nn.Linear(2048, 2048)
        self.relu_fc1 = nn.ReLU()
        self.emb_dropout = nn.Dropout(dropout)
        self.fc_audioset = nn.Linear(2048, n_classes)
        self.to(memory_format=torch.channels_last)

    def config(self) -> dict:
        return dict(n_classes=self.n_classes, n_mels=self.n_mels)

    @property
    def blocks(self) -> list:
        return [getattr(self, f"conv_block{i}") for i in range(1, len(self.CHANNELS) + 1)]

    def embed(self, x: Tensor) -> Tensor:
        x = _global_pool(band_norm_and_blocks(self.bn0, self.blocks, x))
        return self.emb_dropout(self.relu_fc1(self.fc1(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_audioset(self.embed(x))

    def load_panns_state_dict(self, state_dict: dict, strict: bool = False) -> list:
        """Load a PANNs ``Cnn14`` state dict (``model`` entry of the released checkpoint).

        The spectrogram/log-mel extractor buffers of the PANNs file are skipped (our features
        come from :class:`~captum_lmac.LogMel`); a head with a different number of classes is
        skipped too. Returns the list of keys that were not loaded.
        """
        own = self.state_dict()
        loadable = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
        self.load_state_dict(loadable, strict=False)
        missing = sorted(set(own) - set(loadable))
        if strict and missing:
            raise KeyError(f"PANNs state dict lacks {missing[:5]}")
        return missing


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
