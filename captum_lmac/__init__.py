"""captum_lmac: faithful, listenable explanations for audio classifiers, as Captum attributions.

Layers (one folder or module each): ``audio`` (signal path) → ``data`` → ``nn`` (models) →
``training`` → ``attr`` (methods) → ``metrics`` → ``benchmark`` (harness) → ``cli``.
"""

from .attr import L2I, LMAC, Hook, LayerGradCamPlusPlus, auto_layers, make_baseline
from .audio import STFT, LogMel, mix_at_snr, read_wav, resample, write_wav
from .data import SpectrogramSet, SyntheticEvents, to_spectrograms
from .errors import CheckpointError, DataNotFoundError, InputError, NotFittedError
from .nmf import learn_dictionary, log_magnitude, nmf_activations
from .nn import CNN14, CompactCNN, SpectrogramClassifier, WaveformClassifier, build_architecture, count_parameters
from .nn import adapt_model, load_model
from .attr.lmac_td import LMACTD
from .attr.lmac_zs import LMACZS
from .nn.zeroshot import MiniLMTextEncoder, SmallCLAP, ZeroShotClassifier
from .training import build_classifier, load_classifier, save_classifier, train_classifier

__version__ = "0.1.0"

__all__ = [
    "LMACZS", "LMACTD", "ZeroShotClassifier", "MiniLMTextEncoder", "SmallCLAP",
    "LMAC", "L2I", "LayerGradCamPlusPlus", "make_baseline", "Hook", "auto_layers",
    "WaveformClassifier", "build_architecture", "load_model", "adapt_model",
    "learn_dictionary", "nmf_activations", "log_magnitude",
    "STFT", "LogMel", "mix_at_snr", "read_wav", "resample", "write_wav",
    "SyntheticEvents", "SpectrogramSet", "to_spectrograms",
    "InputError", "DataNotFoundError", "CheckpointError", "NotFittedError",
    "SpectrogramClassifier", "CompactCNN", "CNN14", "count_parameters",
    "build_classifier", "train_classifier", "save_classifier", "load_classifier",
]
