#!/usr/bin/env python
"""Where an L-MAC fit step and an ``attribute`` call spend their time, and ``attribute`` of every learned
method against one classifier forward.

Part 1 — one L-MAC optimisation step, split into: data (producing the batch), classifier forward passes
(counted: the clean pass with the hooks, masked-in, masked-out), decoder forward, masking and loss
(the rest of the step's forward), backward, optimiser step. Measured with forward hooks on the
classifier and the decoder around the fit loop's own step (``LMAC._train_step``), after warm-up
steps, median over ``--steps`` steps. ``--torch-profile`` adds torch.profiler's top operators.

Part 2 — ``attribute`` of L-MAC, L2I (RT 0.2) and LMAC-ZS on one batch, each divided by the time of
one forward pass of the model it explains on the same batch (for LMAC-ZS the zero-shot classifier,
audio encoder + prompt scores; its audio encoder here is the same CNN with a 10-d embedding and a
fixed word-vector text encoder, since CLAP weights cannot be downloaded). Median over ``--repeats``.

The classifier is the compact CNN of the ESC-10 suite (channels 8-16-32-64, 80 log-mel bands of the
reference STFT, 5 s clips) — random weights unless ``--classifier`` names a saved one (timing does not
depend on training) — and the decoders are the suites' (L-MAC hidden 32 on blocks 1-4). Data:
``--data synthetic`` (SyntheticEvents, default) or ``--data esc10`` (folds 1-3 of the shared copy).
Nothing here changes a method; it only measures.

Examples::

    .venv/bin/python benchmarks/profile_fit.py                         # ~2 min on 2 cores, 1 thread
    .venv/bin/python benchmarks/profile_fit.py --data esc10 --classifier cache/classifiers/esc10.pt \\
        --out benchmarks/results/profile_fit
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import Subset

from captum_lmac import L2I, LMAC, LMACTD, LMACZS, STFT, SyntheticEvents, build_classifier, to_spectrograms
from captum_lmac.attr._learned import in_memory, iterate_batches, iterate_cached
from captum_lmac.data import ESC50, default_data_root
from captum_lmac.nn.zeroshot import ZeroShotClassifier
from captum_lmac.training import load_classifier

LAYERS = ["net.block1", "net.block2", "net.block3", "net.block4"]
"""Decoder layers of the compact CNN (all four blocks); ``--net CNN14`` uses the paper's: its four deepest blocks."""
CNN14_LAYERS = ["net.conv_block3", "net.conv_block4", "net.conv_block5", "net.conv_block6"]


class Timer:
    """Accumulates wall time per label; ``hook(module, label)`` times every forward of a module."""

    def __init__(self) -> None:
        self.total: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._start: Dict[int, List[float]] = defaultdict(list)

    def hook(self, module: nn.Module, label: str) -> List[torch.utils.hooks.RemovableHandle]:
        def pre(mod, args):
            self._start[id(mod)].append(time.perf_counter())

        def post(mod, args, out):
            self.total[label] += time.perf_counter() - self._start[id(mod)].pop()
            self.calls[label] += 1

        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def reset(self) -> None:
        self.total.clear()
        self.calls.clear()


