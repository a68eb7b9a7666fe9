r"""The built-in benchmark suites: what differs from the configuration defaults for each.

Every default lives in the configuration dataclasses (:mod:`captum_lmac.benchmark.config`); a
suite here lists only its own choices. ``benchmarks/<suite>.json`` in the repository holds the
same suites as complete, editable files (:func:`~captum_lmac.benchmark.config.write_builtin_configs`)
and is preferred when present.

- ``synthetic`` — :class:`~captum_lmac.data.SyntheticEvents` (no files needed; the embedded
  default): train 800 items (seed 0), validation 200 (seed 1), test 400 (seed 2); the clean event
  of every clip is known.
- ``esc10`` — ESC-10 in the ESC-50 layout (``<data root>/esc10``): folds 1-3 train, fold 4
  validation, fold 5 test.
- ``esc10-zeroshot`` — the same folds explained through the small CLAP trained here, zero-shot over
  the prompts "this is the sound of <label>"; LMAC-ZS against the baselines, with the LMAC-ZS
  paper's behaviour checks.
- ``fsdd`` — Free Spoken Digit Dataset (``<data root>/fsdd``): takes 0-4 test, 5-9 validation,
  10-49 train.
- ``speech-in-noise`` — a speech detector (noise / speech) trained on real speech (FSDD digits,
  LJSpeech) over real noise (ambient loops, ESC-10) at 0 dB, every source split by file / take /
  fold (:class:`~captum_lmac.data.SpeechInNoise`); the explanation of "speech" is scored against
  the clean speech (SI-SDR, precision / recall), the unmasked mixture being the floor.
- ``esc50``, ``us8k`` — the full data sets in their official layouts (not on the development
  machines).
"""

from __future__ import annotations

from typing import Any, Dict

#: The reference STFT (SpeechBrain L-MAC recipe at 16 kHz).
STFT_DEFAULTS: Dict[str, Any] = dict(sample_rate=16000, n_fft=1024, hop_length=186, win_length=372, window="hamming")

#: STFT of the zero-shot suite (16 kHz; coarser than the L-MAC recipe to fit the CPU budget).
ZS_STFT: Dict[str, Any] = dict(sample_rate=16000, n_fft=512, hop_length=320, win_length=400, window="hamming")

_FAST_BASELINES = {
    "smoothgrad": {"nt_samples": 4, "noise_level": 0.15},
    "ig": {"n_steps": 8, "internal_batch_size": 16},  # one batch's steps in chunks of 16 inputs: half the memory
    "gradient_shap": {"n_samples": 4},
    "kernel_shap": {"n_samples": 16, "grid": [8, 8], "perturbations_per_eval": 16},
}

_ESC10_FOLDS = {"train": {"folds": [1, 2, 3]}, "val": {"folds": [4]}, "test": {"folds": [5]}}

