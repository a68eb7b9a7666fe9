"""Bad input to save / load and the atomic writer: damaged checkpoints, unwritable paths, interruptions."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import captum_lmac
from captum_lmac import L2I, LMAC, CheckpointError, InputError
from captum_lmac._io import (FORMAT_VERSION, atomic_write, deferred_writes, fingerprint_mismatch, load_checkpoint,
                             model_fingerprint, save_checkpoint, stale_partials)
from captum_lmac.training import load_classifier

ROOT = str(Path(captum_lmac.__file__).resolve().parents[1])


def _edit(src: Path, dst: Path, edit) -> Path:
    """Copy a checkpoint with ``edit(payload)`` applied. The metadata is under ``payload["meta"]`` as a
    dict (stored back as JSON), unless the edit sets ``payload["_raw"]`` (then ``meta_json`` stays as edited)."""
    payload = torch.load(src, weights_only=True)
    payload["meta"] = json.loads(payload["meta_json"])
    edit(payload)
    meta = payload.pop("meta")
    if not payload.pop("_raw", False):
        payload["meta_json"] = json.dumps(meta)
    torch.save(payload, dst)
    return dst


def _raw(payload, key, value):
    payload[key] = value
    payload["_raw"] = True


def _first_matrix(state):
    return next(k for k, v in state.items() if v.dim() >= 2)


LMAC_DAMAGE = [
    (lambda p: p.update(format_version=99), r"newer captum_lmac \(checkpoint format_version 99\); this version reads "
                                            r"format_version 1"),
    (lambda p: p.update(format_version="1"), "format_version '1' is not a positive integer"),
    (lambda p: p.update(format_version=0), "format_version 0"),
    (lambda p: p.pop("format_version"), r"lacks \['format_version'\]"),
    (lambda p: (p.pop("meta_json"), p.update(_raw=True)), r"lacks \['meta_json'\]"),
    (lambda p: _raw(p, "meta_json", "{not json"), "meta_json is not valid JSON"),
    (lambda p: _raw(p, "meta_json", "[1, 2]"), "a JSON list, not an object"),
    (lambda p: _raw(p, "meta_json", b"{}"), "not a JSON string"),
    (lambda p: p["meta"].pop("fingerprint"), r"lacks \['fingerprint'\]"),
    (lambda p: p["meta"].pop("config"), r"lacks \['config'\]"),
    (lambda p: p["meta"].update(layers="net.block1"), "'layers' a list"),
    (lambda p: p["meta"]["fingerprint"].update(checksum=float("nan")), "checksum nan is not a finite number"),
    (lambda p: p["meta"]["fingerprint"].update(checksum="abc"), "checksum 'abc'"),
    (lambda p: p["meta"]["fingerprint"].pop("shapes"), "no 'shapes' table"),
    (lambda p: p["meta"]["config"]["decoder"].pop("layer_spec"), "stored decoder configuration"),
    (lambda p: p["meta"]["config"]["init"].update(hidden="wide"), "constructor arguments"),
    (lambda p: p["meta"].update(layers=[{"nolayer": 1}]), "the stored layers"),
    (lambda p: p["state"].update({_first_matrix(p["state"]): torch.zeros(1, 1)}), "shape mismatch"),
    (lambda p: p["state"].pop(next(iter(p["state"]))), "missing key"),
    (lambda p: p["state"].update({"decoder.extra": torch.zeros(2)}), "unexpected key"),
    (lambda p: p["state"].update({k: torch.full_like(v, float("nan")) for k, v in list(p["state"].items())[:1]}),
     "hold NaN or infinite values"),
    (lambda p: p["state"].update({k: torch.full_like(v, float("inf")) for k, v in list(p["state"].items())[-1:]}),
     "hold NaN or infinite values"),
    (lambda p: p.update(state=[1, 2]), "not a table of named tensors"),
    (lambda p: p.update(kind="l2i"), "holds a 'l2i' checkpoint, expected 'lmac'"),
]


@pytest.mark.parametrize("edit, match", LMAC_DAMAGE)
def test_damaged_interpreter_files(files, model, tmp_path, edit, match):
    path = _edit(files / "lmac.pt", tmp_path / "damaged.pt", edit)
    with pytest.raises(CheckpointError, match=match):
        LMAC.load(path, model)


def test_damaged_l2i_file(files, model, tmp_path):
    path = _edit(files / "l2i.pt", tmp_path / "l2i.pt", lambda p: p["meta"]["config"].update(decoder={"k": 1}))
    with pytest.raises(CheckpointError, match="stored decoder configuration"):
        L2I.load(path, model)


@pytest.mark.parametrize("content, match", [
    (b"", "loaded safely .*EOFError"),
    (b"garbage bytes, not a zip", "loaded safely"),
])
def test_not_a_checkpoint(tmp_path, model, content, match):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        LMAC.load(tmp_path / "x.pt", model)


class Custom:
    """torch.load(weights_only=True) refuses to unpickle it."""


def test_pickles_and_foreign_files(tmp_path, model):
    torch.save({"obj": Custom()}, tmp_path / "pickle.pt")
    with pytest.raises(CheckpointError, match="loaded safely"):
        LMAC.load(tmp_path / "pickle.pt", model)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="not a captum_lmac checkpoint"):
        LMAC.load(tmp_path / "state.pt", model)
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        LMAC.load(tmp_path / "dir.pt", model)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        LMAC.load(tmp_path / "missing.pt", model)


CLASSIFIER_DAMAGE = [
    (lambda p: p["meta"].update(net="ResNet9000"), r"unknown network 'ResNet9000' .* known networks: \['CNN14', "
                                                   r"'CompactCNN'\]"),
    (lambda p: p["meta"].update(architecture={"name": "vit9000"}), r"unknown architecture 'vit9000' .*'crnn'"),
    (lambda p: p["meta"].pop("stft"), r"lacks \['stft'\]"),
    (lambda p: p["meta"].pop("net_config"), "lacks 'net_config'"),
    (lambda p: p["meta"].update(classes="abc"), "'classes' must be a list"),
    (lambda p: p["meta"]["stft"].update(n_fft=0), "malformed stored configuration"),
    (lambda p: p["meta"]["net_config"].update(channels="many"), "malformed stored configuration"),
    (lambda p: p["state"].update({"net.fc.weight": p["state"]["net.fc.weight"][:1]}), "shape mismatch"),
    (lambda p: p["state"]["net.fc.weight"].fill_(float("nan")), r"\['net.fc.weight'\] hold NaN"),
    (lambda p: p.update(format_version=FORMAT_VERSION + 1), "newer captum_lmac"),
]


@pytest.mark.parametrize("edit, match", CLASSIFIER_DAMAGE)
def test_damaged_classifier_files(files, tmp_path, edit, match):
    path = _edit(files / "clf.pt", tmp_path / "clf.pt", edit)
    with pytest.raises(CheckpointError, match=match):
        load_classifier(path)


def test_fingerprints_are_nan_robust(model, stft):
    fp = model_fingerprint(model)
    bad = type(model)(model.features, type(model.net)(**model.net.config()))
    bad.load_state_dict(model.state_dict())
    with torch.no_grad():
        bad.net.fc.bias[0] = float("nan")
    fpb = model_fingerprint(bad)
    assert fpb["checksum"] == fpb["checksum"] and fpb["nonfinite"] == ["net.fc.bias"]  # finite checksum
    assert "NaN or infinite weights" in fingerprint_mismatch(fp, bad)
    assert fingerprint_mismatch({**fp, "checksum": float("nan")}, model) != ""
    assert fingerprint_mismatch(fp, model) == ""


def test_save_refuses_nan_and_bad_paths(tmp_path, lmac):
    with pytest.raises(InputError, match=r"refusing to save .*\['w'\] hold NaN"):
        save_checkpoint(tmp_path / "x.pt", "lmac", {"w": torch.tensor([float("nan")])}, {})
    assert not (tmp_path / "x.pt").exists()
    (tmp_path / "adir.pt").mkdir()
    with pytest.raises(InputError, match=r"cannot write .*adir\.pt: it is an existing directory"):
        lmac.save(tmp_path / "adir.pt")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match=r"cannot write .*afile/sub/l\.pt: .*afile is a file, not a folder"):
        lmac.save(tmp_path / "afile" / "sub" / "l.pt")
    with pytest.raises(InputError, match="path is empty"):
        lmac.save("")


def test_permission_denied_names_the_users_path(tmp_path, lmac, monkeypatch):
    real_open = os.open

    def denied(path, *a, **kw):
        if ".partial" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError) as info:
        lmac.save(tmp_path / "l.pt")
    assert str(info.value) == f"cannot write {tmp_path / 'l.pt'}: permission denied"  # not the partial name
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path, lmac):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match=r"cannot write .*ro/l\.pt: permission denied"):
            lmac.save(ro / "l.pt")
    finally:
        ro.chmod(0o755)


def test_failed_write_leaves_nothing_and_fsyncs(tmp_path, monkeypatch):
    def boom(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write(tmp_path / "a.txt", boom)
    assert list(tmp_path.iterdir()) == []
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    atomic_write(tmp_path / "a.txt", lambda t: Path(t).write_text("ok"))
    assert (tmp_path / "a.txt").read_text() == "ok" and len(synced) >= 2  # the file and its folder
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_deferred_writes_are_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with deferred_writes():
            atomic_write(tmp_path / "one.wav", lambda t: Path(t).write_text("1"))
            atomic_write(tmp_path / "new" / "two.png", lambda t: Path(t).write_text("2"))
            raise RuntimeError("the second step failed")
    assert list(tmp_path.iterdir()) == []  # no file, no partial file, no new folder
    with deferred_writes(under=tmp_path / "out"):
        atomic_write(tmp_path / "out" / "r.json", lambda t: Path(t).write_text("r"))
        atomic_write(tmp_path / "cache.pt", lambda t: Path(t).write_text("c"))  # outside: written at once
        assert (tmp_path / "cache.pt").exists() and not (tmp_path / "out" / "r.json").exists()
    assert (tmp_path / "out" / "r.json").read_text() == "r"


SLOW_WRITER = """
import sys, time
from pathlib import Path
from captum_lmac._io import atomic_write
def slow(tmp):
    Path(tmp).write_text("partial")
    print("writing", flush=True)
    time.sleep(30)
atomic_write(sys.argv[1], slow)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_save(tmp_path, sig):
    target = tmp_path / "model.pt"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == -sig  # the process still ends by the signal
    left = sorted(p.name for p in tmp_path.iterdir())
    if sig == signal.SIGTERM:
        assert left == []  # the partial file was removed
    else:  # SIGKILL cannot be caught: the partial file stays, clearly named, and the next write removes it
        assert len(left) == 1 and left[0].startswith(".model.pt.") and ".partial" in left[0]
        assert stale_partials(target)
        atomic_write(target, lambda t: Path(t).write_text("ok"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert not target.exists() or target.read_text() == "ok"


def test_load_checkpoint_required_keys(files):
    with pytest.raises(CheckpointError, match=r"lacks \['nothing_like_this'\]"):
        load_checkpoint(files / "lmac.pt", "lmac", required=("nothing_like_this",))
