r"""Fit an interpreter for your own classifier, with no Python to write.

``captum-lmac fit --model pkg.module:factory --weights w.pt --layers a,b --data FOLDER --out lmac.pt``
(or ``python -m captum_lmac.fit ...``): loads the classifier (:func:`captum_lmac.nn.load_model` —
an importable factory, a Python file, or a TorchScript file), adapts it to the X → logits module
the methods explain (:func:`~captum_lmac.nn.adapt_model`: spectrogram or waveform input, detected
on a probe), reads the clips of ``--data`` (a plain folder of WAVs — L-MAC needs no labels, only
the classifier's decisions — or an ESC-50 / UrbanSound8K layout), fits L-MAC on them (the last
``--val-fraction`` of the clips picks the epoch) and saves it. The STFT and the model specification
are stored in the interpreter, so ``captum-lmac explain clip.wav --model ... --interpreter lmac.pt``
needs nothing else. ``--method lmac_td`` fits LMAC-TD instead (a masker on a learned time-domain
representation, ``--alpha`` its share of the classifier's representations, ``--layers none`` with
``--alpha 0``); ``captum-lmac explain`` recognises either interpreter and for LMAC-TD writes the
explanation waveform ``x_in`` itself.

At scale: the training clips are streamed from disk (:class:`~captum_lmac.data.StreamingSpectrograms`,
``--workers`` loader processes, ``--crop random`` for seeded random crops of longer files), so memory
does not grow with the folder; ``--checkpoint-dir`` writes a resumable fit state every epoch (or
``--checkpoint-steps`` steps) and on SIGTERM / Ctrl-C, ``--resume`` continues it; under ``torchrun``
(or with ``--distributed``) the decoder trains with DistributedDataParallel on every process
(``--batch-size`` is the global batch), rank 0 alone validates, logs and writes files::

    torchrun --nproc_per_node=4 -m captum_lmac.fit --model m.py:net --data clips/ --out lmac.pt \
        --checkpoint-dir ckpt/ --resume
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from . import distributed
from ._cliutil import ArgumentParser
from ._io import check_writable
from ._utils import reuse_freed_memory
from ._validate import one_line
from .attr.lmac import LMAC
from .attr.lmac_td import LMACTD
from .audio import STFT
from .data.folders import ESC50, AudioFolder, ReaderSubset, UrbanSound8K
from .data.streaming import StreamingSpectrograms
from .data.tensors import SpectrogramSet, to_spectrograms
from .errors import CheckpointError, DataNotFoundError, FitInterrupted, InputError, NotFittedError
from .nn.loading import adapt_model, load_model, qualify_layers

PathLike = Union[str, Path]

#: The reference STFT (SpeechBrain L-MAC recipe at 16 kHz), the default of the command line.
DEFAULT_STFT: Dict[str, Any] = dict(sample_rate=16000, n_fft=1024, hop_length=186, win_length=372, window="hamming")


def read_clips(folder: PathLike, sample_rate: int, duration: float) -> Dataset:
    """The clips of ``folder``: an ESC-50 layout (``meta/esc50.csv``), an UrbanSound8K layout
    (``metadata/UrbanSound8K.csv``) or a plain (optionally per-class) folder of audio files."""
    root = Path(folder)
    if not root.exists():
        raise DataNotFoundError(f"data folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"--data must be a folder of audio files, got the file {root}")
    if (root / "meta" / "esc50.csv").is_file():
        return ESC50(root, sample_rate=sample_rate, duration=duration)
    if (root / "metadata" / "UrbanSound8K.csv").is_file():
        return UrbanSound8K(root, sample_rate=sample_rate, duration=duration)
    return AudioFolder(root, sample_rate=sample_rate, duration=duration)


def parse_layers(text: Optional[str]) -> Union[str, List[str]]:
    """``--layers``: comma-separated names, ``auto`` (default) or ``none`` (the input only)."""
    if text is None or text.strip() == "auto":
        return "auto"
    if text.strip() == "none":
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


METHODS = ("lmac", "lmac_td")
"""What ``captum-lmac fit --method`` trains: L-MAC (a mask on the STFT) or LMAC-TD (a mask on a learned
time-domain representation; the explanation is a waveform)."""


def _waveforms(ds: Dataset, index: Sequence[int], progress: bool, desc: str) -> torch.Tensor:
    """The clips ``index`` of a reader as one (N, samples) tensor (LMAC-TD trains in memory)."""
    rows = [ds[i][0] for i in tqdm(list(index), desc=desc, disable=not progress, leave=False)]
    return torch.stack(rows)


def fit_interpreter(
    model: str,
    data: PathLike,
    out: PathLike,
    weights: Optional[PathLike] = None,
    input: str = "auto",
    layers: Union[str, Sequence[str]] = "auto",
    stft: Optional[Dict[str, Any]] = None,
    duration: float = 5.0,
    epochs: int = 12,
    batch_size: int = 16,
    lr: float = 2e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    workers: int = 0,
    crop: str = "start",
    max_val_clips: int = 256,
    checkpoint_dir: Optional[PathLike] = None,
    checkpoint_every: int = 1,
    checkpoint_steps: Optional[int] = None,
    resume: bool = False,
    device: str = "cpu",
    method: str = "lmac",
    alpha: float = 0.75,
    autoencoder_steps: int = 100,
) -> Dict[str, Any]:
    """Fit L-MAC (or LMAC-TD, ``method="lmac_td"``) for the user's classifier on the clips of ``data``
    and save it to ``out``.

    The training clips are streamed (read and analysed batch by batch, ``workers`` loader
    processes); the validation clips (the last ``val_fraction``, at most ``max_val_clips``) are held
    in memory. ``crop="random"`` cuts clips longer than ``duration`` at a seeded random offset every
    epoch (default ``"start"``: the reader's rule). In an initialised process group (``torchrun``)
    the fit is distributed and only rank 0 writes ``out`` and the checkpoints.

    LMAC-TD (``alpha``: the share of the classifier's representations in the masker's input,
    ``autoencoder_steps``: the filterbank's pretraining) holds its training clips in memory and runs
    in one process without checkpoints.

    Returns a summary (clips, chosen layers, best epoch, validation Fid-In and mask mean, seconds;
    ``written`` False on ranks other than 0).
    """
    if not 0 <= float(val_fraction) < 1:
        raise InputError(f"--val-fraction must lie in [0, 1), got {val_fraction}")
    check_writable(out, "--out")  # before any work: a failed run writes nothing
    if crop not in ("start", "random"):
        raise InputError(f"--crop must be 'start' or 'random', got {crop!r}")
    if int(max_val_clips) < 1:
        raise InputError(f"--max-val-clips must be >= 1, got {max_val_clips}")
    if resume and checkpoint_dir is None:
        raise InputError("--resume needs --checkpoint-dir (the folder of the fit to resume)")
    info = distributed.current()
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "lmac_td":
        if checkpoint_dir is not None or resume:
            raise InputError("--method lmac_td: LMAC-TD fits are not checkpointed; leave out --checkpoint-dir / --resume")
        if info.world_size > 1:
            raise InputError("--method lmac_td runs in one process; start it without torchrun / --distributed")
        if crop != "start":
            raise InputError("--method lmac_td reads every clip once (--crop start)")
    t0 = time.time()
    analysis = STFT(**{**DEFAULT_STFT, **(stft or {})})
    clf = adapt_model(load_model(model, weights), analysis, input=input)
    if device == "cuda":
        clf = clf.to(torch.device("cuda", info.local_rank))
    ds = read_clips(data, analysis.sample_rate, duration)
    if len(ds) < 2:
        raise InputError(f"{data} holds {len(ds)} clip(s); fitting needs at least 2")
    n_val = int(round(len(ds) * float(val_fraction))) if len(ds) >= 10 else 0
    n_train = len(ds) - n_val
    if method == "lmac_td":
        return _fit_td(clf, ds, n_train, n_val, analysis, out, model, weights, input, layers, duration, data,
                       epochs, batch_size, lr, seed, progress, max_val_clips, alpha, autoencoder_steps, t0)
    train = StreamingSpectrograms(ds, analysis, clip_seconds=duration if crop == "random" else None,
                                  crop="random" if crop == "random" else None, seed=seed, num_workers=workers,
                                  index=range(n_train), keep_clean=False)
    val: Optional[SpectrogramSet] = None
    if n_val:
        val_index = list(range(n_train, len(ds)))[: int(max_val_clips)]
        val = to_spectrograms(ReaderSubset(ds, val_index), analysis, keep=(), progress=progress and info.is_main)
    hooked = layers if isinstance(layers, str) else qualify_layers(clf, list(layers))
    lmac = LMAC(clf, hooked)
    hist = lmac.fit(train, epochs=epochs, batch_size=batch_size, lr=lr, val=val, seed=seed,
                    progress=progress and info.is_main, checkpoint_dir=checkpoint_dir,
                    checkpoint_every=checkpoint_every, checkpoint_steps=checkpoint_steps, resume=resume)
    lmac.history["cli"] = {"model": str(model), "weights": str(weights) if weights else None, "input": input,
                           "stft": analysis.config(), "duration": float(duration), "data": str(data)}
    path = lmac.save(out) if info.is_main else Path(out)
    best = hist.get("best_epoch", len(hist["loss"]) - 1)
    summary = {"interpreter": str(path), "clips": n_train, "validation_clips": 0 if val is None else len(val),
               "layers": lmac.layer_specs(), "auto_choice": lmac.auto_choice, "best_epoch": best,
               "seconds": round(time.time() - t0, 1), "world_size": info.world_size, "written": info.is_main}
    for k in ("val_fid_in", "val_mask_mean"):
        if k in hist:
            summary[k] = hist[k][best]
    summary["method"] = "lmac"
    return summary


def _fit_td(clf, ds, n_train, n_val, analysis, out, model, weights, input, layers, duration, data, epochs,
            batch_size, lr, seed, progress, max_val_clips, alpha, autoencoder_steps, t0) -> Dict[str, Any]:
    """The LMAC-TD branch of :func:`fit_interpreter` (waveforms in memory, one process)."""
    x_train = _waveforms(ds, range(n_train), progress, "reading training clips")
    x_val = _waveforms(ds, list(range(n_train, len(ds)))[: int(max_val_clips)], progress,
                       "reading validation clips") if n_val else None
    hooked = layers if isinstance(layers, str) else qualify_layers(clf, list(layers))
    td = LMACTD(clf, hooked, alpha=alpha, stft=analysis)
    hist = td.fit(x_train, epochs=epochs, batch_size=batch_size, lr=lr, autoencoder_steps=autoencoder_steps,
                  val=x_val, seed=seed, progress=progress)
    td.history["cli"] = {"model": str(model), "weights": str(weights) if weights else None, "input": input,
                         "stft": analysis.config(), "duration": float(duration), "data": str(data)}
    path = td.save(out)
    best = hist.get("best_epoch", len(hist["loss"]) - 1)
    summary = {"interpreter": str(path), "clips": n_train, "validation_clips": 0 if x_val is None else len(x_val),
               "layers": td.layer_specs(), "auto_choice": td.auto_choice, "best_epoch": best,
               "seconds": round(time.time() - t0, 1), "world_size": 1, "written": True, "method": "lmac_td",
               "autoencoder_si_sdr": hist.get("autoencoder_si_sdr")}
    for k in ("val_fid_in", "val_mask_mean"):
        if k in hist:
            summary[k] = hist[k][best]
    return summary


def build_parser(prog: str = "captum-lmac fit") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description="Fit L-MAC (or LMAC-TD) for your own classifier on a folder of clips.")
    p.add_argument("--model", required=True,
                   help="pkg.module:factory, path/to/file.py:factory, or a TorchScript file")
    p.add_argument("--weights", default=None, help="weights of the model (a state_dict, loaded with weights_only)")
    p.add_argument("--input", default="auto", choices=["auto", "spectrogram", "waveform"],
                   help="what the model takes (default: detected on a probe input)")
    p.add_argument("--layers", default=None,
                   help="comma-separated layer names feeding the decoder, 'auto' (default: the documented rule, "
                        "printed) or 'none' (a model that cannot be hooked: the decoder reads the input only)")
    p.add_argument("--data", required=True, help="folder of WAVs, or an ESC-50 / UrbanSound8K layout")
    p.add_argument("--out", required=True, help="where the fitted interpreter goes (.pt)")
    p.add_argument("--duration", type=float, default=5.0, help="clip length in seconds (crop / pad)")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_STFT["sample_rate"])
    p.add_argument("--n-fft", type=int, default=DEFAULT_STFT["n_fft"])
    p.add_argument("--hop-length", type=int, default=DEFAULT_STFT["hop_length"])
    p.add_argument("--win-length", type=int, default=DEFAULT_STFT["win_length"])
    p.add_argument("--window", default=DEFAULT_STFT["window"], choices=["hamming", "hann"])
    p.add_argument("--epochs", type=int, default=12, help="default: L-MAC's (issue 14)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3, help="default: L-MAC's (issue 14)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    m = p.add_argument_group("method")
    m.add_argument("--method", default="lmac", choices=list(METHODS),
                   help="lmac (default: a mask on the STFT) or lmac_td (a mask on a learned time-domain "
                        "representation; the explanation is a waveform)")
    m.add_argument("--alpha", type=float, default=0.75,
                   help="LMAC-TD: share of the classifier's representations in the masker's input (0: the "
                        "waveform only, --layers none)")
    m.add_argument("--autoencoder-steps", type=int, default=100, help="LMAC-TD: filterbank pretraining steps")
    s = p.add_argument_group("scale")
    s.add_argument("--workers", type=int, default=0, help="loader processes reading and analysing clips (default 0)")
    s.add_argument("--crop", default="start", choices=["start", "random"],
                   help="clips longer than --duration: cut at the start (default) or at a seeded random offset per epoch")
    s.add_argument("--max-val-clips", type=int, default=256, help="validation clips held in memory (default 256)")
    s.add_argument("--checkpoint-dir", default=None, help="write a resumable fit state (last.pt) into this folder")
    s.add_argument("--checkpoint-every", type=int, default=1, help="epochs between checkpoints (default 1)")
    s.add_argument("--checkpoint-steps", type=int, default=None, help="also checkpoint every N optimisation steps")
    s.add_argument("--resume", action="store_true", help="continue the fit stored in --checkpoint-dir")
    s.add_argument("--distributed", action="store_true",
                   help="train with DDP over the processes torchrun started (automatic under torchrun with >1 process)")
    s.add_argument("--backend", default=None, choices=["gloo", "nccl"], help="process-group backend (default: "
                   "nccl with --device cuda, else gloo)")
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the classifier and decoder run "
                   "(cuda: each rank uses GPU LOCAL_RANK)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``captum-lmac fit ...``; returns the exit status (2 on bad input, reported in one line)."""
    reuse_freed_memory()
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    stft = dict(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop_length,
                win_length=args.win_length, window=args.window)
    started = False
    try:
        if args.distributed or (distributed.launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1):
            started = not distributed.current().active
            distributed.init_distributed(args.backend, device=args.device)
        summary = fit_interpreter(args.model, args.data, args.out, weights=args.weights, input=args.input,
                                  layers=parse_layers(args.layers), stft=stft, duration=args.duration,
                                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  val_fraction=args.val_fraction, seed=args.seed, progress=not args.quiet,
                                  workers=args.workers, crop=args.crop, max_val_clips=args.max_val_clips,
                                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                                  checkpoint_steps=args.checkpoint_steps, resume=args.resume, device=args.device,
                                  method=args.method, alpha=args.alpha, autoencoder_steps=args.autoencoder_steps)
    except (InputError, DataNotFoundError, CheckpointError, NotFittedError) as exc:
        print(f"captum-lmac fit: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except FitInterrupted as exc:
        if distributed.current().is_main:
            print(f"captum-lmac fit: {exc}", file=sys.stderr)
        return 128 + int(exc.signum or signal.SIGINT)
    finally:
        if started:
            distributed.shutdown()
    if not summary["written"]:
        return 0  # ranks other than 0 stay silent
    if summary["auto_choice"]:
        print(f"layers='auto': {summary['auto_choice']}")
    label = "LMAC-TD" if summary["method"] == "lmac_td" else "L-MAC"
    print(f"fitted {label} on {summary['clips']} clips (validation {summary['validation_clips']}), layers "
          f"{summary['layers']}, best epoch {summary['best_epoch']}"
          + (f", validation Fid-In {summary['val_fid_in']:.2f}, mask mean {summary['val_mask_mean']:.2f}"
             if "val_fid_in" in summary else "")
          + (f", autoencoder SI-SDR {summary['autoencoder_si_sdr']:.1f} dB"
             if summary.get("autoencoder_si_sdr") is not None else "")
          + (f" on {summary['world_size']} processes" if summary["world_size"] > 1 else "")
          + f"; {summary['seconds']:.0f} s")
    print(f"interpreter: {summary['interpreter']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["METHODS", "DEFAULT_STFT", "read_clips", "parse_layers", "fit_interpreter", "build_parser", "main"]
