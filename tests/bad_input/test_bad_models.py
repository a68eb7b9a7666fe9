"""Bad input to the model adapters (any classifier): --model specs, weights, outputs, layers, sample rates."""

import textwrap

import pytest
import torch
from torch import nn

from captum_lmac import LMAC, STFT, CheckpointError, InputError
from captum_lmac.nn.adapters import WaveformClassifier, select_logits
from captum_lmac.nn.hooks import resolve_hooks
from captum_lmac.nn.loading import adapt_model, load_model, load_weights

MODELS = '''
import torch
from torch import nn


class Spec(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.block1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.block1(torch.log1p(x.clamp_min(0)))).mean((2, 3)))


def spec(n_classes=3):
    torch.manual_seed(0)
    return Spec(n_classes)


def nan_spec():
    m = spec()
    with torch.no_grad():
        m.fc.bias[0] = float("nan")
    return m


def broken():
    raise RuntimeError("the factory failed on purpose")


def not_a_model():
    return 42


class Shape(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(1, 1)

    def forward(self, x):
        n = x.shape[0]
        return {"vector": torch.zeros(n * 3), "frames": torch.zeros(n, 3, 7), "batch": torch.zeros(n + 1, 3),
                "tuple": ("no", "logits"), "dict": {"embedding": torch.zeros(n, 3)}, "scalar": torch.zeros(()),
                "inf": torch.full((n, 3), float("inf"))}[self.kind]


def shape(kind="vector"):
    return Shape(kind)


class Wave(nn.Module):
    sample_rate = 16000

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 32, stride=8)
        self.fc = nn.Linear(4, 3)

    def forward(self, w):
        return self.fc(self.conv(w.unsqueeze(1)).mean(-1))


def wave():
    return Wave()


raise_on_import = False
'''


@pytest.fixture()
def user(tmp_path, monkeypatch):
    (tmp_path / "bi_models.py").write_text(textwrap.dedent(MODELS))
    (tmp_path / "bi_crashes.py").write_text("raise ImportError('needs a GPU library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("spec, error, match", [
    ("no_such_pkg_xyz.models:build", InputError, "cannot import module 'no_such_pkg_xyz.models'"),
    ("bi_crashes:build", InputError, "needs a GPU library"),
    ("bi_models:spce", InputError, r"has no attribute 'spce'; did you mean \['spec'"),
    ("bi_models:broken", InputError, "the factory raised RuntimeError: the factory failed on purpose"),
    ("bi_models:not_a_model", InputError, "returned a int, not a torch.nn.Module"),
    ("bi_models:raise_on_import", InputError, "names a bool, not a callable"),
    ("bi_models:nan_spec", InputError, r"NaN or infinite weights in \['fc.bias'\]"),
    ("bi_models:", InputError, "names no factory"),
    ("", InputError, "--model is empty"),
    ("{dir}/missing.py:spec", InputError, "does not exist"),
    ("{dir}:spec", InputError, "is a directory, not a Python file"),
    ("{dir}/bi_models.py", InputError, "needs the factory to call"),
    ("{dir}/junk.ts", CheckpointError, "is not a TorchScript file"),
    ("{dir}/weights.pt", CheckpointError, "holds weights .*not a TorchScript model"),
])
def test_model_specs(user, spec, error, match):
    (user / "junk.ts").write_bytes(b"not torchscript")
    torch.save({"fc.weight": torch.zeros(3, 4)}, user / "weights.pt")
    with pytest.raises(error, match=match):
        load_model(spec.format(dir=user))


class Custom:
    """An arbitrary object: torch.load(weights_only=True) refuses it."""


@pytest.mark.parametrize("make, match", [
    (lambda m, p: None, "weights file not found"),
    (lambda m, p: p.mkdir(), "is a directory, not a weights file"),
    (lambda m, p: p.write_bytes(b"junk"), r"cannot be loaded safely with torch.load\(weights_only=True\)"),
    (lambda m, p: torch.save({"obj": Custom()}, p), "cannot be loaded safely"),
    (lambda m, p: torch.save([1, 2, 3], p), "holds no state dict"),
    (lambda m, p: torch.save({k: v for k, v in m.state_dict().items() if k != "fc.bias"}, p), r"1 missing key\(s\) \['fc.bias'\]"),
    (lambda m, p: torch.save({**m.state_dict(), "extra.w": torch.zeros(1)}, p), r"1 unexpected key\(s\) \['extra.w'\]"),
    (lambda m, p: torch.save({**m.state_dict(), "fc.weight": torch.zeros(5, 4)}, p), r"fc.weight: file \(5, 4\) vs model \(3, 4\)"),
    (lambda m, p: torch.save({**m.state_dict(), "fc.weight": torch.full((3, 4), float("nan"))}, p),
     r"hold NaN or infinite values in \['fc.weight'\]"),
])
def test_weights_that_do_not_fit(user, make, match):
    model = load_model("bi_models:spec")
    path = user / "w.pt"
    make(model, path)
    with pytest.raises(CheckpointError, match=match):
        load_model("bi_models:spec", path)


