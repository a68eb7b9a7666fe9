"""Explain one audio file with a saved classifier and a fitted L-MAC: a WAV and a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import torch

from .attr.lmac import LMAC
from .audio import read_wav, write_wav
from .training import load_classifier
from .viz import plot_explanation

PathLike = Union[str, Path]


def explain_file(
    wav: PathLike,
    classifier: PathLike,
    interpreter: PathLike,
    out: PathLike,
    png: Optional[PathLike] = None,
    mask_domain: Optional[str] = None,
) -> Dict[str, object]:
    """Classify ``wav``, compute its L-MAC mask and write the listenable explanation.

    Args:
        wav: Input audio (resampled to the classifier's sample rate).
        classifier: Checkpoint from :func:`captum_lmac.save_classifier`.
        interpreter: Checkpoint from :meth:`LMAC.save`, fitted for that classifier (else refused).
        out: Output WAV path for ISTFT((M ⊙ X) e^{jP}).
        png: Figure path (default: ``out`` with ``.png``).
        mask_domain: Override the interpreter's masking domain (``"linear"`` or ``"log1p"``).

    Returns:
        dict with ``class``, ``probability``, ``mask_mean``, ``wav``, ``png``.
    """
    model, stft, classes, _ = load_classifier(classifier)
    lmac = LMAC.load(interpreter, model)
    waveform, sr = read_wav(wav, stft.sample_rate)
    X, phase = stft.analyze(waveform, sample_rate=sr)
    with torch.no_grad():
        p = model(X).softmax(1)[0]
    c = int(p.argmax())
    mask = lmac.attribute(X)
    explanation = stft.listen(X, phase, mask, length=waveform.shape[-1], mask_domain=mask_domain or lmac.mask_domain)
    out = Path(out)
    write_wav(out, explanation[0], stft.sample_rate)
    png = Path(png) if png is not None else out.with_suffix(".png")
    name = classes[c] if c < len(classes) else str(c)
    plot_explanation(
        X[0], mask[0], png, stft.sample_rate, stft.hop_length, titles=["L-MAC"],
        suptitle=f"{Path(wav).name}: {name} (p={float(p[c]):.2f})",
    )
    return {"class": name, "probability": float(p[c]), "mask_mean": float(mask.mean()), "wav": str(out), "png": str(png)}
