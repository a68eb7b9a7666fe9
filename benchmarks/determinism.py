#!/usr/bin/env python
"""Is seeded training bit-reproducible on this machine? (issue 15.4)

Trains the same small classifier (compact CNN on SyntheticEvents) and then fits the same L-MAC on it,
with the same seeds, several times in fresh processes: at 1 torch thread twice, at 2 threads twice,
and at 2 threads with ``torch.use_deterministic_algorithms(True)``. Prints, and writes to ``--out``
(Markdown + JSON), the SHA-256 of the classifier's and of the decoder's weights for each run and
whether the runs of each setting agree bit for bit.

Example::

    .venv/bin/python benchmarks/determinism.py --out benchmarks/results/determinism
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r'''
import hashlib, sys, warnings
import torch
threads, det = int(sys.argv[1]), sys.argv[2] == "1"
torch.set_num_threads(threads)
if det:
    torch.use_deterministic_algorithms(True)
from captum_lmac import LMAC, STFT, SyntheticEvents, build_classifier, to_spectrograms, train_classifier

def digest(module):
    d = hashlib.sha256()
    for _, v in sorted(module.state_dict().items()):
        d.update(v.detach().contiguous().numpy().tobytes())
    return d.hexdigest()[:16]

stft = STFT(n_fft=512, hop_length=160, win_length=400)
tr = to_spectrograms(SyntheticEvents(120, seed=0, duration=1.5), stft, progress=False)
va = to_spectrograms(SyntheticEvents(40, seed=1, duration=1.5), stft, progress=False)
torch.manual_seed(0)
model = build_classifier(n_classes=10, stft=stft, n_mels=64, channels=(8, 16, 32, 64))
hist = train_classifier(model, tr.X, tr.y, va.X, va.y, epochs=3, batch_size=16, seed=0, progress=False)
model.eval()
lmac = LMAC(model, ["net.block1", "net.block2", "net.block3", "net.block4"])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    lmac.fit(tr.X, epochs=2, val=va.X, seed=0, progress=False)
print("RESULT", digest(model), digest(lmac.decoder), float(hist["val_acc"][-1]))
'''

SETTINGS = [(1, False), (1, False), (2, False), (2, False), (2, True)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)
    runs = []
    for threads, det in SETTINGS:
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(threads), "1" if det else "0"],
                              capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            runs.append({"threads": threads, "deterministic_algorithms": det, "error": err})
        else:
            _, clf, dec, acc = line.split()
            runs.append({"threads": threads, "deterministic_algorithms": det, "classifier_sha": clf,
                         "decoder_sha": dec, "val_acc": float(acc)})
        runs[-1]["seconds"] = round(time.time() - t0, 1)
        print(runs[-1], flush=True)
    groups = {}
    for r in runs:
        groups.setdefault((r["threads"], r["deterministic_algorithms"]), []).append(r)
    lines = ["# Bit-reproducibility of seeded training on this machine", "",
             "Same data, seeds and code in fresh processes (classifier: 3 epochs; then L-MAC: 2 epochs).", "",
             "| threads | deterministic algorithms | runs | classifier weights | decoder weights | identical |",
             "|---:|---|---:|---|---|---|"]
    summary = []
    for (threads, det), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        same = len(ok) == len(rs) and len({(r["classifier_sha"], r["decoder_sha"]) for r in ok}) == 1
        summary.append({"threads": threads, "deterministic_algorithms": det, "runs": len(rs), "identical": same})
        lines.append(f"| {threads} | {'yes' if det else 'no'} | {len(rs)} | "
                     f"{', '.join(r.get('classifier_sha', r.get('error', '?')) for r in rs)} | "
                     f"{', '.join(r.get('decoder_sha', '–') for r in rs)} | {'yes' if same and len(rs) > 1 else ('–' if len(rs) == 1 else 'no')} |")
    across = {r.get("classifier_sha") for r in runs if "error" not in r}
    lines += ["", f"Distinct classifier weights over all settings: {len(across)} (a different thread count changes "
              "the order of floating-point reductions)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"runs": runs, "summary": summary,
                                                             "created": time.strftime("%Y-%m-%d %H:%M")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