SUITE_CONFIGS: Dict[str, Dict[str, Any]] = {
    "synthetic": {
        "description": (
            "SyntheticEvents (10 procedurally generated event classes over pink noise, clean event known): "
            "the embedded default, sized to finish in a few minutes on 2 CPU cores. Ground truth: SI-SDR "
            "of the listenable explanation vs the clean event, precision/recall vs the oracle mask."
        ),
        "notes": (
            "Budget choices: 50 test clips (5 per class); L-MAC fitted on 240 training clips for 12 epochs "
            "(lr 2e-3, lambda_s 2, bounded out-term; 6 in the Mel domain), fine-tuned 2 epochs on the same clips "
            "with their known clean event; sanity check on 12 clips with L-MAC also refitted on the fully "
            "randomised classifier; "
            "IG 8 steps, SmoothGrad 4 samples, GradientSHAP 4 samples, KernelSHAP 16 coalitions of 8x8 "
            "patches; Mel domain: saliency, GradCAM, GradCAM++, L-MAC."
        ),
        "data": {"reader": "SyntheticEvents",
                 "splits": {"train": {"n_items": 800, "seed": 0}, "val": {"n_items": 200, "seed": 1},
                            "test": {"n_items": 400, "seed": 2}}},
        "classifier": {"recipe": {"channels": [8, 16, 32, 64], "n_mels": 80, "epochs": 10, "batch_size": 32,
                                  "lr": 2e-3, "weight_decay": 1e-4, "patience": 5, "mixup": 0.4, "augment": True}},
        "n_test": 50,
        "n_train": 240,
        "n_val": 80,
        "method_options": _FAST_BASELINES,
        "feature_domain_methods": ["saliency", "gradcam", "gradcam++", "lmac"],
        "lmac": {"fit_mel": {"epochs": 6}},
        "lmac_ft": {"pairs": "synthetic", "fit": {"epochs": 2}},
        "l2i": {"init": {"n_components": 50}, "fit": {"epochs": 6, "nmf_iter": 60}},
        "sanity": {"n_clips": 12},
    },
    "esc10": {
        "description": (
            "ESC-10 (<data root>/esc10): train folds 1-3 (240 clips), validation fold 4, test fold 5 (80 clips); "
            "L-MAC fine-tuned on WHAM!-style mixtures (training clips + <data root>/ambient at 0 dB)."
        ),
        "notes": (
            "Budget choices (target <= 30 min on 2 shared CPU cores, 5 s clips): all 80 test clips; IG 8 steps, "
            "SmoothGrad 4 samples, GradientSHAP 4 samples, KernelSHAP 16 coalitions of 8x8 patches; L-MAC 12 "
            "epochs (lr 2e-3, batch 16, lambda_s 2, bounded out-term) in the STFT domain, 6 in the Mel domain, "
            "fine-tuning 2 epochs (lambda_g 4, CCT 0.7); L2I 100 components, NMF on 20k frames; Mel domain: "
            "saliency, GradCAM, L-MAC only; sanity check on 8 clips, L-MAC also refitted on the fully randomised "
            "classifier (one extra fit)."
        ),
        "data": {"reader": "ESC50", "root": "esc10", "splits": _ESC10_FOLDS},
        "classifier": {"recipe": {"channels": [8, 16, 32, 64], "n_mels": 80, "epochs": 25, "batch_size": 16,
                                  "lr": 2e-3, "weight_decay": 1e-4, "patience": 20, "mixup": 0.4, "augment": True}},
        "n_test": 80,
        "method_options": _FAST_BASELINES,
        "feature_domain_methods": ["saliency", "gradcam", "lmac"],
        "lmac": {"fit_mel": {"epochs": 6}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 2}},
        "l2i": {"fit": {"epochs": 10, "nmf_iter": 100, "nmf_max_frames": 20000}},
        "sanity": {"n_clips": 8},
    },
    "esc10-zeroshot": {
        "description": (
            "ESC-10 fold 5 (80 clips) explained through the small CLAP trained here (CompactCNN on log-mel + "
            "MiniLM, <data root>/esc10 folds 1-3 + FSDD + ambient captions), zero-shot over the prompts "
            "'this is the sound of <label>': p(c = j) = softmax_j(logit_scale * t_j . a). LMAC-ZS is fitted on "
            "ESC-10 folds 1-3 (+ a few FSDD / ambient clips) with varied captions, and half as many again "
            "white-noise / other-clip mixtures of them (captioned with the clean clip's class); fold 4 picks the epoch."
        ),
        "notes": (
            "Zero-shot STFT n_fft 512, hop 320 (20 ms), 64 mel bands; LMAC-ZS 12 epochs, batch 8, lr 3e-3, "
            "lambda_1 0.05 per mask, decision term lambda_cls 1 (rivals: the batch's other captions), bounded "
            "masked-out term lambda_out 0.2, similarity floor at the empty input, training clips augmented with "
            "mixtures (lmac_zs.augment fraction 0.5, add: white noise or another training clip at 0-12 dB); SmoothGrad 10 samples, IG 32 steps; behaviour checks on every (clip, class prompt) "
            "pair and four unrelated prompts; cascading randomisation of the audio tower (projection first) for LMAC-ZS "
            "(fitted decoder kept, and refitted once on the fully randomised encoder), GradCAM++ and GradCAM."
        ),
        "data": {"reader": "ESC50", "root": "esc10", "kwargs": {"duration": 5.0}, "splits": _ESC10_FOLDS},
        "classifier": {"source": "clap", "stft": ZS_STFT},
        "n_test": 80,
        "domains": ["stft", "mel"],
        "feature_domain_methods": ["lmac_zs", "gradcam++", "gradcam"],
        "methods": ["lmac_zs", "gradcam", "gradcam++", "smoothgrad", "ig"],
        "method_options": {"smoothgrad": {"nt_samples": 10, "noise_level": 0.15},
                           "ig": {"n_steps": 32, "internal_batch_size": 32}},
        "lmac_zs": {"augment": {"fraction": 0.5, "add": True}},
        "sanity": {"methods": ["lmac_zs", "gradcam++", "gradcam"]},
        "analyses": ["zeroshot_behaviour"],
    },
    "fsdd": {
        "description": (
            "Free Spoken Digit Dataset (<data root>/fsdd): takes 10-49 train, 5-9 validation, 0-4 test "
            "(300 clips; n_test 100 by default); L-MAC fine-tuning on WHAM!-style ambient mixtures."
        ),
        "data": {"reader": "FSDD", "root": "fsdd",
                 "splits": {"train": {"split": "train", "takes": list(range(10, 50))},
                            "val": {"split": "train", "takes": list(range(5, 10))},
                            "test": {"split": "test"}}},
        "classifier": {"recipe": {"channels": [8, 16, 32, 64], "n_mels": 80, "epochs": 15, "batch_size": 32,
                                  "lr": 2e-3, "weight_decay": 1e-4, "patience": 5, "mixup": 0.2, "augment": True}},
        "n_test": 100,
        "n_train": 1000,
        "method_options": {**_FAST_BASELINES,
                           "kernel_shap": {"n_samples": 24, "grid": [8, 8], "perturbations_per_eval": 24}},
        "feature_domain_methods": ["saliency", "ig", "gradcam", "lmac"],
        "lmac": {"fit": {"epochs": 10}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 3}},
        "l2i": {"fit": {"epochs": 10, "nmf_iter": 100}},
    },
    "speech-in-noise": {
        "description": (
            "Speech in noise (<data root>/fsdd, ljspeech32, ambient, esc10): a noise / speech detector trained on "
            "2 s clips, half of them speech (1-3 FSDD digits or a LJSpeech excerpt) over noise (ambient loops or "
            "ESC-10) at 0 dB over the clip, half noise only; train 600 / validation 100 / test 200 clips, no "
            "recording shared between splits. Ground truth on the speech clips: SI-SDR of the listenable "
            "explanation vs the clean speech (the mixture row is the floor), precision / recall vs the oracle mask."
        ),
        "notes": (
            "In-domain only (the clips are already mixtures). L-MAC fine-tuned on the training clips with their "
            "clean speech (noise-only clips give no pair; lambda_g 32, CCT 0, 10 epochs); LMAC-TD with alpha 0.75; IG 8 steps, SmoothGrad 4 "
            "samples, GradientSHAP 4 samples, KernelSHAP 16 coalitions of 8x8 patches; Mel domain: saliency, "
            "GradCAM, L-MAC."
        ),
        "data": {"reader": "SpeechInNoise", "root": ".", "kwargs": {"duration": 2.0, "snr_db": 0.0},
                 "splits": {"train": {"split": "train", "n_items": 600, "seed": 0},
                            "val": {"split": "val", "n_items": 100, "seed": 1},
                            "test": {"split": "test", "n_items": 200, "seed": 2}}},
        "classifier": {"recipe": {"channels": [8, 16, 32, 64], "n_mels": 80, "epochs": 12, "batch_size": 32,
                                  "lr": 2e-3, "weight_decay": 1e-4, "patience": 6, "mixup": 0.0, "augment": True}},
        "conditions": ["in-domain"],
        "n_test": 120,
        "n_train": 400,
        "n_val": 100,
        "methods": ["mixture", "saliency", "smoothgrad", "ig", "gradcam", "gradcam++", "guided_backprop",
                    "guided_gradcam", "gradient_shap", "kernel_shap", "lmac", "lmac_ft", "l2i", "lmac_td"],
        "method_options": _FAST_BASELINES,
        "feature_domain_methods": ["saliency", "gradcam", "lmac"],
        # guidance strong and long enough to grow the detector's sparse masks towards the clean speech
        # (measured: SI-SDR 4.03 dB -> 5.53 dB, mixture 0.00; lambda_g 4 / 3 epochs gave 3.40 dB)
        "lmac_ft": {"pairs": "synthetic", "fit": {"epochs": 10, "lambda_g": 32.0, "cct": 0.0}},
        "l2i": {"fit": {"epochs": 8, "nmf_iter": 80}},
        "sanity": {"n_clips": 8},
    },
    "esc50": {
        "description": (
            "ESC-50 (needs the full data set in its official layout at <data root>/ESC-50: audio/, meta/esc50.csv): "
            "train folds 1-3, validation fold 4, test fold 5 (400 clips), the L-MAC paper's setting on a "
            "compact CNN. Not run on the development machines."
        ),
        "data": {"reader": "ESC50", "root": "ESC-50", "kwargs": {"duration": 5.0}, "splits": _ESC10_FOLDS},
        "classifier": {"recipe": {"channels": [32, 64, 128, 256], "n_mels": 80, "epochs": 80, "batch_size": 32,
                                  "lr": 1e-3, "weight_decay": 1e-4, "patience": 20, "mixup": 0.4, "augment": True}},
        "lmac": {"fit": {"epochs": 20}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 5}},
    },
    "us8k": {
        "description": (
            "UrbanSound8K (needs the full data set at <data root>/UrbanSound8K: audio/fold1..10, "
            "metadata/UrbanSound8K.csv): train folds 1-8, validation fold 9, test fold 10 (837 clips; "
            "n_test 400 by default). Not run on the development machines."
        ),
        "data": {"reader": "UrbanSound8K", "root": "UrbanSound8K", "kwargs": {"duration": 4.0},
                 "splits": {"train": {"folds": [1, 2, 3, 4, 5, 6, 7, 8]}, "val": {"folds": [9]},
                            "test": {"folds": [10]}}},
        "classifier": {"recipe": {"channels": [32, 64, 128, 256], "n_mels": 80, "epochs": 60, "batch_size": 32,
                                  "lr": 1e-3, "weight_decay": 1e-4, "patience": 15, "mixup": 0.4, "augment": True}},
        "n_test": 400,
        "n_train": 3000,
        "lmac": {"fit": {"epochs": 15}},
        "lmac_ft": {"pairs": "wham", "fit": {"epochs": 5}},
    },
}
"""The built-in suites, each merged over the configuration defaults."""

BUILTIN_SUITES = tuple(SUITE_CONFIGS)

__all__ = ["STFT_DEFAULTS", "ZS_STFT", "SUITE_CONFIGS", "BUILTIN_SUITES"]
