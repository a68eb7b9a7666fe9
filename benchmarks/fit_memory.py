#!/usr/bin/env python
"""Peak memory of an L-MAC fit against the size of its training set: streamed (flat) vs in memory (grows).

Each measurement runs in a fresh subprocess that reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its RSS just before the fit (after imports and
building the classifier). The data sets, both 16 kHz mono, cropped / padded to ``--clip-seconds``:

- ``esc10``: ESC-10 folds 1-3 (240 clips of 5 s; seeded random 2 s crops each epoch);
- ``fsdd+esc10``: FSDD training takes (2,700 spoken digits, mostly < 1 s, zero-padded with a
  per-frame validity mask) + the same 240 ESC-10 clips — 2,940 clips.

Every run takes the same ``--steps`` optimisation steps of ``--batch-size`` clips (the first steps of
one epoch over the whole shuffled set), so the work is the same and only the set size differs. The
classifier is the compact CNN of the suites (channels 8-16-32-64, 80 log-mel bands of the reference
STFT) with random weights (memory does not depend on training); the decoder is L-MAC's with
``--hidden`` channels on blocks 1-4. One thread.

Examples::

    .venv/bin/python benchmarks/fit_memory.py                    # all four runs, ~5 min on 2 cores
    .venv/bin/python benchmarks/fit_memory.py --out benchmarks/results/fit_memory
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from captum_lmac import LMAC, STFT, build_classifier
from captum_lmac.data import ESC50, FSDD, ConcatReaders, StreamingSpectrograms, default_data_root

RUNS = [("esc10", "stream"), ("fsdd+esc10", "stream"), ("esc10", "memory"), ("fsdd+esc10", "memory")]


def rss_mb() -> float:
    """Current resident set size in MB (/proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def measure(data: str, mode: str, args: argparse.Namespace) -> dict:
    """One measurement (runs inside the subprocess)."""
    torch.set_num_threads(1)
    root = Path(args.data_root) if args.data_root else default_data_root()
    esc = ESC50(root / "esc10", folds=[1, 2, 3], sample_rate=16000, duration=5.0)
    reader = esc if data == "esc10" else ConcatReaders([FSDD(root / "fsdd", split="train", sample_rate=16000), esc])
    stft = STFT()
    torch.manual_seed(0)
    model = build_classifier(n_classes=10, stft=stft, n_mels=80, channels=(8, 16, 32, 64)).eval()
    layers = ["net.block1", "net.block2", "net.block3", "net.block4"]

    class FirstSteps(StreamingSpectrograms):
        """The first ``steps`` global batches of every epoch (the permutation is over the whole set)."""

        def fit_batches(self, batch_size, generator=None, shuffle=True):
            return itertools.islice(super().fit_batches(batch_size, generator, shuffle), args.steps)

    stream = FirstSteps(reader, stft, clip_seconds=args.clip_seconds, crop="random", seed=0, keep_clean=False,
                        batch_size=32)
    t0 = time.time()
    if mode == "memory":  # the same clips, loaded as one tensor first (what in-memory fits do)
        X = torch.cat([b.X for b in stream])
        train = X[torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))[: args.steps * args.batch_size]]
        load_seconds = time.time() - t0
        before = rss_mb()
    else:
        train, load_seconds, before = stream, 0.0, rss_mb()
    lmac = LMAC(model, layers, hidden=args.hidden)
    t1 = time.time()
    hist = lmac.fit(train, epochs=1, batch_size=args.batch_size, progress=False)
    fit_seconds = time.time() - t1
    return {"data": data, "mode": mode, "clips": len(reader), "steps": args.steps, "batch_size": args.batch_size,
            "clip_seconds": args.clip_seconds, "hidden": args.hidden, "decoder_parameters": hist["decoder_parameters"],
            "rss_before_fit_mb": round(before, 1), "peak_rss_mb": round(peak_mb(), 1),
            "load_seconds": round(load_seconds, 1), "fit_seconds": round(fit_seconds, 1),
            "loss": round(hist["loss"][0], 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="benchmarks/results/fit_memory")
    p.add_argument("--run", nargs=2, metavar=("DATA", "MODE"), help=argparse.SUPPRESS)  # inside the subprocess
    p.add_argument("--only", default=None, help="comma-separated runs, e.g. esc10:stream,fsdd+esc10:stream")
    args = p.parse_args(argv)
    if args.run:
        print(json.dumps(measure(args.run[0], args.run[1], args)))
        return 0
    runs = RUNS if not args.only else [tuple(r.split(":")) for r in args.only.split(",")]
    results = []
    for data, mode in runs:
        cmd = [sys.executable, __file__, "--run", data, mode, "--steps", str(args.steps), "--batch-size",
               str(args.batch_size), "--clip-seconds", str(args.clip_seconds), "--hidden", str(args.hidden)]
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return res.returncode
        row = json.loads(res.stdout.strip().splitlines()[-1])
        results.append(row)
        print(f"{row['data']:>11} {row['mode']:>6}: {row['clips']:5d} clips, peak RSS {row['peak_rss_mb']:7.1f} MB "
              f"(before the fit {row['rss_before_fit_mb']:7.1f} MB), fit {row['fit_seconds']} s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("steps", "batch_size", "clip_seconds", "hidden")}
    (out.with_suffix(".json")).write_text(json.dumps({"settings": settings, "runs": results,
                                                      "torch_threads": 1, "measured": time.strftime("%Y-%m-%d")},
                                                     indent=2) + "\n")
    lines = ["| data | clips | mode | peak RSS (MB) | RSS before fit (MB) | load (s) | fit (s) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['data']} | {r['clips']} | {r['mode']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['rss_before_fit_mb']:.0f} | {r['load_seconds']} | {r['fit_seconds']} |")
    head = (f"L-MAC fit peak memory: {args.steps} steps of {args.batch_size} clips ({args.clip_seconds:g} s, "
            f"random crops / zero padding), decoder hidden {args.hidden}, compact CNN 8-16-32-64 on 80 log-mel bands "
            "of the reference STFT, 1 thread, workers 0. \"RSS before fit\" is the process after its imports (torch, "
            "captum, quantus: ~585 MB) and, in memory mode, after loading the clips as one tensor.\n\n")
    (out.with_suffix(".md")).write_text(head + "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
