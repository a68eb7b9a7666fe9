"""Data sets (waveform, label, meta) and their in-memory spectrogram form."""

from .synthetic import SyntheticEvents
from .tensors import SpectrogramSet, to_spectrograms

__all__ = ["SyntheticEvents", "SpectrogramSet", "to_spectrograms"]