@pytest.mark.parametrize("kind, match", [
    ("vector", r"got shape \(6,\); a classifier must return one score per class"),
    ("frames", r"got shape \(2, 3, 7\); frame-wise scores"),
    ("batch", "for a batch of 2 inputs"),
    ("tuple", "cannot find logits"),
    ("dict", "none is called 'logits'"),
    ("scalar", r"got shape \(\)"),
    ("inf", "NaN or infinite scores on a probe input"),
])
def test_outputs_that_are_not_n_by_classes(user, kind, match):
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    with pytest.raises(InputError, match=match):
        adapt_model(load_model("bi_models:shape", kind=kind), stft, input="spectrogram")


def test_adapt_model_arguments(user):
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    model = load_model("bi_models:spec")
    with pytest.raises(InputError, match="input must be 'auto', 'spectrogram' or 'waveform'"):
        adapt_model(model, stft, input="image")
    with pytest.raises(InputError, match="stft must be a captum_lmac.STFT"):
        adapt_model(model, {"n_fft": 256})
    with pytest.raises(InputError, match="returns 3 class scores but the data has 10 classes"):
        adapt_model(model, stft, n_classes=10)
    with pytest.raises(InputError, match="probe_seconds must be > 0"):
        adapt_model(model, stft, probe_seconds=0)


def test_waveform_model_at_the_wrong_sample_rate(user):
    stft8k = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    with pytest.raises(InputError, match="expects 16000 Hz audio but the STFT is set for 8000 Hz"):
        adapt_model(load_model("bi_models:wave"), stft8k)
    with pytest.raises(InputError, match="expects 16000 Hz"):
        WaveformClassifier(load_model("bi_models:wave"), stft8k)


def test_waveform_phase_errors(user):
    stft = STFT(sample_rate=16000, n_fft=256, hop_length=64, win_length=128)
    wf = WaveformClassifier(load_model("bi_models:wave"), stft)
    X, P = stft.analyze(torch.randn(2, 4000) * 0.1)
    with pytest.raises(InputError, match="needs the phase of the clip being explained"):
        wf(X)
    with pytest.raises(InputError, match="expected \\(N, 1, 129, T\\)"):
        wf(X, P[:, :, :10])
    with pytest.raises(InputError, match="batch sizes differ"):
        wf(X, P[:1].repeat(3, 1, 1, 1))
    with pytest.raises(InputError, match="frames but the phase has"):
        wf(X, P[..., :5])
    with pytest.raises(InputError, match="NaN"):
        with wf.using_phase(P * float("nan")):
            pass


def test_unknown_layer_names_list_the_existing_ones(user):
    model = load_model("bi_models:spec")
    with pytest.raises(InputError, match=r"no layer named 'block2'; closest names: \['block1'\].*all layers: "
                                         r"\['block1', 'fc'\]"):
        resolve_hooks(model, ["block2"])
    with pytest.raises(InputError, match="no layer named 'conv'"):
        LMAC(model, layers=["conv"])
    with pytest.raises(InputError, match="is not a submodule"):
        LMAC(model, layers=[nn.Conv2d(1, 1, 1)])
    with pytest.raises(InputError, match="must be nn.Module, str or Hook"):
        LMAC(model, layers=[3])


def test_select_logits_bad_pickers():
    out = {"logits": torch.zeros(2, 3)}
    with pytest.raises(InputError, match="has no 'scores'"):
        select_logits(out, output="scores")
    with pytest.raises(InputError, match="out of range"):
        select_logits((torch.zeros(2, 3),), output=4)
    with pytest.raises(InputError, match="not a bool"):
        select_logits(out, output=True)


def test_load_weights_into_a_model(user):
    model = load_model("bi_models:spec")
    torch.save(model.state_dict(), user / "ok.pt")
    assert load_weights(model, user / "ok.pt") is model
