"""Data sets (waveform, label, meta) and their in-memory spectrogram form."""

from .synthetic import SyntheticEvents
from .tensors import SpectrogramSet, to_spectrograms, with_phase
from .batch import Batch
from .streaming import ConcatReaders, FeatureTransform, LabelCaptions, StreamingSpectrograms
from .folders import ESC50, FSDD, AudioFolder, NoiseFolder, SpeechFolder, UrbanSound8K, default_data_root
from .speech_noise import SpeechInNoise
from .captions import CaptionedAudio, build_training_set, class_prompts
from .contamination import (
    KINDS as CONTAMINATION_KINDS,
    PAPER_SNR_DB,
    REFERENCE_CODE_SNR_DB,
    ContaminatedDataset,
    Contamination,
    WhamMixtures,
)

__all__ = ["SyntheticEvents", "SpectrogramSet", "to_spectrograms", "with_phase", "Batch", "StreamingSpectrograms",
           "FeatureTransform", "LabelCaptions", "ConcatReaders"]
__all__ += ["ESC50", "UrbanSound8K", "FSDD", "AudioFolder", "SpeechFolder", "NoiseFolder", "default_data_root"]
__all__ += [
    "Contamination", "ContaminatedDataset", "WhamMixtures",
    "CONTAMINATION_KINDS", "PAPER_SNR_DB", "REFERENCE_CODE_SNR_DB",
]
__all__ += ["SpeechInNoise"]
__all__ += ["CaptionedAudio", "build_training_set", "class_prompts"]
