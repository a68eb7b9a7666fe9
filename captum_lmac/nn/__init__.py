"""Neural networks: the model wrapper Captum sees, reference classifiers, and decoders."""

from .classifier import SpectrogramClassifier
from .cnn import CNN14, CompactCNN, ConvBlock, count_parameters

__all__ = ["SpectrogramClassifier", "CompactCNN", "CNN14", "ConvBlock", "count_parameters"]
