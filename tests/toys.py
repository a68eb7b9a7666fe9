"""Toy models shared by several test modules (importable: ``pythonpath = tests`` in pyproject.toml)."""

import zlib

import torch
from torch import nn

DIM = 16

#: Tiny settings of every test architecture of ``captum_lmac.nn.zoo`` (build_architecture keyword arguments).
TINY_ARCHITECTURES = {
    "crnn": dict(width=4, n_mels=16),
    "conv1d": dict(width=8, n_mels=16),
    "patch_transformer": dict(width=8, n_mels=16, depth=2, heads=2, patch=(4, 4)),
    "waveform_cnn": dict(width=4, n_mels=16),
    "streaming": dict(width=8, n_mels=16),
    "torchscript": dict(width=8, n_mels=16, base="conv1d"),
}


class WordVectors:
    """Deterministic toy text encoder: the mean of one fixed random vector per word."""

    def __init__(self, dim: int = DIM, salt: int = 0) -> None:
        self.dim = dim
        self.salt = salt
        self.calls = 0  # how many times texts were encoded (prompt caching is checked with it)

    def _word(self, w: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(w.encode()) + self.salt)
        return torch.randn(self.dim, generator=g)

    def __call__(self, texts):
        self.calls += 1
        return torch.stack([torch.stack([self._word(w) for w in t.lower().split()]).mean(0) for t in texts])


class TinyAudio(nn.Module):
    """X (N, 1, F, T) → (N, DIM): two hookable conv blocks plus a fixed "semantic" read-out.

    Energy in the lower half of the bands points to the word vector of "dog", energy in the upper
    half to that of "rain", and a constant term to that of "silence" (so the embedding is not
    scale-invariant: removing energy moves it towards "silence"). Masks can therefore change what
    the embedding says, as in a CLAP audio encoder.
    """

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
        self.fc = nn.Linear(8, dim)
        words = WordVectors(dim)
        self.register_buffer("band_vectors", torch.stack([words._word("dog"), words._word("rain")]))
        self.register_buffer("silence", words._word("silence"))

    def forward(self, X):
        h = self.block2(self.block1(torch.log1p(X))).mean((2, 3))
        half = X.shape[2] // 2
        bands = torch.stack([X[:, 0, :half].mean((1, 2)), X[:, 0, half:].mean((1, 2))], 1)
        return 0.1 * self.fc(h) + bands @ self.band_vectors + self.silence

