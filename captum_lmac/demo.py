"""The demo: classifier + L-MAC on the built-in synthetic events, with WAVs, figures, metrics and a page.

``run_demo`` trains a compact CNN on :class:`~captum_lmac.SyntheticEvents` (sound events with a
known clean source), fits L-MAC and its fine-tuned variant, compares them with GradCAM and Saliency,
and writes ``index.html``: how to read it, the metrics summary table (every method, 95 % intervals),
the fit histories and one card per clip (input spectrogram and player, the true source, each
method's mask, masked spectrogram and listenable explanation), next to the WAVs, PNGs and
``metrics.json``. The page needs nothing but its folder (no script, font or style sheet is fetched).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch

from ._io import atomic_write
from .attr.baselines import make_baseline
from .attr.lmac import LMAC
from .audio import STFT, write_wav
from .benchmark.media import Renderer
from .benchmark.plots import fit_history_plot
from .benchmark.registry import history_summary
from .benchmark.report import best_text, clip_card_html, how_to_read_html, img_html, metrics_table_html, page_html
from .data import SyntheticEvents, to_spectrograms
from .errors import CheckpointError, InputError
from .metrics import FAITHFULNESS_KEYS, aggregate, faithfulness, oracle_mask, si_sdr
from .training import accuracy, build_classifier, load_classifier, save_classifier, train_classifier

PathLike = Union[str, Path]

METRIC_KEYS = list(FAITHFULNESS_KEYS) + ["SI-SDR"]
"""The metrics the demo reports (their labels, directions and descriptions come from the declarations)."""

SIZES = {
    # clips (train, val, test), epochs (classifier, L-MAC, fine-tuning), classes, clip seconds, clips on the page
    "full": dict(n=(400, 100, 100), epochs=(12, 8, 3), n_classes=10, duration=1.5, n_examples=4),
    "quick": dict(n=(120, 40, 40), epochs=(6, 2, 1), n_classes=10, duration=1.5, n_examples=4),
    "tiny": dict(n=(24, 6, 6), epochs=(3, 1, 1), n_classes=3, duration=1.0, n_examples=2),
}
"""Demo sizes: ``full`` (the default, ~8 min), ``quick`` (a one-minute smoke run), ``tiny`` (seconds;
a small STFT and network — for tests of the page, not for its numbers)."""


def _classifier(cache: Path, stft: STFT, data: dict, seed: int, epochs: int, classes: list, net_kwargs: dict,
                **train_kwargs):
    path = cache / "classifier.pt"
    if path.exists():
        try:
            model, _, _, info = load_classifier(path)
            print(f"[demo] reusing classifier {path}")
            return model, info
        except CheckpointError as exc:
            print(f"[demo] cached classifier unusable ({exc}); retraining")
    model = build_classifier(len(classes), stft, **net_kwargs)
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


def run_demo(out_dir: PathLike = "demo_out", cache_dir: PathLike = "cache/demo", seed: int = 0, quick: bool = False,
             size: Optional[str] = None) -> Dict[str, dict]:
    """Train a compact CNN on :class:`SyntheticEvents`, fit L-MAC and its fine-tuned variant, and
    write listenable explanations (WAV), figures (PNG), the page ``index.html`` and the metrics (JSON).

    Args:
        out_dir: Where the page and its media go.
        cache_dir: Where the classifier and the fitted L-MACs are cached (one sub-folder per size).
        seed: Seed of the data, the training and the fits.
        quick: Shorthand for ``size="quick"``.
        size: ``"full"`` (default), ``"quick"`` or ``"tiny"`` (see :data:`SIZES`).

    Returns:
        The aggregated metrics per method (``{method: {metric: {"mean", "lo", "hi", "median", "n"}, "ms_per_clip"}}``).
    """
    size = size or ("quick" if quick else "full")
    if size not in SIZES:
        raise InputError(f"demo size must be one of {', '.join(SIZES)}, got {size!r}")
    cfg = SIZES[size]
    t0 = time.time()
    out, cache = Path(out_dir), Path(cache_dir) / size
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    n_train, n_val, n_test = cfg["n"]
    ep_clf, ep_lmac, ep_ft = cfg["epochs"]
    # the smaller runs have few clips: smaller batches and a larger step give the classifier enough updates
    clf_kwargs = {} if size == "full" else {"batch_size": 8 if size == "tiny" else 16, "lr": 2e-3}
    if size == "tiny":
        stft = STFT(sample_rate=16000, n_fft=256, hop_length=64, win_length=128)
        net_kwargs: Dict[str, Any] = {"n_mels": 16, "channels": (4, 8)}
    else:
        stft = STFT(sample_rate=16000)
        net_kwargs = {"n_mels": 64}
    print(f"[demo] generating synthetic sound events ({cfg['n_classes']} classes, known clean sources)")
    ev = dict(n_classes=cfg["n_classes"], duration=cfg["duration"])
    sets = {
        "train": SyntheticEvents(n_train, seed=seed, **ev),
        "val": SyntheticEvents(n_val, seed=seed + 1, **ev),
        "test": SyntheticEvents(n_test, seed=seed + 2, **ev),
    }
    classes = sets["train"].classes
    data = {k: to_spectrograms(v, stft, progress=size != "tiny") for k, v in sets.items()}

    model, info = _classifier(cache, stft, data, seed, ep_clf, classes, net_kwargs, **clf_kwargs)
    acc = accuracy(model, data["test"].X, data["test"].y)
    print(f"[demo] classifier test accuracy: {100 * acc:.1f} %")

    layers = [f"net.block{i}" for i in range(1, len(model.net.channels) + 1)]
    batch = {"batch_size": 8} if size == "tiny" else {}
    lmac = _lmac(cache, "lmac", model, lambda: _fit(LMAC(model, layers), data, ep_lmac, seed, batch))

    def finetune() -> LMAC:
        ft = LMAC.load(cache / "lmac.pt", model)
        train = data["train"]  # the event alone is the clean target of the (event + background) mixture
        ft.finetune((train.X, train.extra["clean_X"]), epochs=ep_ft, lambda_g=4.0, cct=0.6, seed=seed, **batch)
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
        results[name] = {k: aggregate(per[k]) for k in METRIC_KEYS}
        results[name]["ms_per_clip"] = ms
    fits = {"L-MAC": history_summary(lmac.history or {}), "L-MAC FT": history_summary(lmac_ft.history or {})}
    summary = {"classifier_test_accuracy": acc, "classifier": info, "lmac_history": lmac.history, "results": results,
               "size": size, "seconds": time.time() - t0}
    write_page(out, stft, test, classes, masks, model, results, fits, acc, n=cfg["n_examples"])
    text = json.dumps(summary, indent=2, default=float)
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(text))
    _print_table(results)
    print(f"[demo] wrote {out}/index.html, WAVs, PNGs and metrics.json in {time.time() - t0:.0f} s")
    return results


def _fit(lmac: LMAC, data: dict, epochs: int, seed: int, kwargs: Mapping[str, Any]) -> LMAC:
    lmac.fit(data["train"].X, epochs=epochs, val=data["val"].X, seed=seed, **kwargs)
    return lmac


def _print_table(results: Dict[str, dict]) -> None:
    print("\n| method | " + " | ".join(METRIC_KEYS) + " | ms/clip |")
    print("|---" * (len(METRIC_KEYS) + 2) + "|")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[c]['mean']:.2f}" for c in METRIC_KEYS) + f" | {r['ms_per_clip']:.1f} |")
    print()


def _safe(name: str) -> str:
    return name.replace(" ", "_").replace("-", "").lower()


def write_page(out: Path, stft: STFT, test, classes: List[str], masks: Dict[str, torch.Tensor], model,
               results: Mapping[str, Mapping[str, Any]], fits: Mapping[str, Mapping[str, Any]], acc: float,
               n: int = 4) -> Path:
    """The demo's media (per clip: input / true-source / per-method WAVs and PNGs; fit-history plots)
    and ``index.html``."""
    out = Path(out)
    n = min(n, len(test))
    with torch.no_grad():
        pred = model(test.X[:n]).argmax(1)
    sr, length = stft.sample_rate, test.waveform.shape[-1]
    render = Renderer(sr, stft.hop_length)
    clips = []
    try:
        for i in range(n):
            X = test.X[i]
            ref = float(X.max())
            clean = test.extra["clean"][i : i + 1]
            Xt = stft.analyze(clean, allow_silent=True)[0]
            Xr = stft.analyze(test.waveform[i : i + 1] - clean, allow_silent=True)[0]
            clip: Dict[str, Any] = {"index": i, "label_name": classes[int(test.y[i])], "pred_name": classes[int(pred[i])],
                                    "input_png": f"clip{i}_input.png", "input_wav": f"clip{i}_input.wav",
                                    "oracle_png": f"clip{i}_oracle.png", "target_wav": f"clip{i}_true_source.wav",
                                    "methods": []}
            render.save(X, out / clip["input_png"], kind="db", title="input |X| (dB)")
            write_wav(out / clip["input_wav"], test.waveform[i], sr)
            render.save(oracle_mask(Xt, Xr)[0], out / clip["oracle_png"])
            write_wav(out / clip["target_wav"], test.extra["clean"][i], sr)
            for name, m in masks.items():
                base = f"clip{i}_{_safe(name)}"
                mk = m[i : i + 1]
                render.save(mk[0], out / f"{base}.png")
                render.save(mk[0] * X, out / f"{base}_masked.png", kind="masked", ref=ref)
                write_wav(out / f"{base}.wav", stft.listen(test.X[i : i + 1], test.phase[i : i + 1], mk, length=length)[0], sr)
                clip["methods"].append({"name": name, "png": f"{base}.png", "masked_png": f"{base}_masked.png",
                                        "wav": f"{base}.wav", "mask_mean": float(mk.mean())})
            clips.append(clip)
    finally:
        render.close()
    fit_pngs = []
    for name, info in fits.items():
        p = fit_history_plot(info, out / f"fit_{_safe(name)}.png", title=f"{name}: fit history")
        if p is not None:
            fit_pngs.append((name, p.name))

    rows = [{"method": name, "metrics": {k: r[k] for k in METRIC_KEYS if k in r}, "ms_per_clip": r.get("ms_per_clip")}
            for name, r in results.items()]
    body = ["<h1>captum_lmac demo</h1>",
            f"<p class='meta'>{len(classes)} classes of synthetic sound events (each clip: one event over a background; "
            f"the event alone is the known true source) · {len(test)} test clips · classifier test accuracy "
            f"{100 * acc:.1f} % · explained: L-MAC, L-MAC fine-tuned for listening quality (L-MAC FT), GradCAM and "
            "Saliency (Captum).</p>"]
    extra = ["<b>SI-SDR</b> compares the listenable explanation with the true source (the event alone): the higher, "
             "the closer the explanation sounds to the event without its background."]
    body.append(how_to_read_html(METRIC_KEYS, extra))
    body.append("<section id='summary'><h2>Metrics summary</h2>")
    body.append(metrics_table_html(rows, table_id="summary-table",
                                   caption=f"All {len(test)} test clips: mean with its 95 % bootstrap interval; best per "
                                           "column highlighted; ms/clip is the attribution time."))
    bt = best_text(rows)
    if bt:
        body.append(f"<p class='meta'>Best here: {bt}</p>")
    body.append("</section>")
    if fit_pngs:
        body.append("<section id='fits'><h2>Fits</h2><p class='meta'>Per epoch: each loss term on the training clips "
                    "(solid) and the validation clips (dashed), validation Fid-In and mask mean; the dotted line marks "
                    "the epoch whose weights were kept.</p>")
        for name, png in fit_pngs:
            body.append(f"<h3>{name}</h3>{img_html(png, f'fit history of {name}', 'plot')}")
        body.append("</section>")
    body.append("<section id='examples'><h2>Example clips</h2>")
    for clip in clips:
        body.append(clip_card_html(clip))
    body.append("</section>")
    nav = [("how-to-read", "How to read this"), ("summary", "Metrics summary")]
    nav += [("fits", "Fits")] if fit_pngs else []
    nav += [("examples", "Example clips")]
    page = page_html("captum_lmac demo", body, nav)
    return atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page))
