"""Neural networks: the model wrapper Captum sees, reference classifiers, zero-shot models, and the
decoders / interpreters the learned methods train."""

from .classifier import SpectrogramClassifier
from .cnn import CNN14, CompactCNN, ConvBlock, count_parameters
from .decoders import MaskDecoder, TextConditionedMaskDecoder
from .l2i import L2IHead, L2IInterpreter, L2INet

__all__ = ["SpectrogramClassifier", "CompactCNN", "CNN14", "ConvBlock", "count_parameters", "MaskDecoder",
           "TextConditionedMaskDecoder", "L2IInterpreter", "L2IHead", "L2INet"]
