#!/usr/bin/env python
"""Time the benchmark's per-row scoring (every registered scorer) with this checkout and another one, in one run.

The workload is one ESC-10 condition as the ``esc10`` suite scores it: ``--n`` clips of 5 s at the
suite's STFT (513 × 431 bins), the suite's CompactCNN (random weights: the time does not depend on
them), ground truth (a known target source, so precision/recall and the SI-SDR of the listenable
explanation are scored too) and ``--rows`` masks of different kinds (uniform noise, a smooth map, a
sparse one, a GradCAM-like blocky one). Each version runs in its own subprocess with ``--threads``
torch threads, the versions alternating ``--repeats`` times; each scores the rows the way its own
harness does (a version whose :func:`evaluate_masks` takes ``probs_X`` gets the probabilities on X
computed once for the condition, as its harness does). The scores of the two versions are compared
too: the speed-up must not change a single value.

Examples::

    git archive e5ecc80 captum_lmac | tar -x -C /tmp/before
    python benchmarks/scoring_speed.py --before /tmp/before --threads 2 --repeats 2 --out benchmarks/results/scoring_speed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

CHILD = r'''
import inspect, json, sys, time
args = json.loads(sys.argv[1])
sys.path.insert(0, args["root"])
import numpy as np
import torch
torch.set_num_threads(args["threads"])
import captum_lmac as cl
from captum_lmac.benchmark import evaluate_masks
from captum_lmac.benchmark.suites import STFT_DEFAULTS
from captum_lmac.metrics import oracle_mask
from captum_lmac.training import build_classifier
assert cl.__file__.startswith(args["root"]), cl.__file__
stft = cl.STFT(**STFT_DEFAULTS)
g = torch.Generator().manual_seed(0)
torch.manual_seed(0)
n, L = args["n"], 5 * stft.sample_rate
target = 0.1 * torch.randn(n, L, generator=g)
rest = 0.1 * torch.randn(n, L, generator=g)
X, phase = stft.analyze(target + rest)
Xt, Xr = stft.analyze(target, allow_silent=True)[0], stft.analyze(rest, allow_silent=True)[0]
gt = {"target_wave": target, "oracle": oracle_mask(Xt, Xr)}
model = build_classifier(10, stft, n_mels=80, channels=(8, 16, 32, 64)).eval()
F, T = X.shape[-2:]
smooth = torch.nn.functional.interpolate(torch.rand(n, 1, 8, 8, generator=g), size=(F, T), mode="bilinear")
masks = {"uniform": torch.rand(X.shape, generator=g),
         "smooth": smooth.clamp(0, 1),
         "sparse": (torch.rand(X.shape, generator=g) > 0.95).float() * torch.rand(X.shape, generator=g),
         "blocky": torch.nn.functional.interpolate(torch.rand(n, 1, 16, 27, generator=g), size=(F, T)).clamp(0, 1)}
rows = list(masks)[: args["rows"]] if args["rows"] <= len(masks) else [list(masks)[i % len(masks)] for i in range(args["rows"])]

def listen(M):
    return torch.cat([stft.listen(X[i : i + 32], phase[i : i + 32], M[i : i + 32], length=L) for i in range(0, n, 32)])

shared = "probs_X" in inspect.signature(evaluate_masks).parameters
import captum_lmac.benchmark.harness as harness
batch = getattr(harness, "SCORE_BATCH", 32)  # as this version's harness scores
t0 = time.perf_counter()
extra = {}
if shared:  # as this version's harness does: the probabilities on X once for the condition
    from captum_lmac.metrics import class_probabilities
    extra["probs_X"] = class_probabilities(model, X, batch_size=batch)
scores = {}
for i, name in enumerate(rows):
    per = evaluate_masks(model, X, masks[name], batch_size=batch, gt=gt, listen=listen, quantus_check=False,
                         log=lambda m: None, **extra)
    scores[f"{i}:{name}"] = {k: [float(x) for x in np.asarray(v)] for k, v in per.items()}
wall = time.perf_counter() - t0
print("RESULT", json.dumps({"seconds": wall, "rows": len(rows), "shared_probs": shared, "scores": scores,
                            "package": cl.__file__}))
'''


def _run(root: Path, args: argparse.Namespace) -> dict:
    payload = {"root": str(root), "threads": args.threads, "n": args.n, "rows": args.rows}
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True,
                          env=env, cwd=str(root))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"the scoring with {root} failed:\n{proc.stderr[-3000:]}")


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for row in a:
        for k in a[row]:
            if k not in b[row] or any(not (x == y or (x != x and y != y)) for x, y in zip(a[row][k], b[row][k])):
                return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, help="checkout (or extracted package) to compare against")
    ap.add_argument("--after", type=Path, default=HERE, help="checkout to time (default: this one)")
    ap.add_argument("--n", type=int, default=40, help="clips in the condition (the esc10 suite: 40)")
    ap.add_argument("--rows", type=int, default=8, help="rows (methods) scored on the condition")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)
    if args.n < 1 or args.rows < 1 or args.threads < 1 or args.repeats < 1:
        ap.error("--n, --rows, --threads and --repeats must be positive")
    versions = {"after": args.after.resolve()}
    if args.before:
        versions = {"before": args.before.resolve(), **versions}
    print(f"{args.rows} rows × {args.n} clips, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}",
          flush=True)
    runs = {name: [] for name in versions}
    for rep in range(args.repeats):
        for name, root in versions.items():
            r = _run(root, args)
            r["load_average"] = os.getloadavg()[0]
            runs[name].append(r)
            print(f"[{rep + 1}/{args.repeats}] {name:6s} {r['seconds']:6.1f} s ({r['seconds'] / r['rows']:.2f} s/row; "
                  f"p(X) shared: {r['shared_probs']})", flush=True)
    summary = {name: {"seconds": sum(r["seconds"] for r in rs) / len(rs), "rows": rs[0]["rows"]}
               for name, rs in runs.items()}
    loads = ", ".join(f"{r['load_average']:.1f}" for rs in runs.values() for r in rs)
    lines = ["# Per-row scoring time (AI/AD/AG/FF/Fid-In/MM, Sparseness/Complexity, precision/recall, SI-SDR)", "",
             f"{args.rows} rows × {args.n} clips of 5 s (513 × 431 STFT bins), the esc10 CompactCNN; {args.threads} "
             f"torch thread(s); {platform.processor() or platform.machine()}; versions alternated {args.repeats}× "
             f"(load average after each run: {loads}).", "",
             "| version | seconds | s / row |", "|---|---:|---:|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['seconds']:.1f} | {s['seconds'] / s['rows']:.2f} |")
    result = {"summary": summary, "threads": args.threads, "n": args.n, "created": time.strftime("%Y-%m-%d %H:%M"),
              "runs": {k: [{kk: vv for kk, vv in r.items() if kk != "scores"} for r in rs] for k, rs in runs.items()}}
    if "before" in summary:
        ratio = summary["after"]["seconds"] / summary["before"]["seconds"]
        same = _same(runs["before"][0]["scores"], runs["after"][0]["scores"])
        result.update(ratio=ratio, identical_scores=same)
        lines += ["", f"**Ratio after / before: {ratio:.2f}.** Scores identical: {'yes' if same else 'NO'}."]
        print(f"ratio after/before: {ratio:.2f}; scores identical: {same}")
    if args.out:
        sys.path.insert(0, str(HERE))
        from captum_lmac._io import atomic_write

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out.with_suffix(".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
        atomic_write(args.out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
        print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
