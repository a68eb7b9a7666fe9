"""Explain one audio file with a classifier and a fitted L-MAC: a WAV and a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ._io import check_writable, deferred_writes, load_checkpoint
from ._validate import check_model_output, guarded_forward
from .attr.lmac import LMAC
from .audio import STFT, read_wav, write_wav
from .errors import InputError
from .fit import DEFAULT_STFT
from .nn.adapters import using_phase
from .nn.loading import adapt_model, load_model
from .training import load_classifier
from .viz import plot_explanation

PathLike = Union[str, Path]


def explain_file(
    wav: PathLike,
    interpreter: PathLike,
    out: PathLike,
    classifier: Optional[PathLike] = None,
    png: Optional[PathLike] = None,
    mask_domain: Optional[str] = None,
    model: Optional[str] = None,
    weights: Optional[PathLike] = None,
    input: Optional[str] = None,
) -> Dict[str, object]:
    """Classify ``wav``, compute its L-MAC mask and write the listenable explanation.

    The classifier is either a checkpoint of :func:`captum_lmac.save_classifier` (``classifier``)
    or your own model (``model`` = ``pkg.module:factory`` / ``file.py:factory`` / TorchScript file,
    with ``weights``); an interpreter fitted by ``captum-lmac fit`` remembers its model, weights and
    STFT, so ``model`` may then be left out.

    Args:
        wav: Input audio (resampled to the classifier's sample rate).
        interpreter: Checkpoint from :meth:`LMAC.save`, fitted for that classifier (else refused).
        out: Output WAV path for ISTFT((M ⊙ X) e^{jP}).
        classifier: A saved classifier (alternative to ``model``).
        png: Figure path (default: ``out`` with ``.png``).
        mask_domain: Override the interpreter's masking domain (``"linear"`` or ``"log1p"``).
        model, weights, input: Your own classifier (see :func:`captum_lmac.nn.load_model`,
            :func:`~captum_lmac.nn.adapt_model`).

    Returns:
        dict with ``class``, ``probability``, ``mask_mean``, ``wav``, ``png``.
    """
    if classifier is not None and model is not None:
        raise InputError("give either --classifier (a saved captum_lmac classifier) or --model, not both")
    check_writable(out, "--out")  # before any work: a failed run writes nothing
    check_writable(png if png is not None else Path(out).with_suffix(".png"), "--png")
    if classifier is not None:
        clf, stft, classes, _ = load_classifier(classifier)
    else:
        _, meta = load_checkpoint(interpreter, LMAC.kind)
        cli = (meta.get("history") or {}).get("cli") or {}
        spec = model or cli.get("model")
        if spec is None:
            raise InputError(f"{interpreter} does not record its classifier: give --model (and --weights) or --classifier")
        stft = STFT(**cli.get("stft", DEFAULT_STFT))
        clf = adapt_model(load_model(spec, weights or cli.get("weights")), stft, input=input or cli.get("input", "auto"))
        classes = []
    lmac = LMAC.load(interpreter, clf)
    waveform, sr = read_wav(wav, stft.sample_rate)
    X, phase = stft.analyze(waveform, sample_rate=sr)
    with using_phase(clf, phase, waveform.shape[-1]):
        with torch.no_grad():
            logits = guarded_forward(clf, X, hop_length=stft.hop_length, sample_rate=stft.sample_rate)
            p = check_model_output(logits, "the classifier", X.shape[0], clf).softmax(1)[0]
        mask = lmac.attribute(X)
    c = int(p.argmax())
    explanation = stft.listen(X, phase, mask, length=waveform.shape[-1], mask_domain=mask_domain or lmac.mask_domain)
    out = Path(out)
    png = Path(png) if png is not None else out.with_suffix(".png")
    name = classes[c] if c < len(classes) else str(c)
    with deferred_writes():  # the WAV and the PNG appear together, or neither does
        write_wav(out, explanation[0], stft.sample_rate)
        plot_explanation(
            X[0], mask[0], png, stft.sample_rate, stft.hop_length, titles=["L-MAC"],
            suptitle=f"{Path(wav).name}: {name} (p={float(p[c]):.2f})",
        )
    return {"class": name, "probability": float(p[c]), "mask_mean": float(mask.mean()), "wav": str(out), "png": str(png)}
