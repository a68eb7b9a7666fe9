"""The ``captum-lmac`` command line: demo, explain a WAV file, fit an interpreter, run a benchmark suite,
re-render or compare reports.

Every subcommand reports bad input as one line on stderr with exit status 2 (no traceback), and a
failed run writes no partial outputs (see :mod:`captum_lmac._cliutil` and :mod:`captum_lmac._io`).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ._cliutil import ArgumentParser, run_command
from ._utils import reuse_freed_memory
from .benchmark.cli import main as benchmark_main
from .benchmark.report import compare, rerender
from .demo import run_demo
from .errors import InputError
from .explain import explain_file
from .fit import main as fit_main

COMMANDS = ("demo", "explain", "fit", "benchmark", "report")


def _explain(args: argparse.Namespace) -> int:
    out = explain_file(
        args.wav, interpreter=args.interpreter, out=args.out, classifier=args.classifier, png=args.png,
        mask_domain=args.mask_domain, model=args.model, weights=args.weights, input=args.input,
        chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds, max_seconds=args.max_seconds,
        batch_windows=args.batch_windows, timeline=args.timeline, progress=not args.quiet,
    )
    windows = f" (mean over {out['windows']} windows)" if "windows" in out else ""
    print(f"class: {out['class']} (p = {out['probability']:.3f}){windows}")
    print(f"explanation audio: {out['wav']}")
    print(f"spectrogram + mask: {out['png']}" + (" (first window)" if "windows" in out else ""))
    if "timeline" in out:
        print(f"timeline: {out['timeline']}")
    print(f"throughput: {out['seconds']:.1f} s of audio in {out['wall_seconds']:.1f} s "
          f"({out['realtime_factor']:.1f}x real time)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    run_demo(out_dir=args.out, cache_dir=args.cache, seed=args.seed, quick=args.quick,
             size="tiny" if args.tiny else None)
    return 0


def _report(args: argparse.Namespace) -> int:
    folders = list(args.results)
    if len(folders) == 1:
        if args.out is not None:
            raise InputError("--out is for comparing several results folders; one folder is re-rendered in place "
                             "(captum-lmac report DIR)")
        paths = rerender(folders[0], log=lambda msg: print(msg, file=sys.stderr))
        print(f"re-rendered {paths['html']} (and {paths['md'].name}, {paths['csv'].name}, figures/) from results.json")
        return 0
    if args.out is None:
        raise InputError(f"comparing {len(folders)} results folders needs --out DIR (where comparison.html goes)")
    paths = compare(folders, args.out)
    print(f"comparison of {len(folders)} classifiers: {paths['html']} (and {paths['md'].name}, figures/)")
    return 0


def _benchmark(argv: List[str]) -> int:
    return int(benchmark_main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="captum-lmac", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="train a classifier on synthetic events, fit L-MAC, write explanations")
    d.add_argument("--out", default="demo_out", help="output folder (WAVs, PNGs, report)")
    d.add_argument("--cache", default="cache/demo", help="where the trained classifier and L-MAC are cached")
    d.add_argument("--seed", type=int, default=0)
    size = d.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (a smoke run)")
    size.add_argument("--tiny", action="store_true",
                      help="a few clips, a small STFT and network, seconds long (checks the page, not the numbers)")
    d.set_defaults(func=_demo)

    e = sub.add_parser("explain", help="explain a WAV file with a fitted L-MAC or LMAC-TD interpreter")
    e.add_argument("wav", help="input audio file (any sample rate; resampled to the classifier's)")
    e.add_argument("--classifier", default=None, help="classifier checkpoint (captum_lmac.save_classifier)")
    e.add_argument("--model", default=None,
                   help="your own classifier instead: pkg.module:factory, file.py:factory or a TorchScript file "
                        "(default: the one recorded by captum-lmac fit)")
    e.add_argument("--weights", default=None, help="weights of --model")
    e.add_argument("--input", default=None, choices=["auto", "spectrogram", "waveform"], help="what --model takes")
    e.add_argument("--interpreter", required=True, help="fitted interpreter (LMAC.save or LMACTD.save; captum-lmac fit writes either)")
    e.add_argument("--out", required=True, help="output WAV of the listenable explanation")
    e.add_argument("--png", default=None, help="figure path (default: next to --out)")
    e.add_argument("--mask-domain", default=None, choices=["linear", "log1p"], help="override the interpreter's masking domain")
    e.add_argument("--chunk-seconds", type=float, default=None,
                   help="explain in overlapping windows of this length, cross-faded (default for files longer than "
                        "--max-seconds: the interpreter's training clip length, else 5 s)")
    e.add_argument("--overlap-seconds", type=float, default=None,
                   help="overlap of consecutive windows (default: a quarter of the window, at most 1 s)")
    e.add_argument("--max-seconds", type=float, default=60.0,
                   help="files longer than this are explained in windows (default 60)")
    e.add_argument("--batch-windows", type=int, default=8, help="windows classified and masked together (default 8)")
    e.add_argument("--timeline", default=None, help="CSV of every window's decision (default: next to --out)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_explain)

    sub.add_parser("fit", help="fit L-MAC or LMAC-TD for your own classifier on a folder of clips (captum-lmac fit --help)",
                   add_help=False)
    sub.add_parser("benchmark", help="run a benchmark suite (captum-lmac benchmark --help)", add_help=False)

    r = sub.add_parser("report", help="re-render a benchmark report from results.json, or compare several runs",
                       description="One RESULTS_DIR: redraw the figures and rewrite report.html, results.md and "
                                   "results.csv from its results.json (nothing is recomputed; the clips' media in the "
                                   "folder are reused). Several: one comparison page across their classifiers, "
                                   "written to --out.")
    r.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="a folder written by `captum-lmac benchmark`")
    r.add_argument("--out", default=None, help="output folder of the comparison (several RESULTS_DIRs)")
    r.set_defaults(func=_report)
    return p


def _dispatch(argv: List[str]) -> int:
    if argv and argv[0] == "fit":
        return int(fit_main(argv[1:]) or 0)
    if argv and argv[0] == "benchmark":
        return _benchmark(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``captum-lmac``; returns the exit status: 0 on success, 2 on bad input (one line on stderr),
    130 on Ctrl-C, 1 on an unexpected error (a bug; ``CAPTUM_LMAC_TRACEBACK=1`` shows its traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"captum-lmac {argv[0]}" if argv and argv[0] in COMMANDS else "captum-lmac"
    reuse_freed_memory()  # batch-sized tensors reuse freed heap instead of faulting in fresh pages
    return run_command(prog, _dispatch, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
