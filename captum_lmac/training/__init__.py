"""Training loops of the models the library explains in its own benchmarks: the reference
classifiers (:mod:`.classifier`) and the small CLAP (:mod:`.clap`). The interpreters' own fit loop
lives in :class:`captum_lmac.attr.LearnedAttribution`."""

from .classifier import (
    accuracy,
    build_classifier,
    load_classifier,
    predict,
    save_classifier,
    seed_everything,
    train_classifier,
)
from .clap import clap_loss, clap_zero_shot_accuracy, load_clap, save_clap, train_clap

__all__ = [
    "seed_everything", "predict", "accuracy", "train_classifier", "build_classifier", "save_classifier",
    "load_classifier", "clap_loss", "train_clap", "clap_zero_shot_accuracy", "save_clap", "load_clap",
]
