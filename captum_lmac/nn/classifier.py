"""The model every attribution method sees: linear magnitude X (N, 1, F, T) → logits."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import InputError


class SpectrogramClassifier(nn.Module):
    r"""Wrap a feature extractor and a network into the ``nn.Module`` Captum and Quantus see.

    In ``"magnitude"`` mode (default) the input is the linear STFT magnitude ``X`` (N, 1, F, T) and
    the forward computes ``net(features(X))``, so every attribution has the shape of ``X`` and can
    be listened to (the papers' "STFT→Mel" rows). In ``"features"`` mode the input is already the
    classifier's own features (e.g. log-mel, the papers' "Mel" rows); :meth:`in_feature_domain`
    returns such a view sharing the same weights.

    Args:
        features (nn.Module): Maps X (N, 1, F, T) to the network input, e.g. :class:`~captum_lmac.LogMel`.
        net (nn.Module): The classifier proper; maps features to logits (N, C).
        input_domain (str): ``"magnitude"`` or ``"features"``.

    Examples::

        >>> stft = STFT(); model = SpectrogramClassifier(LogMel(stft, n_mels=64), CompactCNN(10, n_mels=64))
        >>> X, phase = stft.analyze(torch.randn(2, 16000))
        >>> model(X).shape
        torch.Size([2, 10])
    """

    def __init__(self, features: nn.Module, net: nn.Module, input_domain: str = "magnitude") -> None:
        super().__init__()
        if input_domain not in ("magnitude", "features"):
            raise InputError(f"input_domain must be 'magnitude' or 'features', got {input_domain!r}")
        self.features = features
        self.net = net
        self.input_domain = input_domain

    @property
    def n_freqs(self) -> Optional[int]:
        """F expected in magnitude mode (None if the feature module does not say)."""
        return getattr(self.features, "n_freqs", None)

    def in_feature_domain(self) -> "SpectrogramClassifier":
        """A view of this classifier whose input is the feature representation (weights shared)."""
        return SpectrogramClassifier(self.features, self.net, input_domain="features")

    def to_input_domain(self, X: Tensor) -> Tensor:
        """Map a magnitude X to this model's input domain (identity in magnitude mode)."""
        if self.input_domain == "features":
            with torch.no_grad():
                return self.features(X)
        return X

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 1:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise InputError(f"SpectrogramClassifier expects a (N, 1, F, T) tensor, got {shape}")
        if self.input_domain == "magnitude":
            f = self.n_freqs
            if f is not None and x.shape[2] != f:
                raise InputError(
                    f"input has {x.shape[2]} frequency bins but the classifier's STFT has {f}; "
                    "analyse the audio with the same STFT settings"
                )
            return self.net(self.features(x))
        return self.net(x)
