#!/usr/bin/env python
"""Time an L-MAC fit on a suite's training clips with this checkout and another one, in one run.

Each fit runs in its own subprocess with ``--threads`` torch threads, the versions alternating
``--repeats`` times (so a changing machine load hits both alike), each with **its own** built-in
L-MAC settings for the suite (the ``lmac`` section: constructor and fit arguments; layers: the
classifier's last four blocks, as the benchmark uses them) on the suite's classifier architecture
(the recipe's CompactCNN; weights from ``--classifier`` or random — the time does not depend on
them). Prints, and writes to ``--out`` (Markdown + JSON), the fit times, seconds per epoch and the
ratios; ``--profile`` adds a per-operator CPU profile of a short fit of each version (where the
time goes).

``--before`` is a checkout (or an extracted ``captum_lmac`` package, e.g.
``git archive <commit> captum_lmac | tar -x -C /tmp/before``) of the code to compare against.

Examples::

    python benchmarks/lmac_fit_speed.py --suite esc10 --before /tmp/before --repeats 2 --profile
    python benchmarks/lmac_fit_speed.py --suite esc10 --data esc10_tensors.pt --threads 2
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

import torch

HERE = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, sys, time
args = json.loads(sys.argv[1])
sys.path.insert(0, args["root"])
import torch
torch.set_num_threads(args["threads"])
import captum_lmac as cl
try:  # the process setting of the command-line entry points, where this version has it
    from captum_lmac._utils import reuse_freed_memory
    reuse_freed_memory()
except ImportError:
    pass
from captum_lmac.benchmark.config import builtin_config
from captum_lmac.benchmark.methods import default_layers
from captum_lmac.benchmark.suites import STFT_DEFAULTS
try:
    from captum_lmac.training import build_classifier
except ImportError:  # the code before the refactor of issue 9
    from captum_lmac.train import build_classifier
assert cl.__file__.startswith(args["root"]), cl.__file__
cfg = builtin_config(args["suite"])
if hasattr(cfg, "section"):
    sec = cfg.section("lmac")
    init, fit, rec = dict(sec.init), dict(sec.fit), cfg.classifier.recipe
else:  # before issue 9 the config was a plain dict and the recipes a table of the suites module
    from captum_lmac.benchmark.suites import TRAIN_CONFIGS
    init, fit, rec = dict(cfg["lmac"]["init"]), dict(cfg["lmac"]["fit"]), TRAIN_CONFIGS[args["suite"]]
data = torch.load(args["data"])
model = build_classifier(int(data["n_classes"]), cl.STFT(**STFT_DEFAULTS), n_mels=rec["n_mels"], channels=rec["channels"])
if args.get("classifier"):
    model.load_state_dict(torch.load(args["classifier"]))
model.eval()
fit.update(args.get("fit") or {})
lm = cl.LMAC(model, default_layers(model), **init)
if args.get("profile"):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        lm.fit(data["train"][:32], epochs=1, batch_size=16, progress=False, seed=0,
               **{k: v for k, v in fit.items() if k not in ("epochs", "batch_size")})
    print("PROFILE", json.dumps(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20,
                                                           max_name_column_width=44)))
    sys.exit(0)
t0, c0 = time.time(), time.process_time()
hist = lm.fit(data["train"], val=data["val"], progress=False, seed=0, **fit)
wall, cpu = time.time() - t0, time.process_time() - c0
best = hist.get("best_epoch", len(hist["loss"]) - 1)
print("RESULT", json.dumps({"seconds": wall, "cpu_seconds": cpu, "epochs": len(hist["loss"]), "fit": fit,
                            "init": init, "package": cl.__file__,
                            "val_fid_in": hist.get("val_fid_in", [None] * (best + 1))[best],
                            "val_mask_mean": hist.get("val_mask_mean", [None] * (best + 1))[best]}))
'''


def _tensors(args: argparse.Namespace) -> dict:
    """{"train": X, "val": X, "n_classes"} from ``--data`` (a torch file with train/val X, the scratch
    format ``{"train": {"X": ...}, ...}`` too) or from the suite's data reader."""
    if args.data:
        raw = torch.load(args.data)
        pick = lambda v: v["X"] if isinstance(v, dict) else v  # noqa: E731
        out = {k: pick(raw[k]) for k in ("train", "val")}
        y = raw["train"].get("y") if isinstance(raw["train"], dict) else None
        out["n_classes"] = int(raw.get("n_classes", int(y.max()) + 1 if y is not None else 10))
    else:
        sys.path.insert(0, str(HERE))
        from captum_lmac import STFT
        from captum_lmac.benchmark.config import builtin_config
        from captum_lmac.benchmark.data import load_data
        from captum_lmac.benchmark.suites import STFT_DEFAULTS

        cfg = builtin_config(args.suite)
        sets = load_data(cfg, STFT(**STFT_DEFAULTS), args.data_root, progress=False)
        out = {"train": sets["train"].X, "val": sets["val"].X, "n_classes": len(sets["train"].classes)}
    if args.n_train:
        out["train"] = out["train"][: args.n_train]
    return out


