"""Resumable fits: fit-state checkpoints (pickle-free), exact resume after a crash or a SIGTERM, refusals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import captum_lmac
from captum_lmac import L2I, LMAC, STFT, SyntheticEvents, build_classifier, to_spectrograms
from captum_lmac.attr import LMACZS
from captum_lmac.attr._learned import LearnedAttribution
from captum_lmac.attr._fit_state import FIT_STATE_KIND, LAST, load_fit_state
from captum_lmac._io import save_checkpoint
from captum_lmac.data import StreamingSpectrograms
from captum_lmac.errors import CheckpointError, FitInterrupted, InputError
from captum_lmac.nn.zeroshot import ZeroShotClassifier
from toys import TinyAudio, WordVectors

REPO = Path(captum_lmac.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    stft = STFT(n_fft=256, hop_length=64, win_length=128)
    ds = SyntheticEvents(20, seed=0, n_classes=3, duration=1.0)
    val = to_spectrograms(SyntheticEvents(6, seed=1, n_classes=3, duration=1.0), stft, progress=False)
    torch.manual_seed(0)
    model = build_classifier(n_classes=3, stft=stft, n_mels=16, channels=(4, 8)).eval()
    return stft, ds, val, model


def crash_at(monkeypatch, step):
    """Make the fit loop die (KeyboardInterrupt, as from a kill) when it reaches optimisation step ``step``."""
    real = LearnedAttribution._fit_step
    calls = {"n": 0}

    def fake(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LearnedAttribution, "_fit_step", fake)


def same_weights(a, b, atol=0.0):
    return all(torch.allclose(x, y, atol=atol, rtol=0) for x, y in zip(a.decoder.state_dict().values(),
                                                                         b.decoder.state_dict().values()))


def make_method(name, tiny):
    stft, ds, val, model = tiny
    if name == "lmac":
        return LMAC(model, ["net.block1", "net.block2"]), StreamingSpectrograms(ds, stft, clip_seconds=0.7,
                                                                                  crop="random"), {"val": val.X}
    if name == "l2i":
        return (L2I(model, ["net.block1", "net.block2"], n_components=5, hidden=8),
                to_spectrograms(ds, stft, progress=False), {"val": val, "nmf_iter": 4})
    torch.manual_seed(0)
    zs = ZeroShotClassifier(TinyAudio().eval(), WordVectors(), ["dog", "rain"], logit_scale=10.0)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(12, 1, 16, 24, generator=g)
    caps = [["a dog barking", "a dog"] if i % 2 else ["rain falling", "rain"] for i in range(12)]
    return LMACZS(zs, layers=["audio_encoder.block1", "audio_encoder.block2"], hidden=8), (X, caps), \
        {"val": (X[:4], caps[:4]), "texts_per_audio": 2}


@pytest.mark.parametrize("name, crash", [("lmac", 6), ("l2i", 4), ("lmac_zs", 4)])
def test_resume_after_a_crash_equals_an_uninterrupted_fit(tiny, tmp_path, monkeypatch, name, crash):
    ref, data, opts = make_method(name, tiny)
    h_ref = ref.fit(data, epochs=3, batch_size=6, progress=False, **opts)
    first, data, opts = make_method(name, tiny)
    crash_at(monkeypatch, crash)  # in the middle of an epoch (2 or 4 steps per epoch)
    with pytest.raises(KeyboardInterrupt):
        first.fit(data, epochs=3, batch_size=6, progress=False, checkpoint_dir=tmp_path, checkpoint_steps=1, **opts)
    monkeypatch.undo()
    _, meta = load_fit_state(tmp_path)
    assert meta["global_step"] == crash - 1 and meta["step"] > 0 and not meta["complete"]  # mid-epoch
    again, data, opts = make_method(name, tiny)
    h = again.fit(data, epochs=3, batch_size=6, progress=False, checkpoint_dir=tmp_path, resume=True, **opts)
    assert same_weights(ref, again)
    for k in ("loss", "val_loss"):
        assert np.allclose(h_ref[k], h[k], rtol=1e-12, equal_nan=True), k
    assert h["best_epoch"] == h_ref["best_epoch"]


def test_checkpoint_is_pickle_free_and_holds_the_fit_state(tiny, tmp_path):
    lmac, data, opts = make_method("lmac", tiny)
    lmac.fit(data, epochs=2, batch_size=6, progress=False, checkpoint_dir=tmp_path, **opts)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    assert payload["kind"] == "fit_state" and isinstance(payload["meta_json"], str)
    state = payload["state"]
    assert {"rng.torch", "rng.gen"} <= set(state) and any(k.startswith("optim.") for k in state)
    assert any(k.startswith("best.") for k in state) and any(k.startswith("decoder.") for k in state)
    _, meta = load_fit_state(tmp_path / "last.pt")
    assert meta["complete"] and meta["epoch"] == 2 and len(meta["history"]["val_loss"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # written atomically: no temporary files left
    # the explainer of the best epoch so far, from the fit state
    got = LMAC.from_fit_state(tmp_path, tiny[3])
    X = tiny[2].X[:2]
    assert torch.allclose(got.attribute(X), lmac.attribute(X))


def test_resume_continues_a_finished_fit_with_more_epochs(tiny, tmp_path):
    ref, data, opts = make_method("lmac", tiny)
    ref.fit(data, epochs=3, batch_size=6, progress=False, **opts)
    a, data, opts = make_method("lmac", tiny)
    a.fit(data, epochs=2, batch_size=6, progress=False, checkpoint_dir=tmp_path, **opts)
    b, data, opts = make_method("lmac", tiny)
    h = b.fit(data, epochs=3, batch_size=6, progress=False, checkpoint_dir=tmp_path, resume=True, **opts)
    assert same_weights(ref, b) and len(h["loss"]) == 3
    c, data, opts = make_method("lmac", tiny)  # already complete: nothing to train, the same result
    c.fit(data, epochs=3, batch_size=6, progress=False, checkpoint_dir=tmp_path, resume=True, **opts)
    assert same_weights(ref, c)


def test_resuming_a_fit_stopped_at_its_last_epoch_boundary_marks_it_complete(tiny, tmp_path):
    a, data, opts = make_method("lmac", tiny)
    a.fit(data, epochs=2, batch_size=6, progress=False, checkpoint_dir=tmp_path, **opts)
    state, meta = load_fit_state(tmp_path)
    # what a SIGTERM right after the last epoch leaves: all epochs done, the checkpoint not marked complete
    save_checkpoint(tmp_path / LAST, FIT_STATE_KIND, state, {**meta, "complete": False})
    b, data, opts = make_method("lmac", tiny)
    b.fit(data, epochs=2, batch_size=6, progress=False, checkpoint_dir=tmp_path, resume=True, **opts)
    after = load_fit_state(tmp_path)[1]
    assert after["complete"] and after["epoch"] == 2 and same_weights(a, b)


def test_resume_refuses_other_settings_and_needs_a_folder(tiny, tmp_path):
    lmac, data, opts = make_method("lmac", tiny)
    lmac.fit(data, epochs=1, batch_size=6, progress=False, checkpoint_dir=tmp_path, **opts)
    other, data, opts = make_method("lmac", tiny)
    with pytest.raises(CheckpointError, match="lr 0.002 → 0.01"):
        other.fit(data, epochs=2, batch_size=6, lr=1e-2, progress=False, checkpoint_dir=tmp_path, resume=True, **opts)
    with pytest.raises(InputError, match="checkpoint_dir"):
        other.fit(data, epochs=2, progress=False, resume=True)
    with pytest.raises(InputError, match="checkpoint_steps"):
        other.fit(data, epochs=1, progress=False, checkpoint_dir=tmp_path / "x", checkpoint_steps=0)
    fresh, data, opts = make_method("lmac", tiny)  # nothing to resume yet: a new fit
    h = fresh.fit(data, epochs=1, batch_size=6, progress=False, checkpoint_dir=tmp_path / "new", resume=True, **opts)
    assert len(h["loss"]) == 1 and (tmp_path / "new" / "last.pt").is_file()


def test_sigterm_in_process_stops_at_a_step_with_a_checkpoint(tiny, tmp_path, monkeypatch):
    ref, data, opts = make_method("lmac", tiny)
    ref.fit(data, epochs=2, batch_size=6, progress=False, **opts)
    real = LearnedAttribution._fit_step
    calls = {"n": 0}

    def fake(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during the step; the step finishes first
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LearnedAttribution, "_fit_step", fake)
    a, data, opts = make_method("lmac", tiny)
    with pytest.raises(FitInterrupted, match="SIGTERM") as info:
        a.fit(data, epochs=2, batch_size=6, progress=False, checkpoint_dir=tmp_path, **opts)
    monkeypatch.undo()
    assert info.value.epoch == 0 and info.value.step == 3 and info.value.checkpoint == tmp_path / "last.pt"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    b, data, opts = make_method("lmac", tiny)
    b.fit(data, epochs=2, batch_size=6, progress=False, checkpoint_dir=tmp_path, resume=True, **opts)
    assert same_weights(ref, b)


FACTORY = '''
import torch
from captum_lmac import STFT, build_classifier

def net():
    torch.manual_seed(0)
    return build_classifier(3, STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128), n_mels=16,
                            channels=(4, 8))
'''
STFT_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--win-length", "128"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume_cli")
    (d / "models.py").write_text(FACTORY)
    (d / "clips").mkdir()
    ds = SyntheticEvents(30, seed=0, sample_rate=8000, duration=1.0, n_classes=3)
    for i in range(len(ds)):
        sf.write(d / "clips" / f"c{i:02d}.wav", ds[i][0].numpy(), 8000)
    return d


def test_a_sigterm_subprocess_leaves_a_loadable_checkpoint_and_resumes(clips, tmp_path):
    from captum_lmac.cli import main

    ck = tmp_path / "ck"
    args = ["fit", "--model", f"{clips / 'models.py'}:net", "--data", str(clips / "clips"), "--out",
            str(tmp_path / "lmac.pt"), "--layers", "net.block1,net.block2", "--duration", "1.0", "--batch-size", "4",
            "--checkpoint-dir", str(ck), "--checkpoint-steps", "1", "--quiet"] + STFT_ARGS
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "captum_lmac.cli"] + args + ["--epochs", "200"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (ck / "last.pt").is_file():  # wait for the first checkpoints, then stop it
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "lmac.pt").exists() and sorted(p.name for p in ck.iterdir()) == ["last.pt"]
    payload = torch.load(ck / "last.pt", weights_only=True)  # the last good checkpoint loads, pickle-free
    _, meta = load_fit_state(ck)
    stopped_at = meta["global_step"]
    assert payload["kind"] == "fit_state" and stopped_at >= 1 and not meta["complete"]
    # resume (in this process) with fewer epochs than the interrupted run asked for: it finishes at once
    epochs_done = meta["epoch"] + (1 if meta["step"] else 0)
    rc = main(args + ["--epochs", str(epochs_done), "--resume"])
    assert rc == 0 and (tmp_path / "lmac.pt").is_file()
    _, meta = load_fit_state(ck)
    assert meta["complete"] and meta["global_step"] >= stopped_at
