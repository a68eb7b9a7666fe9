"""load_model / load_weights / adapt_model: a user's model for the command line, and every bad input."""

import textwrap

import pytest
import torch

from captum_lmac import STFT, CheckpointError, InputError
from captum_lmac._io import save_checkpoint
from captum_lmac.nn.hooks import Hook, resolve_hooks
from captum_lmac.nn.adapters import PickLogits, WaveformClassifier
from captum_lmac.nn.loading import adapt_model, load_model, load_weights, qualify_layers
from captum_lmac.nn.zoo import Conv1DNet, to_torchscript


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


class Custom:
    """An arbitrary object: torch.load(weights_only=True) refuses to unpickle it."""


STFT_SMALL = dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)

USER_FILE = """
    import torch
    from torch import nn
    from helper import width          # a neighbour module: the file's folder is on sys.path

    import captum_lmac as cl


    class SpecNet(nn.Module):
        def __init__(self, n_classes=3):
            super().__init__()
            self.block1 = nn.Conv2d(1, width, 3, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(width, n_classes)

        def forward(self, x):
            return self.fc(self.relu(self.block1(x)).mean((2, 3)))


    def build(n_classes=3):
        stft = cl.STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
        return cl.SpectrogramClassifier(cl.LogMel(stft, n_mels=16), SpecNet(n_classes))


    def build_dict_output(n_classes=3):
        net = build(n_classes)
        class Dict(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = net
            def forward(self, x):
                return {"embedding": x.mean((1, 2)), "scores": self.inner(x)}
        return Dict()


    class WaveNet(nn.Module):
        sample_rate = 8000

        def __init__(self, n_classes=3):
            super().__init__()
            self.block1 = nn.Conv1d(1, width, 64, stride=16)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(width, n_classes)

        def forward(self, w):
            return self.fc(self.relu(self.block1(w.unsqueeze(1))).mean(-1))


    def broken(n_classes=3):
        raise ValueError("n_classes must be even, got %d" % n_classes)


    def not_a_model():
        return "hello"


    def frames(n_classes=3):
        class Frames(nn.Module):
            def forward(self, x):
                return x[:, 0, :n_classes]          # (N, classes, T): frame-wise scores
        return Frames()
"""


@pytest.fixture()
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "helper.py").write_text("width = 4\n")
    (tmp_path / "my_models.py").write_text(textwrap.dedent(USER_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))  # "my_models" is also importable as a module
    return tmp_path


# --- the three spec forms --------------------------------------------------------------------------------------


def test_module_factory_file_factory_and_torchscript(user_dir):
    stft = STFT(**STFT_SMALL)
    X, _ = stft.analyze(torch.randn(2, 4000))
    m1 = load_model("my_models:build", n_classes=5)
    assert not m1.training and m1(X).shape == (2, 5)
    m2 = load_model(f"{user_dir}/my_models.py:build")
    assert m2(X).shape == (2, 3)
    assert isinstance(load_model("captum_lmac.nn.zoo:Conv1DNet", n_classes=4, n_mels=16, width=4), Conv1DNet)
    ts_path = user_dir / "model.ts"
    to_torchscript(m2, X, path=ts_path)
    ts = load_model(str(ts_path))
    torch.testing.assert_close(ts(X), m2(X))


def test_weights_state_dict_prefixes_wrappers_and_our_checkpoints(user_dir):
    src = load_model("my_models:build")
    sd = src.state_dict()
    stft = STFT(**STFT_SMALL)
    X, _ = stft.analyze(torch.randn(2, 4000))
    files = {
        "plain.pt": sd,
        "dataparallel.pt": {f"module.{k}": v for k, v in sd.items()},
        "lightning.pt": {"state_dict": sd, "epoch": 3},
        "panns.pt": {"model": sd, "iteration": 1},
    }
    for name, payload in files.items():
        torch.save(payload, user_dir / name)
    save_checkpoint(user_dir / "ours.pt", "classifier", sd, {"note": "x"})
    for name in list(files) + ["ours.pt"]:
        m = load_model("my_models:build", user_dir / name)
        torch.testing.assert_close(m(X), src.eval()(X), msg=name)
    ts_path = user_dir / "m.ts"
    to_torchscript(load_model("my_models:build"), X, path=ts_path)
    torch.testing.assert_close(load_model(str(ts_path), user_dir / "plain.pt")(X), src(X))


# --- bad input -------------------------------------------------------------------------------------------------


def test_spec_errors(user_dir):
    with pytest.raises(InputError, match=r"cannot import module 'no_such_pkg.models'.*No module named 'no_such_pkg'"):
        load_model("no_such_pkg.models:build")
    with pytest.raises(InputError) as err:
        load_model("my_models:buld")
    msg = str(err.value)
    assert "has no attribute 'buld'" in msg and "did you mean ['build'" in msg and "SpecNet" in msg
    with pytest.raises(InputError, match=r"the factory raised ValueError: n_classes must be even, got 3"):
        load_model("my_models:broken")
    with pytest.raises(InputError, match="raised TypeError.*unexpected keyword.*signature build\\(n_classes=3\\)"):
        load_model("my_models:build", n_clases=3)
    with pytest.raises(InputError, match="returned a str, not a torch.nn.Module"):
        load_model("my_models:not_a_model")
    with pytest.raises(InputError, match="the Python file .*missing.py does not exist"):
        load_model(f"{user_dir}/missing.py:build")
    with pytest.raises(InputError, match="the file .*gone.pt does not exist"):
        load_model(f"{user_dir}/gone.pt")
    with pytest.raises(InputError, match=r"needs the factory to call.*'build'"):
        load_model(str(user_dir / "my_models.py"))
    with pytest.raises(InputError, match="not of a known form"):
        load_model("my_models")
    with pytest.raises(InputError, match="names no factory"):
        load_model("my_models:")
    (user_dir / "bad.py").write_text("raise RuntimeError('no GPU here')\n")
    with pytest.raises(InputError, match="running .*bad.py failed: RuntimeError: no GPU here"):
        load_model(f"{user_dir}/bad.py:build")


