"""Explain one audio file with a classifier and a fitted L-MAC: a WAV and a PNG.

Files longer than ``max_seconds`` (default 60 s), or any file when ``chunk_seconds`` is given, are
explained window by window in bounded memory (:mod:`captum_lmac.longaudio`): overlapping windows of
``chunk_seconds`` (default: the clip length the interpreter was fitted on, else 5 s), each classified
and masked on its own, cross-faded into one seamless explanation streamed to the WAV; a CSV timeline
lists every window's decision. The throughput (× real time) is reported.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import soundfile as sf
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._io import atomic_write, check_writable, checkpoint_kind, deferred_writes, load_checkpoint
from ._validate import check_model_output, guarded_forward
from .attr.lmac import LMAC
from .attr.lmac_td import LMACTD
from .audio import STFT, read_wav, write_wav
from .errors import DataNotFoundError, InputError
from .fit import DEFAULT_STFT
from .longaudio import CrossfadeWriter, WindowReader
from .nn.adapters import using_phase
from .nn.loading import adapt_model, load_model
from .training import load_classifier
from .viz import plot_explanation

PathLike = Union[str, Path]

#: Files longer than this (seconds) are explained in windows unless ``chunk_seconds`` says otherwise.
MAX_WHOLE_SECONDS = 60.0


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
    chunk_seconds: Optional[float] = None,
    overlap_seconds: Optional[float] = None,
    max_seconds: float = MAX_WHOLE_SECONDS,
    batch_windows: int = 8,
    timeline: Optional[PathLike] = None,
    progress: bool = False,
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
        chunk_seconds (float, optional): Explain in windows of this length (default for files
            longer than ``max_seconds``: the interpreter's training clip length, else 5 s).
        overlap_seconds (float, optional): Overlap of consecutive windows, cross-faded (default a
            quarter of the window, at most 1 s).
        max_seconds (float): Longer files are explained in windows.
        batch_windows (int): Windows classified and masked together.
        timeline (path, optional): CSV of the windows' decisions (default: ``out`` with ``.csv``).
        progress (bool): Show a progress bar over the windows.

    Returns:
        dict with ``class``, ``probability``, ``mask_mean``, ``wav``, ``png``, ``seconds`` (audio),
        ``wall_seconds``, ``realtime_factor`` (audio seconds per wall second) and, for windowed
        files, ``windows``, ``timeline`` and ``clipped`` (samples clipped to ±1 in the WAV).
    """
    if classifier is not None and model is not None:
        raise InputError("give either --classifier (a saved captum_lmac classifier) or --model, not both")
    check_writable(out, "--out")  # before any work: a failed run writes nothing
    check_writable(png if png is not None else Path(out).with_suffix(".png"), "--png")
    kind = checkpoint_kind(interpreter)
    method = LMACTD if kind == LMACTD.kind else LMAC
    if classifier is not None:
        clf, stft, classes, _ = load_classifier(classifier)
    else:
        _, meta = load_checkpoint(interpreter, method.kind)
        cli = (meta.get("history") or {}).get("cli") or {}
        spec = model or cli.get("model")
        if spec is None:
            raise InputError(f"{interpreter} does not record its classifier: give --model (and --weights) or --classifier")
        stft = STFT(**cli.get("stft", DEFAULT_STFT))
        clf = adapt_model(load_model(spec, weights or cli.get("weights")), stft, input=input or cli.get("input", "auto"))
        classes = []
    lmac = method.load(interpreter, clf)
    t0 = time.perf_counter()
    seconds = _duration(wav)
    if method is LMACTD:
        return _explain_td(wav, lmac, stft, classes, Path(out), png, seconds, max_seconds, chunk_seconds, t0)
    if chunk_seconds is not None or seconds > float(max_seconds):
        clip = (lmac.history.get("cli") or {}).get("duration") if isinstance(lmac.history, dict) else None
        return _explain_windows(wav, clf, lmac, stft, classes, Path(out), png, mask_domain, chunk_seconds or clip or 5.0,
                                overlap_seconds, batch_windows, timeline, progress, t0)
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
    wall = time.perf_counter() - t0
    return {"class": name, "probability": float(p[c]), "mask_mean": float(mask.mean()), "wav": str(out), "png": str(png),
            "seconds": seconds, "wall_seconds": wall, "realtime_factor": seconds / max(wall, 1e-9)}


def _explain_td(wav: PathLike, td: LMACTD, stft: STFT, classes: List[str], out: Path, png: Optional[PathLike],
                seconds: float, max_seconds: float, chunk_seconds: Optional[float], t0: float) -> Dict[str, object]:
    """An LMAC-TD interpreter: the explanation is the waveform ``x_in`` itself (no mask on the STFT)."""
    if chunk_seconds is not None or seconds > float(max_seconds):
        raise InputError(f"{Path(wav).name} is {seconds:.1f} s long: LMAC-TD explains a file in one pass, up to "
                         f"--max-seconds ({float(max_seconds):g} s); raise --max-seconds or cut the file")
    waveform, sr = read_wav(wav, stft.sample_rate)
    res = td.explain(waveform.unsqueeze(0))
    p = res["logits"].softmax(1)[0]
    c = int(p.argmax())
    name = classes[c] if c < len(classes) else str(c)
    png = Path(png) if png is not None else out.with_suffix(".png")
    X, _ = stft.analyze(waveform, sample_rate=sr)
    with deferred_writes():  # the WAV and the PNG appear together, or neither does
        write_wav(out, res["x_in"][0].clamp(-1.0, 1.0), stft.sample_rate)
        plot_explanation(X[0], res["stft_mask"][0], png, stft.sample_rate, stft.hop_length,
                         titles=["LMAC-TD (|STFT(x_in)| / |STFT(x)|)"],
                         suptitle=f"{Path(wav).name}: {name} (p={float(p[c]):.2f})")
    wall = time.perf_counter() - t0
    return {"class": name, "probability": float(p[c]), "mask_mean": float(res["mask"].mean()), "wav": str(out),
            "png": str(png), "method": "lmac_td", "seconds": seconds, "wall_seconds": wall,
            "realtime_factor": seconds / max(wall, 1e-9)}