class WordVectors:
    """A fixed text encoder: the mean of one seeded random vector per word."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, texts):
        def word(w):
            return torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(w.encode())))
        return torch.stack([torch.stack([word(w) for w in t.lower().split()]).mean(0) for t in texts])


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def load_inputs(args: argparse.Namespace, stft: STFT) -> torch.Tensor:
    n = max(args.batch_size * 2, 32)
    if args.data == "esc10":
        root = Path(args.data_root) if args.data_root else default_data_root()
        esc = ESC50(root / "esc10", folds=[1, 2, 3], sample_rate=stft.sample_rate, duration=5.0)
        ds = Subset(esc, range(min(n, len(esc))))
    else:
        ds = SyntheticEvents(n, seed=0, sample_rate=stft.sample_rate, duration=5.0)
    sets = to_spectrograms(ds, stft, progress=False)
    return sets.X, sets.waveform


def profile_step(model: nn.Module, X: torch.Tensor, args: argparse.Namespace) -> Dict[str, object]:
    lmac = LMAC(model, args.layers, hidden=args.hidden)
    lmac.fit(X[: args.batch_size], epochs=1, progress=False)  # builds the decoder and the loss settings
    opt = torch.optim.Adam(lmac.decoder.parameters(), lr=1e-3, weight_decay=2e-6)
    timer = Timer()
    handles = timer.hook(model, "classifier forward") + timer.hook(lmac.decoder, "decoder forward")
    rows: Dict[str, List[float]] = defaultdict(list)
    calls = {}
    gen = torch.Generator().manual_seed(0)
    batches = iter(())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    lmac.decoder.train()
    # as LMAC.fit does for in-memory data: the frozen classifier's outputs on the clean clips once
    # (timed apart: one classifier forward per clip per fit, not per step)
    t_cache = time.perf_counter()
    cache = lmac._classifier_outputs(X, 32, 1e9) if hasattr(lmac, "_classifier_outputs") else None
    t_cache = time.perf_counter() - t_cache
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            batches = (iterate_cached(in_memory(X), cache, args.batch_size, gen) if cache is not None
                       else iterate_batches(X, args.batch_size, gen))
            batch = next(batches)
        t_data = time.perf_counter() - t0
        timer.reset()
        opt.zero_grad()
        t1 = time.perf_counter()
        terms, _ = lmac._train_step(batch)
        t_fwd = time.perf_counter() - t1
        t2 = time.perf_counter()
        terms["loss"].backward()
        t_bwd = time.perf_counter() - t2
        t3 = time.perf_counter()
        opt.step()
        t_opt = time.perf_counter() - t3
        if step < args.warmup:
            continue
        clf, dec = timer.total["classifier forward"], timer.total["decoder forward"]
        rows["data"].append(t_data)
        rows["classifier forward"].append(clf)
        rows["decoder forward"].append(dec)
        rows["masking + loss"].append(t_fwd - clf - dec)
        rows["backward"].append(t_bwd)
        rows["optimiser step"].append(t_opt)
        rows["step total"].append(t_data + t_fwd + t_bwd + t_opt)
        calls = dict(timer.calls)
    for h in handles:
        h.remove()
    med = {k: statistics.median(v) for k, v in rows.items()}
    out = {"batch_size": args.batch_size, "steps": args.steps, "forward_calls_per_step": calls,
           "clean_outputs_cached": cache is not None,
           "cache_seconds_per_clip": round(t_cache / X.shape[0], 4) if cache is not None else None,
           "seconds": {k: round(v, 4) for k, v in med.items()},
           "share": {k: round(v / med["step total"], 3) for k, v in med.items() if k != "step total"}}
    if args.torch_profile:
        batch = next(batches, None)
        if batch is None:  # the last step used the last batch of the pass
            batch = next(iterate_cached(in_memory(X), cache, args.batch_size, gen) if cache is not None
                         else iterate_batches(X, args.batch_size, gen))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            opt.zero_grad()
            terms, _ = lmac._train_step(batch)
            terms["loss"].backward()
            opt.step()
        out["torch_profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    return out


def profile_attribute(model: nn.Module, X: torch.Tensor, waves: torch.Tensor, stft: STFT,
                      args: argparse.Namespace) -> Dict[str, object]:
    xb, wb = X[: args.batch_size], waves[: args.batch_size]
    lmac = LMAC(model, args.layers, hidden=args.hidden)
    lmac.fit(X[: args.batch_size], epochs=1, progress=False)
    timer = Timer()
    handles = timer.hook(model, "classifier forward") + timer.hook(lmac.decoder, "decoder forward")
    with torch.no_grad():
        lmac.attribute(xb)
        timer.reset()
        t = time.perf_counter()
        lmac.attribute(xb)
        total = time.perf_counter() - t
    for h in handles:
        h.remove()
    split = {"classifier forward": timer.total["classifier forward"], "decoder forward": timer.total["decoder forward"]}
    split["rest (checks, sigmoid, target)"] = total - sum(split.values())

    l2i = L2I(model, args.layers[-2:], n_components=100, hidden=64)
    l2i.fit(X, epochs=1, batch_size=args.batch_size, progress=False, nmf_iter=20)
    emb = nn.Sequential(model, nn.Linear(int(model(xb[:1]).shape[1]), 16)).eval()
    torch.manual_seed(0)
    prompts = [f"this is the sound of {w}" for w in ("dog", "rain", "a clock", "a saw", "the sea", "fire")]
    zs = ZeroShotClassifier(emb, WordVectors(16), prompts, logit_scale=10.0).eval()
    zs_layers = [f"0.{name}" for name in args.layers[1:]]
    captions = [[prompts[i % len(prompts)]] for i in range(8)]
    lmac_zs = LMACZS(zs, layers=[f"audio_encoder.{n}" for n in zs_layers], hidden=32)
    lmac_zs.fit((X[:8], captions), epochs=1, batch_size=4, texts_per_audio=2, progress=False)

    # LMAC-TD explains the waveform: its reference is one forward of the waveform model (STFT + classifier)
    td = LMACTD(model, args.layers, stft=stft)
    td.fit(waves[:8], epochs=1, batch_size=4, autoencoder_steps=2, progress=False)
    wave_model = td.model

    rows = {}
    with torch.no_grad():
        t_clf = median_time(lambda: model(xb), args.repeats)
        t_wave = median_time(lambda: wave_model(wb), args.repeats)
        t_zs = median_time(lambda: zs(xb), args.repeats)
        for name, fn, ref in [("L-MAC", lambda: lmac.attribute(xb), t_clf),
                              ("L2I (RT 0.2)", lambda: l2i.attribute(xb, threshold=0.2), t_clf),
                              ("LMAC-ZS", lambda: lmac_zs.attribute(xb), t_zs),
                              ("LMAC-TD (α 0.75)", lambda: td.attribute(wb), t_wave)]:
            t = median_time(fn, args.repeats)
            rows[name] = {"attribute_seconds": round(t, 4), "forward_seconds": round(ref, 4),
                          "ratio_to_forward": round(t / ref, 2)}
    return {"batch_size": args.batch_size, "repeats": args.repeats,
            "lmac_attribute_split_seconds": {k: round(v, 4) for k, v in split.items()},
            "lmac_attribute_forward_calls": dict(timer.calls), "methods": rows}


def report(res: Dict[str, object]) -> str:
    s, a = res["fit_step"], res["attribute"]
    lines = [f"## L-MAC fit step (batch {s['batch_size']}, median of {s['steps']} steps; forward calls per step: "
             f"{s['forward_calls_per_step']})", "", "| part | seconds | share of the step |", "|---|---:|---:|"]
    for k, v in s["seconds"].items():
        share = s["share"].get(k)
        lines.append(f"| {k} | {v:.4f} | {'' if share is None else f'{100 * share:.1f} %'} |")
    lines += ["", f"## attribute (batch {a['batch_size']}, median of {a['repeats']})", "",
              "| method | attribute (s) | one forward of its model (s) | ratio |", "|---|---:|---:|---:|"]
    for name, r in a["methods"].items():
        lines.append(f"| {name} | {r['attribute_seconds']:.4f} | {r['forward_seconds']:.4f} | {r['ratio_to_forward']:.2f}x |")
    lines += ["", f"L-MAC attribute split (s): {a['lmac_attribute_split_seconds']} "
              f"(forward calls {a['lmac_attribute_forward_calls']})"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="synthetic", choices=["synthetic", "esc10"])
    p.add_argument("--data-root", default=None)
    p.add_argument("--classifier", default=None, help="a saved classifier (captum_lmac.save_classifier)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--net", default="CompactCNN", choices=["CompactCNN", "CNN14"],
                   help="the classifier's network (random weights; CNN14: PANNs' 80 M-parameter CNN, the L-MAC paper's)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--torch-profile", action="store_true", help="also print torch.profiler's top operators of a step")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.classifier:
        model, stft, _, _ = load_classifier(args.classifier)
    else:
        stft = STFT()
        torch.manual_seed(0)
        if args.net == "CNN14":
            model = build_classifier(n_classes=10, stft=stft, n_mels=80, net="CNN14")
        else:
            model = build_classifier(n_classes=10, stft=stft, n_mels=80, channels=(8, 16, 32, 64))
    args.layers = CNN14_LAYERS if args.net == "CNN14" and not args.classifier else LAYERS
    model.eval()
    X, waves = load_inputs(args, stft)
    res = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "input_shape": list(X.shape[1:]),
           "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d")}
    res["fit_step"] = profile_step(model, X, args)
    res["attribute"] = profile_attribute(model, X, waves, stft, args)
    text = report(res)
    print(text)
    if args.torch_profile:
        print(res["fit_step"]["torch_profile"])
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
        out.with_suffix(".md").write_text(text)
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
