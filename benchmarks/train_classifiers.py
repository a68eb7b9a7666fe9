#!/usr/bin/env python
"""Train the compact reference classifier of a benchmark suite and cache it.

Writes ``<cache>/classifiers/<suite>.pt`` (a pickle-free classifier checkpoint, see
``captum_lmac.training.save_classifier``) and ``<suite>.json`` next to it (validation and test
accuracy, CPU training time, the recipe and the per-epoch history) — the file the benchmark suite
reuses — and prints the numbers. The recipe is the suite's ``classifier.recipe`` (``benchmarks/<suite>.json``).

Splits (``captum_lmac.benchmark.suites``):
    synthetic  SyntheticEvents train 800 (seed 0) / val 200 (seed 1) / test 400 (seed 2)
    esc10      ESC-10 folds 1-3 / fold 4 / fold 5               (target: test accuracy >= 70 %)
    fsdd       FSDD takes 10-49 / takes 5-9 / takes 0-4 (test)   (target: test accuracy >= 90 %)

Examples::

    .venv/bin/python benchmarks/train_classifiers.py --suite synthetic
    .venv/bin/python benchmarks/train_classifiers.py --suite esc10 --epochs 80 --cache cache
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from captum_lmac.benchmark.classifiers import recipe_classifier
from captum_lmac.benchmark.config import load_config

TARGETS = {"synthetic": None, "esc10": 0.70, "fsdd": 0.90}
SUITES = tuple(TARGETS)


def _channels(text: str) -> tuple:
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--channels wants comma-separated integers, got {text!r}") from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=list(SUITES) + ["all"], required=True,
                   help="which suite to train ('all': every suite)")
    p.add_argument("--cache", default="cache", help="cache folder: writes classifiers/<suite>.pt and <suite>.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the suite recipe)")
    p.add_argument("--data-root", default=None, help="data root (default: $CAPTUM_LMAC_DATA or ../shared/data)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--mixup", type=float, default=None, help="mixup Beta parameter (0 disables)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    p.add_argument("--channels", type=_channels, default=None, help="CompactCNN block channels, e.g. 32,64,128,256")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--reuse", action="store_true", help="load <out-dir>/<suite>.pt if present instead of retraining")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    recipe_overrides = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in dict(lr=args.lr, batch_size=args.batch_size, mixup=args.mixup, patience=args.patience,
                         channels=args.channels, epochs=args.epochs).items()
        if v is not None
    }
    status = 0
    for suite in suites:
        t0 = time.time()
        cfg = load_config(suite, {"seed": args.seed, "classifier": {"recipe": recipe_overrides}})
        print(f"== {suite}: recipe {cfg.classifier.recipe}", flush=True)
        _, _, classes, info = recipe_classifier(cfg, args.cache, args.data_root, progress=not args.quiet,
                                                retrain=not args.reuse)
        pt = info["checkpoint"]
        js = str(pt)[:-3] + ".json"
        target = TARGETS[suite]
        acc = info.get("test_acc")
        ok = target is None or (acc is not None and acc >= target)
        summary = {
            "suite": suite,
            "test_acc": acc,
            "val_acc": info.get("val_acc"),
            "train_seconds": info.get("train_seconds"),
            "train_cpu_seconds": info.get("train_cpu_seconds"),
            "data_seconds": info.get("data_seconds"),
            "epochs_run": info.get("epochs_run"),
            "best_epoch": info.get("best_epoch"),
            "classes": len(classes),
            "target": target,
            "meets_target": ok,
            "checkpoint": str(pt),
            "report": str(js),
            "total_seconds": round(time.time() - t0, 1),
        }
        print(json.dumps(summary), flush=True)
        print(
            f"{suite}: test accuracy {100 * acc:.1f} % (val {100 * (info.get('val_acc') or 0):.1f} %), "
            f"training {info.get('train_seconds')} s wall / {info.get('train_cpu_seconds')} s CPU, "
            f"{info.get('epochs_run')} epochs (best {info.get('best_epoch')})"
            + ("" if target is None else f"; target {100 * target:.0f} % {'met' if ok else 'MISSED'}"),
            flush=True,
        )
        if not ok:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
