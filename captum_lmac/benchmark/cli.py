r"""Run a named suite end to end, and its command line ``captum-lmac benchmark <suite> [options]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from .._cliutil import ArgumentParser
from .._io import check_writable, deferred_writes
from .._utils import reuse_freed_memory
from .._validate import check_positive_int, one_line
from ..errors import CheckpointError, DataNotFoundError, InputError, NotFittedError
from .classifiers import get_suite_classifier
from .conditions import SNR_PRESETS
from ..audio import STFT
from ..nn.adapters import needs_phase
from ..nn.loading import adapt_model, load_model, qualify_layers
from .classifiers import layer_configs
from .config import SuiteConfig, load_config
from .data import load_data, suite_datasets
from .harness import progress_log, run_benchmark
from .registry import METHODS
from .report import peak_rss_text, write_json
from .suites import BUILTIN_SUITES

PathLike = Union[str, Path]


def run_suite(
    suite: Union[str, PathLike],
    out_dir: Optional[PathLike] = None,
    cache_dir: PathLike = "cache",
    data_root: Optional[PathLike] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    classifier_path: Optional[PathLike] = None,
    sanity: Optional[bool] = None,
    refit: bool = False,
    progress: bool = True,
    user_model: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Run a named suite (or JSON config file) end to end.

    Loads the validated configuration (:func:`~captum_lmac.benchmark.config.load_config`, with
    ``overrides`` merged), gets the classifier (:func:`~captum_lmac.benchmark.classifiers.get_suite_classifier`;
    trained and cached in ``<cache_dir>`` if missing), loads the data with the classifier's STFT and
    runs :func:`~captum_lmac.benchmark.harness.run_benchmark` with interpreters cached in
    ``<cache_dir>/interpreters``. Reports go to ``out_dir`` (default ``benchmark_out/<suite>``).

    ``user_model`` explains the user's own classifier instead: ``{"spec": "pkg.module:factory" |
    "file.py:factory" | TorchScript file, "weights": path, "input": "auto" | "spectrogram" |
    "waveform", "layers": [...], "cam_layer": name}`` (:func:`captum_lmac.nn.load_model`,
    :func:`~captum_lmac.nn.adapt_model`; layer names are those of the user's model).
    """
    t0 = time.time()
    log = progress_log(progress)
    cfg = load_config(suite, overrides)
    out_dir = Path(out_dir) if out_dir is not None else Path("benchmark_out") / cfg.suite
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"cannot write the reports into {out_dir}: it is a file, not a folder")
    check_writable(out_dir / "results.json", "the report")  # before any work
    if Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise InputError(f"the cache folder {cache_dir} is a file, not a folder")
    if user_model is not None:
        model, stft, classes, info = user_classifier(cfg, user_model, data_root, progress)
    else:
        model, stft, classes, info = get_suite_classifier(cfg, cache_dir, data_root, classifier_path, progress, log)
    cfg = load_config(cfg.to_dict(), classifier_defaults(cfg, info))
    t_clf = time.time() - t0
    t1 = time.time()
    # the test clips keep their phase (listenable explanations, SI-SDR); the others only for a waveform model
    data = load_data(cfg, stft, data_root, progress=progress, phase_splits=None if needs_phase(model) else ("test",))
    t_data = time.time() - t1
    clf_info = {k: info.get(k) for k in ("test_acc", "val_acc", "checkpoint", "train_seconds") if k in info}
    if "description" in info:
        clf_info["description"] = info["description"]
    elif hasattr(model, "net") and hasattr(model, "features"):
        clf_info["description"] = f"{type(model.net).__name__} {getattr(model.net, 'channels', '')} on {type(model.features).__name__}"
    clf_info["classes"] = list(classes)
    with deferred_writes(under=out_dir):  # the reports appear only when the whole run succeeds (caches stay)
        res = run_benchmark(model, stft, data, config=cfg, out_dir=out_dir, cache_dir=Path(cache_dir) / "interpreters",
                            data_root=data_root, classifier_info=clf_info, sanity=sanity, refit=refit,
                            progress=progress)
        res["timing"]["classifier_seconds"] = round(t_clf, 2)
        res["timing"]["data_seconds"] = round(t_data, 2)
        res["timing"]["suite_total_seconds"] = round(time.time() - t0, 2)
        write_json(res, out_dir / "results.json")
    return res