def test_torchscript_file_errors(user_dir):
    torch.save(load_model("my_models:build").state_dict(), user_dir / "weights.pt")
    with pytest.raises(CheckpointError, match="holds weights.*not a TorchScript model.*--weights"):
        load_model(str(user_dir / "weights.pt"))
    (user_dir / "junk.ts").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="is not a TorchScript file"):
        load_model(str(user_dir / "junk.ts"))


def test_weights_errors_name_missing_unexpected_and_mismatched_keys(user_dir):
    sd = load_model("my_models:build").state_dict()
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_model("my_models:build", user_dir / "nope.pt")
    torch.save(load_model("my_models:build", n_classes=7).state_dict(), user_dir / "seven.pt")
    with pytest.raises(CheckpointError) as err:
        load_model("my_models:build", user_dir / "seven.pt")
    msg = str(err.value)
    assert "2 shape mismatch(es)" in msg and "net.fc.weight: file (7, 4) vs model (3, 4)" in msg and "n_classes" in msg
    partial = {k: v for k, v in sd.items() if not k.startswith("net.block1")}
    partial["net.extra.weight"] = torch.zeros(1)
    torch.save(partial, user_dir / "partial.pt")
    with pytest.raises(CheckpointError) as err:
        load_model("my_models:build", user_dir / "partial.pt")
    msg = str(err.value)
    assert "2 missing key(s) ['net.block1.weight', 'net.block1.bias']" in msg
    assert "1 unexpected key(s) ['net.extra.weight']" in msg
    model = load_model("my_models:build")
    load_weights(model, user_dir / "partial.pt", strict=False)  # non-strict loads what fits
    torch.save({"optimizer": {"lr": 1e-3}}, user_dir / "opt.pt")
    with pytest.raises(CheckpointError, match=r"holds no state dict \(top level: \['optimizer'\]\)"):
        load_model("my_models:build", user_dir / "opt.pt")

    torch.save({"w": Custom()}, user_dir / "pickled.pt")
    with pytest.raises(CheckpointError, match="cannot be loaded safely with torch.load\\(weights_only=True\\)"):
        load_model("my_models:build", user_dir / "pickled.pt")


# --- adapting for the methods ------------------------------------------------------------------------------------


def test_adapt_model_spectrogram_waveform_and_outputs(user_dir):
    stft = STFT(**STFT_SMALL)
    spec = adapt_model(load_model("my_models:build"), stft)
    assert not isinstance(spec, (WaveformClassifier, PickLogits))
    wave = adapt_model(load_model("my_models:WaveNet"), stft)  # declares sample_rate: a waveform model
    assert isinstance(wave, WaveformClassifier)
    assert isinstance(adapt_model(load_model("my_models:WaveNet"), stft, input="waveform"), WaveformClassifier)
    picked = adapt_model(load_model("my_models:build_dict_output"), stft, output="scores")
    assert isinstance(picked, PickLogits)
    X, _ = stft.analyze(torch.randn(2, 4000))
    assert picked(X).shape == (2, 3)
    with pytest.raises(InputError, match="keys \\['embedding', 'scores'\\].*output="):
        adapt_model(load_model("my_models:build_dict_output"), stft, input="spectrogram")
    with pytest.raises(InputError, match=r"probe spectrogram input of shape \(2, 1, 129, 126\).*got shape \(2, 3, 126\)"):
        adapt_model(load_model("my_models:frames"), stft, input="spectrogram")
    with pytest.raises(InputError, match="as a spectrogram model.*as a waveform model"):
        adapt_model(load_model("my_models:frames"), stft)
    with pytest.raises(InputError, match="returns 3 class scores but the data has 10 classes"):
        adapt_model(load_model("my_models:build"), stft, n_classes=10)
    with pytest.raises(InputError, match="expects 8000 Hz audio but the STFT is set for 16000 Hz"):
        adapt_model(load_model("my_models:WaveNet"), STFT(sample_rate=16000))


def test_qualify_layers_prefixes_names_inside_a_wrapper(user_dir):
    stft = STFT(**STFT_SMALL)
    wave = adapt_model(load_model("my_models:WaveNet"), stft)
    layers = qualify_layers(wave, ["block1", Hook("relu", layout="NCT"), "model.fc", "nope"])
    assert layers[0] == "model.block1" and layers[1] == Hook("model.relu", layout="NCT") and layers[2] == "model.fc"
    assert layers[3] == "nope"
    assert len(resolve_hooks(wave, layers[:3])) == 3
    spec = adapt_model(load_model("my_models:build"), stft)
    assert qualify_layers(spec, ["net.block1"]) == ["net.block1"]
