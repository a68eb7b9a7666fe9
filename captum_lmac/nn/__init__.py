"""Neural networks: the model wrapper Captum sees, reference classifiers, zero-shot models, and the
decoders / interpreters the learned methods train."""

from .adapters import FrontEndClassifier, KaldiFbank, PickLogits, WaveformClassifier, select_logits
from .classifier import SpectrogramClassifier
from .cnn import CNN14, CompactCNN, ConvBlock, count_parameters
from .decoders import MaskDecoder, TextConditionedMaskDecoder
from .l2i import L2IHead, L2IInterpreter, L2INet
from .loading import adapt_model, load_model, load_weights, qualify_layers
from .zoo import ARCHITECTURES, build_architecture, register_architecture, to_torchscript

__all__ = [
    "SpectrogramClassifier", "CompactCNN", "CNN14", "ConvBlock", "count_parameters",
    "MaskDecoder", "TextConditionedMaskDecoder", "L2IInterpreter", "L2IHead", "L2INet",
    "WaveformClassifier", "PickLogits", "select_logits", "KaldiFbank", "FrontEndClassifier",
    "load_model", "load_weights", "adapt_model", "qualify_layers",
    "ARCHITECTURES", "build_architecture", "register_architecture", "to_torchscript",
]