def user_classifier(cfg: SuiteConfig, user: Mapping[str, Any], data_root: Optional[PathLike] = None,
                    progress: bool = True):
    """``(model, stft, classes, info)`` for the user's own classifier (see :func:`run_suite`)."""
    stft = STFT(**cfg.classifier.stft)
    classes = list(suite_datasets(cfg, stft.sample_rate, data_root)["test"].classes)
    raw = load_model(user["spec"], user.get("weights"))
    model = adapt_model(raw, stft, input=user.get("input", "auto"), n_classes=len(classes) or None)
    info: Dict[str, Any] = {"description": f"user model {user['spec']}" + (f" ({user['weights']})" if user.get("weights") else ""),
                            "checkpoint": str(user.get("weights") or user["spec"])}
    layers = user.get("layers")
    if isinstance(layers, str):
        info["decoder_layers"] = layers  # "auto"
    elif layers is not None:
        info["decoder_layers"] = layer_configs(qualify_layers(model, list(layers)))
    if user.get("cam_layer"):
        info["cam_layer"] = qualify_layers(model, [user["cam_layer"]])[0]
    return model.eval(), stft, classes, info


def classifier_defaults(cfg: SuiteConfig, info: Mapping[str, Any]) -> Dict[str, Any]:
    """Settings a classifier brings when the suite leaves them open: its CAM layer and decoder layers."""
    out: Dict[str, Any] = {}
    if cfg.cam_layer is None and info.get("cam_layer"):
        out["cam_layer"] = info["cam_layer"]
    layers = info.get("decoder_layers")
    if layers is not None:
        for name, n in (("lmac", None), ("l2i", 2)):
            sec = cfg.section(name)
            if sec is not None and sec.layers is None:
                keep = layers if isinstance(layers, str) or n is None or len(layers) <= n else list(layers)[-n:]
                out[name] = {"layers": keep if isinstance(keep, str) else list(keep)}
    return out


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_dotted(d: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise InputError(f"--set {key}: {p!r} is not a section")
    cur[parts[-1]] = value


def _csv(text: Optional[str]) -> Optional[list]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def build_parser(prog: str = "captum-lmac benchmark") -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Run a comparative benchmark suite (every registered method, in- and out-of-domain, "
                    "STFT→Mel and Mel domains); writes results.json/csv/md and report.html.",
    )
    p.add_argument("suite", help=f"a built-in suite ({', '.join(BUILTIN_SUITES)}) or a JSON config file")
    p.add_argument("--out", default=None, help="output folder (default: benchmark_out/<suite>)")
    p.add_argument("--cache", default="cache",
                   help="cache folder: classifiers/<suite>.pt, clap/ and interpreters/ (default: cache)")
    p.add_argument("--data-root", default=None, help="data root (default: $CAPTUM_LMAC_DATA or ../shared/data)")
    snr = p.add_mutually_exclusive_group()
    snr.add_argument("--snr", type=float, default=None,
                     help="SNR in dB of every out-of-domain condition (default 3, the papers)")
    snr.add_argument("--snr-preset", choices=sorted(SNR_PRESETS), default=None,
                     help="paper: 3 dB everywhere; released: the reference code's 12 dB clip/speech, 6 dB white noise")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated methods (registered: {', '.join(METHODS)}; default: the suite's)")
    p.add_argument("--conditions", default=None, help="comma-separated: in-domain,clip,white,speech,ambient")
    p.add_argument("--domains", default=None, help="comma-separated: stft,mel")
    p.add_argument("--n-test", type=int, default=None, help="test clips per condition (stratified over classes)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--classifier", default=None,
                   help="a classifier saved with captum_lmac.save_classifier (instead of the suite's)")
    p.add_argument("--model", default=None,
                   help="your own classifier instead of the suite's: pkg.module:factory, path/to/file.py:factory, "
                        "or a TorchScript file")
    p.add_argument("--weights", default=None, help="weights of --model (a state_dict, loaded with weights_only)")
    p.add_argument("--input", default="auto", choices=["auto", "spectrogram", "waveform"],
                   help="what --model takes (default: detected on a probe input)")
    p.add_argument("--layers", default=None,
                   help="comma-separated layers of --model feeding the decoders, or 'auto' (default), "
                        "or 'none' for a model that cannot be hooked (TorchScript)")
    p.add_argument("--cam-layer", default=None, help="layer of --model for GradCAM(++) (default: the suite's rule)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config entry (dotted key, JSON value), e.g. --set lmac.fit.epochs=15")
    p.add_argument("--no-sanity", action="store_true", help="skip the cascading-randomisation sanity check")
    p.add_argument("--roar", action="store_true",
                   help="also run ROAR (remove the most salient bins and retrain; budget: the suite's roar section)")
    p.add_argument("--refit", action="store_true", help="refit interpreters even if cached")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The configuration overrides the command-line options stand for."""
    overrides: Dict[str, Any] = {}
    if args.snr is not None:
        overrides["snr_db"] = args.snr
    if args.snr_preset is not None:
        overrides["snr_preset"] = args.snr_preset
        overrides["snr_db"] = None
    for key, value in (("methods", _csv(args.methods)), ("conditions", _csv(args.conditions)),
                       ("domains", _csv(args.domains)), ("n_test", args.n_test), ("seed", args.seed)):
        if value is not None:
            overrides[key] = value
    for item in args.set:
        if "=" not in item:
            raise InputError(f"--set wants KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        _set_dotted(overrides, k.strip(), _parse_value(v.strip()))
    return overrides


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``captum-lmac benchmark <suite> [--out DIR] [--cache DIR] [--data-root DIR]
    [--snr DB | --snr-preset paper|released] [--methods a,b,c] [--n-test N] [--seed S] ...``.

    ``argv`` excludes the program name (a leading ``"benchmark"`` is accepted and skipped).
    Returns the exit status (0 on success, 2 on a data / input problem, reported in one line).
    """
    reuse_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "benchmark":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        try:
            torch.set_num_threads(check_positive_int(args.threads, "--threads"))
        except InputError as exc:
            print(f"captum-lmac benchmark: error: {exc}", file=sys.stderr)
            return 2
    user = None
    if args.model is not None:
        layers = "auto" if args.layers in (None, "auto") else ([] if args.layers == "none" else _csv(args.layers))
        user = {"spec": args.model, "weights": args.weights, "input": args.input, "layers": layers,
                "cam_layer": args.cam_layer}
    elif args.weights or args.layers or args.cam_layer:
        print("captum-lmac benchmark: error: --weights, --layers and --cam-layer go with --model", file=sys.stderr)
        return 2
    try:
        overrides = overrides_from_args(args)
        if args.roar:  # add ROAR to the suite's own analyses
            analyses = load_config(args.suite, overrides).analyses
            overrides["analyses"] = list(analyses) + ([] if "roar" in analyses else ["roar"])
        res = run_suite(args.suite, out_dir=args.out, cache_dir=args.cache, data_root=args.data_root,
                        overrides=overrides, classifier_path=args.classifier,
                        sanity=False if args.no_sanity else None, refit=args.refit, progress=not args.quiet,
                        user_model=user)
    except (InputError, DataNotFoundError, CheckpointError, NotFittedError) as exc:
        print(f"captum-lmac benchmark: error: {one_line(exc)}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("benchmark_out") / res["suite"]
    print((out / "results.md").read_text())
    peak = peak_rss_text(res)
    print(f"reports in {out}/ (report.html, results.json, results.csv, results.md); "
          f"total {res['timing'].get('suite_total_seconds', res['timing']['total_seconds']):.0f} s"
          + (f", {peak}" if peak else ""))
    return 0


__all__ = ["run_suite", "user_classifier", "classifier_defaults", "build_parser", "overrides_from_args", "main"]