def _duration(wav: PathLike) -> float:
    path = Path(wav)
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an audio file")
    if not path.is_file():
        raise DataNotFoundError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise InputError(f"cannot read audio file {path}: {exc}") from None
    if info.frames <= 0:
        raise InputError(f"audio file {path} is empty")
    return info.frames / info.samplerate


def _explain_windows(wav: PathLike, clf: nn.Module, lmac: LMAC, stft: STFT, classes: List[str], out: Path,
                     png: Optional[PathLike], mask_domain: Optional[str], chunk_seconds: float,
                     overlap_seconds: Optional[float], batch_windows: int, timeline: Optional[PathLike],
                     progress: bool, t0: float) -> Dict[str, object]:
    """The windowed explanation of a long file (see the module documentation)."""
    sr = stft.sample_rate
    if not chunk_seconds or float(chunk_seconds) <= 0:
        raise InputError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    window = int(round(float(chunk_seconds) * sr))
    if window <= stft.n_fft:
        raise InputError(f"--chunk-seconds {chunk_seconds} is too short for n_fft = {stft.n_fft} at {sr} Hz")
    overlap = (min(int(round(sr * 1.0)), window // 4) if overlap_seconds is None
               else int(round(float(overlap_seconds) * sr)))
    if not 0 <= overlap < window:
        raise InputError(f"--overlap-seconds must lie in [0, --chunk-seconds), got {overlap_seconds}")
    if int(batch_windows) < 1:
        raise InputError(f"--batch-windows must be >= 1, got {batch_windows}")
    reader = WindowReader(wav, sr, window, window - overlap)
    domain = mask_domain or lmac.mask_domain
    rows: List[Dict[str, Any]] = []
    prob_sum: Optional[Tensor] = None
    first: Optional[Tuple[Tensor, Tensor]] = None
    pending: List[Tuple[int, Tensor]] = []
    silent_windows = 0
    with CrossfadeWriter(out, sr, reader.n_samples, window, overlap) as writer:
        bar = tqdm(total=len(reader), desc="explaining windows", disable=not progress, unit="window")

        def flush() -> None:
            nonlocal prob_sum, first, silent_windows
            starts = [s for s, _ in pending]
            waves = torch.stack([w for _, w in pending])
            X, phase = stft.analyze(waves, allow_silent=True)
            with using_phase(clf, phase, window):
                with torch.no_grad():
                    p = clf(X).softmax(1)
                mask = lmac.attribute(X)
            explanation = stft.listen(X, phase, mask, length=window, mask_domain=domain)
            quiet = waves.abs().amax(1) == 0
            for i, start in enumerate(starts):
                writer.add(torch.zeros(window) if bool(quiet[i]) else explanation[i])
                silent_windows += int(quiet[i])
                c = int(p[i].argmax())
                rows.append({"start_s": start / sr, "end_s": min(start + window, reader.n_samples) / sr,
                             "class": classes[c] if c < len(classes) else str(c), "probability": float(p[i, c]),
                             "mask_mean": float(mask[i].mean()), "silent": bool(quiet[i])})
            loud = p[~quiet]
            if loud.numel():
                prob_sum = loud.sum(0) if prob_sum is None else prob_sum + loud.sum(0)
            if first is None:
                first = (X[0].detach().clone(), mask[0].detach().clone())
            pending.clear()
            bar.update(len(starts))

        for start, wave in reader.windows():
            pending.append((start, wave))
            if len(pending) == int(batch_windows):
                flush()
        if pending:
            flush()
        bar.close()
    if prob_sum is None:
        out.unlink(missing_ok=True)
        raise InputError(f"{wav} is silent (all zeros)")
    p_mean = prob_sum / max(1, len(rows) - silent_windows)
    c = int(p_mean.argmax())
    name = classes[c] if c < len(classes) else str(c)
    table = Path(timeline) if timeline is not None else out.with_suffix(".csv")
    _write_timeline(table, rows)
    png = Path(png) if png is not None else out.with_suffix(".png")
    plot_explanation(first[0], first[1], png, sr, stft.hop_length, titles=["L-MAC"],
                     suptitle=f"{Path(wav).name}: first {window / sr:g} s of {reader.seconds:.0f} s")
    wall = time.perf_counter() - t0
    masks = [r["mask_mean"] for r in rows if not r["silent"]]
    return {"class": name, "probability": float(p_mean[c]), "mask_mean": sum(masks) / max(1, len(masks)),
            "wav": str(out), "png": str(png), "timeline": str(table), "windows": len(rows),
            "window_seconds": window / sr, "overlap_seconds": overlap / sr, "clipped": writer.clipped,
            "seconds": reader.seconds, "wall_seconds": wall, "realtime_factor": reader.seconds / max(wall, 1e-9)}


def _write_timeline(path: Path, rows: List[Dict[str, Any]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["start_s", "end_s", "class", "probability", "mask_mean", "silent"])
    w.writeheader()
    for r in rows:
        w.writerow({**r, "start_s": f"{r['start_s']:.3f}", "end_s": f"{r['end_s']:.3f}",
                    "probability": f"{r['probability']:.4f}", "mask_mean": f"{r['mask_mean']:.4f}"})
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
