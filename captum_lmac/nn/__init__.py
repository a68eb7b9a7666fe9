"""Neural networks: the model wrapper Captum sees, reference classifiers, and decoders."""

from .adapters import FrontEndClassifier, KaldiFbank, PickLogits, WaveformClassifier, select_logits
from .classifier import SpectrogramClassifier
from .cnn import CNN14, CompactCNN, ConvBlock, count_parameters
from .loading import adapt_model, load_model, load_weights, qualify_layers
from .zoo import ARCHITECTURES, build_architecture, register_architecture, to_torchscript

__all__ = [
    "SpectrogramClassifier", "CompactCNN", "CNN14", "ConvBlock", "count_parameters",
    "WaveformClassifier", "PickLogits", "select_logits", "KaldiFbank", "FrontEndClassifier",
    "load_model", "load_weights", "adapt_model", "qualify_layers",
    "ARCHITECTURES", "build_architecture", "register_architecture", "to_torchscript",
]
