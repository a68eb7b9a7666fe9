"""The demo: classifier + L-MAC on the built-in synthetic events, with WAVs, figures and metrics."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Dict, Union

import torch

from .attr.baselines import make_baseline
from .attr.lmac import LMAC
from .audio import STFT, write_wav
from .data import SyntheticEvents, to_spectrograms
from .errors import CheckpointError
from .metrics import FAITHFULNESS_KEYS, aggregate, faithfulness, si_sdr
from .training import accuracy, build_classifier, load_classifier, save_classifier, train_classifier
from .viz import plot_explanation

PathLike = Union[str, Path]


def _classifier(cache: Path, stft: STFT, data: dict, seed: int, epochs: int, classes: list, **train_kwargs):
    path = cache / "classifier.pt"
    if path.exists():
        try:
            model, _, _, info = load_classifier(path)
            print(f"[demo] reusing classifier {path}")
            return model, info
        except CheckpointError as exc:
            print(f"[demo] cached classifier unusable ({exc}); retraining")
    model = build_classifier(len(classes), stft, n_mels=64)
    hist = train_classifier(model, data["train"].X, data["train"].y, data["val"].X, data["val"].y, epochs=epochs, seed=seed,
                            **train_kwargs)
    info = {"train_seconds": hist["seconds"], "val_acc": max(hist["val_acc"])}
    save_classifier(path, model, stft, classes, info)
    return model, info


def _lmac(cache: Path, name: str, model, fit) -> LMAC:
    path = cache / f"{name}.pt"
    if path.exists():
        try:
            lm = LMAC.load(path, model)
            print(f"[demo] reusing {name} {path}")
            return lm
        except CheckpointError as exc:
            print(f"[demo] cached {name} unusable ({exc}); refitting")
    lm = fit()
    lm.save(path)
    return lm


def run_demo(out_dir: PathLike = "demo_out", cache_dir: PathLike = "cache/demo", seed: int = 0, quick: bool = False) -> Dict[str, dict]:
    """Train a compact CNN on :class:`SyntheticEvents`, fit L-MAC and its fine-tuned variant, and
    write listenable explanations (WAV), figures (PNG), an HTML page and the metrics (JSON).

    Returns the aggregated metrics per method.
    """
    t0 = time.time()
    out, cache = Path(out_dir), Path(cache_dir) / ("quick" if quick else "full")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    n_train, n_val, n_test = (120, 40, 40) if quick else (400, 100, 100)
    ep_clf, ep_lmac, ep_ft = (6, 2, 1) if quick else (12, 8, 3)
    # the quick run has few clips: smaller batches and a larger step give the classifier enough updates
    clf_kwargs = {"batch_size": 16, "lr": 2e-3} if quick else {}
    stft = STFT(sample_rate=16000)
    print("[demo] generating synthetic sound events (10 classes, known clean sources)")
    sets = {
        "train": SyntheticEvents(n_train, seed=seed),
        "val": SyntheticEvents(n_val, seed=seed + 1),
        "test": SyntheticEvents(n_test, seed=seed + 2),
    }
    classes = sets["train"].classes
    data = {k: to_spectrograms(v, stft) for k, v in sets.items()}

    model, info = _classifier(cache, stft, data, seed, ep_clf, classes, **clf_kwargs)
    acc = accuracy(model, data["test"].X, data["test"].y)
    print(f"[demo] classifier test accuracy: {100 * acc:.1f} %")

    layers = [f"net.block{i}" for i in range(1, len(model.net.channels) + 1)]
    lmac = _lmac(cache, "lmac", model, lambda: _fit(LMAC(model, layers), data, ep_lmac, seed))

    def finetune() -> LMAC:
        ft = LMAC.load(cache / "lmac.pt", model)
        train = data["train"]  # the event alone is the clean target of the (event + background) mixture
        ft.finetune((train.X, train.extra["clean_X"]), epochs=ep_ft, lambda_g=4.0, cct=0.6, seed=seed)
        return ft

    lmac_ft = _lmac(cache, "lmac_ft", model, finetune)
    print(f"[demo] L-MAC decoder: {lmac.n_parameters():,} parameters")

    test = data["test"]
    methods = {"L-MAC": lmac, "L-MAC FT": lmac_ft, "GradCAM": make_baseline("gradcam", model), "Saliency": make_baseline("saliency", model)}
    results, masks = {}, {}
    for name, method in methods.items():
        t = time.time()
        m = method.attribute(test.X)
        ms = 1000 * (time.time() - t) / len(test)
        masks[name] = m
        per = faithfulness(model, test.X, m)
        listen = stft.listen(test.X, test.phase, m, length=test.waveform.shape[-1])
        per["SI-SDR"] = si_sdr(listen, test.extra["clean"])
        results[name] = {k: aggregate(per[k]) for k in list(FAITHFULNESS_KEYS) + ["SI-SDR"]}
        results[name]["ms_per_clip"] = ms
    _write_examples(out, stft, test, classes, masks, model)
    summary = {"classifier_test_accuracy": acc, "classifier": info, "lmac_history": lmac.history, "results": results,
               "seconds": time.time() - t0}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=float))
    _print_table(results)
    print(f"[demo] wrote {out}/index.html, WAVs, PNGs and metrics.json in {time.time() - t0:.0f} s")
    return results


def _fit(lmac: LMAC, data: dict, epochs: int, seed: int) -> LMAC:
    lmac.fit(data["train"].X, epochs=epochs, val=data["val"].X, seed=seed)
    return lmac


def _print_table(results: Dict[str, dict]) -> None:
    cols = list(FAITHFULNESS_KEYS) + ["SI-SDR"]
    print("\n| method | " + " | ".join(cols) + " | ms/clip |")
    print("|---" * (len(cols) + 2) + "|")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[c]['mean']:.2f}" for c in cols) + f" | {r['ms_per_clip']:.1f} |")
    print()


def _write_examples(out: Path, stft: STFT, test, classes, masks: Dict[str, torch.Tensor], model, n: int = 4) -> None:
    rows = []
    with torch.no_grad():
        pred = model(test.X[:n]).argmax(1)
    sr, length = stft.sample_rate, test.waveform.shape[-1]
    for i in range(min(n, len(test))):
        files = {"input": f"clip{i}_input.wav", "true source": f"clip{i}_true_source.wav"}
        write_wav(out / files["input"], test.waveform[i], sr)
        write_wav(out / files["true source"], test.extra["clean"][i], sr)
        for name, m in masks.items():
            fname = f"clip{i}_{name.replace(' ', '_').replace('-', '').lower()}.wav"
            write_wav(out / fname, stft.listen(test.X[i : i + 1], test.phase[i : i + 1], m[i : i + 1], length=length)[0], sr)
            files[name] = fname
        png = f"clip{i}.png"
        title = f"clip {i}: true {classes[int(test.y[i])]}, predicted {classes[int(pred[i])]}"
        plot_explanation(test.X[i], [m[i] for m in masks.values()], out / png, sr, stft.hop_length, list(masks), title)
        players = "".join(
            f"<div><b>{html.escape(k)}</b><br><audio controls src='{html.escape(v)}'></audio></div>" for k, v in files.items()
        )
        rows.append(f"<h2>{html.escape(title)}</h2><div style='display:flex;gap:1em;flex-wrap:wrap'>{players}</div><img src='{png}'>")
    page = "<html><head><meta charset='utf-8'><title>captum_lmac demo</title></head><body><h1>captum_lmac demo</h1>" + "".join(rows) + "</body></html>"
    (out / "index.html").write_text(page)
