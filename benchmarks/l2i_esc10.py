#!/usr/bin/env python
"""L2I on ESC-10: dictionary, interpreter and the L2I / L-MAC-paper metrics on the test fold.

Loads the cached compact ESC-10 classifier (``<cache-dir>/esc10.pt``, trained by
``benchmarks/train_classifiers.py --suite esc10``; this script waits for it rather than training
its own copy), learns the sparse NMF dictionary (K = 100) on log(1 + |X|) of folds 1-3, fits L2I
(train folds 1-3, validation fold 4; Ψ reads the classifier's last blocks) and reports on the test
fold 5:

- AI / AD / AG / FF / Fid-In / MM (``captum_lmac.metrics.faithfulness``, mask on |X|) for
  relevance thresholds RT = 0.2, 0.4, 0.6, 0.8, with the mean number of selected components;
- top-k fidelity of Θ to the classifier (k = 1, 3, 5);
- FF median of the interpretations vs removing as many random components (L2I paper);
- dictionary-learning and fitting times.

Writes ``benchmarks/results/l2i_esc10.json`` (and the fitted interpreter to
``cache/interpreters/l2i_esc10.pt``) and prints a Markdown table.

Examples::

    .venv/bin/python benchmarks/l2i_esc10.py
    .venv/bin/python benchmarks/l2i_esc10.py --epochs 30 --layers net.block2,net.block3,net.block4
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from captum_lmac.attr.l2i import L2I, ff_median, implied_nmf_beta, topk_fidelity
from captum_lmac.audio import STFT
from captum_lmac.benchmark.suites import STFT_DEFAULTS, classifier_paths, load_suite_data
from captum_lmac.nmf import learn_dictionary, log_magnitude
from captum_lmac.metrics import FAITHFULNESS_KEYS, aggregate, faithfulness
from captum_lmac.train import accuracy, load_classifier

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", default=str(ROOT / "cache" / "classifiers"), help="folder holding esc10.pt")
    p.add_argument("--data-root", default=None, help="data root (default: $CAPTUM_LMAC_DATA or ../shared/data)")
    p.add_argument("--layers", default="net.block3,net.block4", help="comma-separated hooked classifier layers")
    p.add_argument("--components", type=int, default=100, help="K, dictionary size")
    p.add_argument("--nmf-iter", type=int, default=200)
    p.add_argument("--nmf-beta", type=float, default=None, help="NMF l1 weight (default: implied by alpha/beta)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--alpha", type=float, default=5.0)
    p.add_argument("--beta", type=float, default=0.4)
    p.add_argument("--thresholds", default="0.2,0.4,0.6,0.8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--wait-minutes", type=float, default=40.0, help="wait this long for the cached classifier")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "l2i_esc10.json"))
    p.add_argument("--save", default=str(ROOT / "cache" / "interpreters" / "l2i_esc10.pt"),
                   help="where to save the fitted interpreter ('' to skip)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def wait_for(path: Path, minutes: float) -> float:
    """Wait until ``path`` exists (polling every 2 min); return the seconds waited."""
    t0 = time.time()
    deadline = t0 + 60 * minutes
    while not path.is_file():
        if time.time() > deadline:
            raise SystemExit(f"{path} did not appear within {minutes} min: train it with "
                             "benchmarks/train_classifiers.py --suite esc10")
        print(f"waiting for {path} ...", flush=True)
        time.sleep(120)
    return time.time() - t0


def markdown(res: dict) -> str:
    rows = ["| RT | AI ↑ | AD ↓ | AG ↑ | FF ↑ | Fid-In ↑ | MM | components |",
            "|---|---|---|---|---|---|---|---|"]
    for rt, r in res["faithfulness"].items():
        m = {k: r[k]["mean"] for k in FAITHFULNESS_KEYS}
        rows.append(f"| {rt} | {m['AI']:.2f} | {m['AD']:.2f} | {m['AG']:.2f} | {m['FF']:.3f} | {m['FidIn']:.3f} | "
                    f"{m['MM']:.3f} | {r['components_mean']:.1f} |")
    top = res["topk_fidelity"]
    ff = res["ff_median"]
    lines = [
        "\n".join(rows),
        "",
        "| top-1 fidelity | top-3 | top-5 | FF median (RT 0.2) | FF median, random components | classifier test acc |",
        "|---|---|---|---|---|---|",
        f"| {top['1']:.3f} | {top['3']:.3f} | {top['5']:.3f} | {ff['ff_median']:.3f} | {ff['ff_random_median']:.3f} | "
        f"{res['classifier']['test_acc']:.3f} |",
        "",
        f"Dictionary: K={res['dictionary']['n_components']}, {res['dictionary']['frames']} frames, "
        f"{res['dictionary']['iterations']} iterations, relative error {res['dictionary']['relative_error']:.3f}, "
        f"{res['dictionary']['seconds']:.0f} s. Interpreter: {res['fit']['epochs']} epochs "
        f"(best {res['fit']['best_epoch']}), {res['fit']['seconds']:.0f} s, "
        f"{res['fit']['decoder_parameters']} parameters. Compute {res['compute_seconds']:.0f} s "
        f"(data {res['data_seconds']:.0f} s, evaluation {res['eval_seconds']:.0f} s).",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    pt, _ = classifier_paths("esc10", args.cache_dir)
    layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    # data and dictionary first: they do not depend on the classifier, which may still be training
    stft = STFT(**STFT_DEFAULTS)
    t0 = time.time()
    data = load_suite_data("esc10", stft, args.data_root, keep=(), progress=not args.quiet)
    data_seconds = time.time() - t0
    train, val, test = data["train"], data["val"], data["test"]
    print(f"data: {len(train)}/{len(val)}/{len(test)} clips loaded in {data_seconds:.0f} s", flush=True)
    nmf_beta = args.nmf_beta
    if nmf_beta is None:
        nmf_beta = implied_nmf_beta(stft.n_freqs, args.components, args.alpha, args.beta)
    W, nmf_info = learn_dictionary(log_magnitude(train.X), args.components, beta=nmf_beta, n_iter=args.nmf_iter,
                                   seed=args.seed, progress=not args.quiet, return_info=True)
    print(f"dictionary: {nmf_info['iterations']} iterations, relative error {nmf_info['relative_error']:.3f}, "
          f"{nmf_info['seconds']:.0f} s", flush=True)

    wait_seconds = wait_for(pt, args.wait_minutes)
    model, clf_stft, classes, info = load_classifier(pt)
    if clf_stft.config() != stft.config():
        raise SystemExit(f"the classifier's STFT {clf_stft.config()} differs from the suite's {stft.config()}")
    test_acc = accuracy(model, test.X, test.y)
    print(f"classifier: test accuracy {test_acc:.3f}", flush=True)

    l2i = L2I(model, layers=layers, hidden=args.hidden, dictionary=W)
    hist = l2i.fit(train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, alpha=args.alpha,
                   beta=args.beta, val=val, seed=args.seed, progress=not args.quiet)
    hist["dictionary"] = nmf_info
    if args.save:
        l2i.save(args.save)

    thresholds = [float(v) for v in args.thresholds.split(",")]
    res = {
        "suite": "esc10",
        "splits": {"train": "folds 1-3", "val": "fold 4", "test": "fold 5",
                   "n": [len(train), len(val), len(test)]},
        "classifier": {"checkpoint": str(pt), "test_acc": test_acc, "info_test_acc": info.get("test_acc"),
                       "layers": layers},
        "settings": {k: getattr(args, k) for k in ("components", "nmf_iter", "nmf_beta", "epochs", "batch_size",
                                                   "lr", "hidden", "alpha", "beta", "seed")},
        "dictionary": {k: v for k, v in hist["dictionary"].items() if k != "objective"},
        "fit": {
            "epochs": args.epochs, "best_epoch": hist["best_epoch"], "seconds": hist["seconds"],
            "decoder_parameters": hist["decoder_parameters"],
            "history": {k: [round(float(x), 5) for x in hist[k]] for k in hist
                        if isinstance(hist[k], list) and k != "dictionary"},
        },
        "faithfulness": {},
    }
    res["dictionary"]["beta"] = nmf_beta
    objective = hist["dictionary"]["objective"]
    res["dictionary"]["objective_first_last"] = [objective[0], objective[-1]]

    t_eval = time.time()
    with torch.no_grad():
        for rt in thresholds:
            mask = l2i.attribute(test.X, threshold=rt, batch_size=16)
            m = faithfulness(model, test.X, mask, batch_size=16)
            counts = torch.tensor([len(s) for s in l2i.selected_components(test.X, threshold=rt)], dtype=torch.float)
            entry = {k: aggregate(m[k]) for k in FAITHFULNESS_KEYS}
            entry["components_mean"] = float(counts.mean())
            entry["empty_fraction"] = float((counts == 0).float().mean())
            res["faithfulness"][str(rt)] = entry
            print(f"RT {rt}: " + ", ".join(f"{k} {entry[k]['mean']:.3f}" for k in FAITHFULNESS_KEYS)
                  + f", components {entry['components_mean']:.1f}", flush=True)
        res["topk_fidelity"] = {str(k): v for k, v in topk_fidelity(l2i, test.X, k=(1, 3, 5)).items()}
        ff = ff_median(l2i, test.X, threshold=0.2, seed=args.seed)
        res["ff_median"] = {k: v for k, v in ff.items() if not torch.is_tensor(v)}
        res["ff_median"]["threshold"] = 0.2
        res["ff_median_by_threshold"] = {}
        for rt in thresholds:
            f = ff_median(l2i, test.X, threshold=rt, seed=args.seed)
            res["ff_median_by_threshold"][str(rt)] = {k: v for k, v in f.items() if not torch.is_tensor(v)}
    res["eval_seconds"] = time.time() - t_eval
    res["data_seconds"] = data_seconds
    res["wait_seconds"] = wait_seconds  # waiting for the classifier cache, excluded from compute_seconds
    res["total_seconds"] = time.time() - t_start
    res["compute_seconds"] = res["total_seconds"] - wait_seconds
    res["machine"] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "arch": platform.machine()}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res))
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