def _run(root: Path, args: argparse.Namespace, data_file: str, profile: bool = False) -> dict:
    payload = {"root": str(root), "threads": args.threads, "suite": args.suite, "data": data_file,
               "classifier": args.classifier, "profile": profile, "fit": json.loads(args.fit) if args.fit else {}}
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True,
                          env=env, cwd=str(root))
    tag = "PROFILE" if profile else "RESULT"
    for line in proc.stdout.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :]) if not profile else {"table": json.loads(line[len(tag) + 1 :])}
    raise SystemExit(f"the fit with {root} failed:\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="esc10")
    ap.add_argument("--before", type=Path, help="checkout (or extracted package) to compare against")
    ap.add_argument("--after", type=Path, default=HERE, help="checkout to time (default: this one)")
    ap.add_argument("--data", help="torch file with the train / val spectrograms (default: read the suite's data)")
    ap.add_argument("--data-root", help="data root for the suite's reader")
    ap.add_argument("--classifier", help="state dict of the suite classifier (default: random weights)")
    ap.add_argument("--n-train", type=int, help="first N training clips only")
    ap.add_argument("--fit", help="JSON overriding both versions' fit arguments (e.g. '{\"epochs\": 2}')")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="also profile a short fit of each version")
    ap.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)
    versions = {"after": args.after.resolve()}
    if args.before:
        versions = {"before": args.before.resolve(), **versions}
    data = _tensors(args)
    print(f"{data['train'].shape[0]} training / {data['val'].shape[0]} validation clips, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}", flush=True)
    runs = {name: [] for name in versions}
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_file = str(Path(tmp) / "data.pt")
        torch.save(data, data_file)
        for rep in range(args.repeats):
            for name, root in versions.items():
                r = _run(root, args, data_file)
                r["load_average"] = os.getloadavg()[0]
                runs[name].append(r)
                print(f"[{rep + 1}/{args.repeats}] {name:6s} {r['seconds']:7.1f} s for {r['epochs']} epochs "
                      f"({r['seconds'] / r['epochs']:.1f} s/epoch; fit {r['fit']}), val Fid-In {r['val_fid_in']}, "
                      f"val mask mean {r['val_mask_mean']}", flush=True)
        if args.profile:
            for name, root in versions.items():
                profiles[name] = _run(root, args, data_file, profile=True)["table"]
    summary = {name: {"seconds": sum(r["seconds"] for r in rs) / len(rs),
                      "per_epoch": sum(r["seconds"] / r["epochs"] for r in rs) / len(rs),
                      "epochs": rs[0]["epochs"], "fit": rs[0]["fit"], "init": rs[0]["init"]} for name, rs in runs.items()}
    loads = ", ".join(f"{r['load_average']:.1f}" for rs in runs.values() for r in rs)
    lines = [f"# L-MAC fit time, suite `{args.suite}`", "",
             f"{data['train'].shape[0]} training + {data['val'].shape[0]} validation clips; {args.threads} torch "
             f"thread(s); {platform.processor() or platform.machine()}; versions alternated {args.repeats}× "
             f"(load average after each run: {loads}).", "",
             "| version | fit (s) | epochs | s / epoch | settings |", "|---|---:|---:|---:|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['seconds']:.1f} | {s['epochs']} | {s['per_epoch']:.1f} | init {s['init']}, fit {s['fit']} |")
    if "before" in summary:
        b, a = summary["before"], summary["after"]
        ratio, per = a["seconds"] / b["seconds"], a["per_epoch"] / b["per_epoch"]
        lines += ["", f"**Ratio after / before: {ratio:.2f} for the whole fit, {per:.2f} per epoch.**"]
        print(f"ratio after/before: fit {ratio:.2f}, per epoch {per:.2f}")
    for name, table in profiles.items():
        lines += ["", f"## Profile: {name} (1 epoch on 32 clips, self CPU time)", "", "```", table, "```"]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({"runs": runs, "summary": summary, "threads": args.threads,
                                                             "created": time.strftime("%Y-%m-%d %H:%M")}, indent=1))
        print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
