"""A distributed fit: torchrun with 2 gloo processes on 127.0.0.1 equals a 1-process fit with the same global
batch, and only rank 0 writes files."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import captum_lmac
from captum_lmac import SyntheticEvents
from captum_lmac._io import load_checkpoint
from captum_lmac.cli import main
from captum_lmac.distributed import shard_batch, shard_rows
from captum_lmac.data import Batch
from captum_lmac.fit import fit_interpreter

REPO = Path(captum_lmac.__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")

FACTORY = '''
import torch
from captum_lmac import STFT, build_classifier

def net():
    torch.manual_seed(0)
    return build_classifier(3, STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128), n_mels=16,
                            channels=(4, 8))
'''

# Runs captum_lmac.fit under an audit hook that logs every file this rank creates, writes, renames or removes
# below WATCH (one log per rank), so the test sees which process wrote what.
LAUNCHER = '''
import os, runpy, sys
watch = os.environ["WATCH"]
log = open(os.path.join(os.environ["AUDIT"], "rank%s.log" % os.environ["RANK"]), "w", buffering=1)
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & WRITE)
        if writes and isinstance(path, (str, os.PathLike)) and str(path).startswith(watch):
            log.write("open %s\\n" % path)
    elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.chmod"):
        if str(args[0]).startswith(watch):
            log.write("%s %s\\n" % (event, args[0]))

sys.addaudithook(hook)
sys.argv = ["captum_lmac.fit"] + sys.argv[1:]
runpy.run_module("captum_lmac.fit", run_name="__main__")
'''

STFT_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--win-length", "128"]
#: Decoder weights of the 2-process fit vs the 1-process fit (float32; only the summation order differs).
TOLERANCE = 1e-5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    (d / "models.py").write_text(FACTORY)
    (d / "launch.py").write_text(LAUNCHER)
    (d / "clips").mkdir()
    ds = SyntheticEvents(30, seed=0, sample_rate=8000, duration=1.0, n_classes=3)
    for i in range(len(ds)):
        sf.write(d / "clips" / f"c{i:02d}.wav", ds[i][0].numpy(), 8000)
    return d


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed next to this Python")
def test_two_gloo_processes_match_one_process_and_only_rank0_writes(folder, tmp_path):
    out = tmp_path / "out"
    audit = tmp_path / "audit"
    out.mkdir()
    audit.mkdir()
    fit_args = ["--model", f"{folder / 'models.py'}:net", "--data", str(folder / "clips"), "--layers",
                "net.block1,net.block2", "--duration", "1.0", "--epochs", "2", "--batch-size", "6", "--quiet"] + STFT_ARGS
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "WATCH": str(out), "AUDIT": str(audit)}
    cmd = [str(TORCHRUN), "--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           str(folder / "launch.py")] + fit_args + ["--out", str(out / "lmac.pt"), "--checkpoint-dir", str(out / "ck")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "on 2 processes" in res.stdout and res.stdout.count("fitted L-MAC") == 1  # rank 0 alone reports

    # the same fit in one process, same global batch
    torch.set_num_threads(1)
    fit_interpreter(f"{folder / 'models.py'}:net", folder / "clips", tmp_path / "one.pt", layers=["net.block1", "net.block2"],
                    stft=dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=128), duration=1.0, epochs=2,
                    batch_size=6, progress=False)
    two, meta2 = load_checkpoint(out / "lmac.pt", "lmac")
    one, meta1 = load_checkpoint(tmp_path / "one.pt", "lmac")
    assert two.keys() == one.keys()
    worst = max(float((two[k] - one[k]).abs().max()) for k in one)
    print(f"max |w_2proc - w_1proc| = {worst:.3g}")
    assert worst < TOLERANCE, worst
    h1, h2 = meta1["history"], meta2["history"]
    assert h2["world_size"] == 2 and h1["best_epoch"] == h2["best_epoch"]
    assert np.allclose(h1["loss"], h2["loss"], rtol=1e-5) and np.allclose(h1["val_loss"], h2["val_loss"], rtol=1e-5)

    # files: rank 0 wrote the checkpoint and the interpreter (temporary file + rename), rank 1 nothing at all
    rank0 = (audit / "rank0.log").read_text()
    rank1 = (audit / "rank1.log").read_text()
    assert rank1 == ""
    assert f"os.rename {out / 'ck'}" in rank0 and "last.pt" in rank0 and "lmac.pt" in rank0
    assert sorted(p.name for p in out.iterdir()) == ["ck", "lmac.pt"] and [p.name for p in (out / "ck").iterdir()] == ["last.pt"]


def test_distributed_outside_torchrun_is_a_one_line_error(folder, tmp_path, capsys, monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    rc = main(["fit", "--model", f"{folder / 'models.py'}:net", "--data", str(folder / "clips"), "--out",
               str(tmp_path / "x.pt"), "--distributed", "--quiet"] + STFT_ARGS)
    err = capsys.readouterr().err
    assert rc == 2 and "torchrun" in err and err.count("\n") == 1


def test_shard_batch_splits_rows_and_keeps_the_rest():
    b = Batch(torch.arange(5.0).view(5, 1, 1, 1), phase=torch.zeros(5, 1, 1, 1), length=99,
              captions=[["a"], ["b"], ["c"], ["d"], ["e"]], extra=(torch.arange(5), [torch.ones(5, 2), torch.ones(5)]))
    parts = [shard_batch(b, r, 2) for r in range(2)]
    assert [p.X.flatten().tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0, 4.0]]
    assert parts[1].captions == [["c"], ["d"], ["e"]] and parts[1].length == 99
    assert parts[0].extra[1][0].shape == (2, 2) and parts[1].extra[0].tolist() == [2, 3, 4]
    assert [shard_rows(7, r, 3) for r in range(3)] == [slice(0, 2), slice(2, 4), slice(4, 7)]
