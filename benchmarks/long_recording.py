#!/usr/bin/env python
"""``captum-lmac explain`` on long recordings: peak memory and throughput (× real time) against duration.

Writes recordings of ``--minutes`` (default 5 and 60) at 16 kHz block by block (synthetic sound events
over a little noise), a classifier (the compact CNN of the ESC-10 suite, 80 log-mel bands of the
reference STFT; random weights unless ``--classifier`` names a saved one: speed and memory do not
depend on training) and an L-MAC interpreter (hidden 32 on blocks 1-4, decoder not trained), then runs
``captum-lmac explain`` on each file in a fresh process (default windows: 5 s, 1 s cross-fade,
8 windows per batch) and records the peak RSS of that process (its own ``ru_maxrss``) and the
throughput it reports.

Examples::

    .venv/bin/python benchmarks/long_recording.py                       # 5 and 60 minutes, ~5 min on 2 cores
    .venv/bin/python benchmarks/long_recording.py --minutes 1 --out /tmp/long
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from captum_lmac import LMAC, STFT, SyntheticEvents, build_classifier, save_classifier
from captum_lmac.training import load_classifier

LAYERS = ["net.block1", "net.block2", "net.block3", "net.block4"]

#: The measured process: ``captum-lmac <args>``, then its own peak RSS on stderr.
CHILD = ("import resource, sys\n"
         "from captum_lmac.cli import main\n"
         "rc = main(sys.argv[1:])\n"
         "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
         "sys.exit(rc)\n")


def write_recording(path: Path, minutes: float, rate: int = 16000) -> Path:
    """``minutes`` of audio written in 5 s blocks (never held whole)."""
    clips = SyntheticEvents(16, seed=0, sample_rate=rate, duration=5.0)
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * rate)
    with sf.SoundFile(str(path), mode="w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        done, k = 0, 0
        while done < total:
            block = 0.5 * clips[k % len(clips)][0].numpy() + 0.005 * rng.standard_normal(5 * rate)
            block = block[: total - done].astype(np.float32)
            f.write(block)
            done += block.shape[0]
            k += 1
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[5.0, 60.0])
    p.add_argument("--classifier", default=None, help="a saved classifier (captum_lmac.save_classifier)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=None, help="where the recordings go (default: a temporary folder)")
    p.add_argument("--out", default="benchmarks/results/long_recording")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="long_recording_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.classifier:
        clf_path = Path(args.classifier)
        model, stft, _, _ = load_classifier(clf_path)
    else:
        stft = STFT()
        torch.manual_seed(0)
        model = build_classifier(n_classes=10, stft=stft, n_mels=80, channels=(8, 16, 32, 64)).eval()
        clf_path = save_classifier(work / "clf.pt", model, stft, [f"class{i}" for i in range(10)])
    X = stft.analyze(SyntheticEvents(2, seed=1, sample_rate=stft.sample_rate, duration=5.0)[0][0])[0]
    lmac = LMAC(model, LAYERS, hidden=32)
    lmac.fit(X, epochs=0, progress=False)
    lmac.save(work / "lmac.pt")
    rows = []
    for minutes in args.minutes:
        wav = write_recording(work / f"rec_{minutes:g}min.wav", minutes, stft.sample_rate)
        cmd = [sys.executable, "-c", CHILD, "explain", str(wav), "--classifier", str(clf_path),
               "--interpreter", str(work / "lmac.pt"), "--out", str(work / f"exp_{minutes:g}min.wav"), "--chunk-seconds", "5",
               "--quiet"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.time() - t0
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return res.returncode
        peak = int(re.search(r"PEAK_RSS_KB (\d+)", res.stderr).group(1))
        m = re.search(r"throughput: ([\d.]+) s of audio in ([\d.]+) s \(([\d.]+)x real time\)", res.stdout)
        out_info = sf.info(str(work / f"exp_{minutes:g}min.wav"))
        row = {"minutes": minutes, "audio_seconds": float(m.group(1)), "explain_seconds": float(m.group(2)),
               "realtime_factor": float(m.group(3)), "process_seconds": round(wall, 1),
               "peak_rss_mb": round(peak / 1024, 1), "output_seconds": out_info.frames / out_info.samplerate,
               "windows": int(re.search(r"mean over (\d+) windows", res.stdout).group(1)),
               "wav_mb": round((work / f"rec_{minutes:g}min.wav").stat().st_size / 2**20, 1)}
        rows.append(row)
        print(f"{minutes:g} min: {row['windows']} windows, {row['realtime_factor']}x real time "
              f"({row['explain_seconds']} s), peak RSS {row['peak_rss_mb']} MB", flush=True)
        (work / f"rec_{minutes:g}min.wav").unlink()
        (work / f"exp_{minutes:g}min.wav").unlink()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"threads": args.threads, "classifier": args.classifier or "compact CNN 8-16-32-64, random weights",
                "window_seconds": 5.0, "overlap_seconds": 1.0, "batch_windows": 8, "sample_rate": stft.sample_rate}
    out.with_suffix(".json").write_text(json.dumps({"settings": settings, "runs": rows,
                                                    "measured": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
    lines = [f"captum-lmac explain on long recordings ({settings['classifier']}, L-MAC hidden 32 on blocks 1-4, "
             f"5 s windows with 1 s cross-fade, 8 windows per batch, {args.threads} thread(s)).", "",
             "| recording | windows | explain time (s) | × real time | peak RSS of the process (MB) | input WAV (MB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['minutes']:g} min | {r['windows']} | {r['explain_seconds']} | {r['realtime_factor']} | "
                     f"{r['peak_rss_mb']} | {r['wav_mb']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
