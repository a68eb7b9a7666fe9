"""The test architectures: shapes, GuidedBackprop-friendly ReLUs, hooks, auto layers, baselines, training."""

import copy
import math

import pytest
import torch
from torch import nn

from captum_lmac import STFT, InputError
from captum_lmac._utils import eval_mode
from captum_lmac.attr import make_baseline
from captum_lmac.nn.auto_layers import auto_layers
from captum_lmac.nn.hooks import LayerRecorder, resolve_hooks
from captum_lmac.nn.adapters import WaveformClassifier
from captum_lmac.nn.zoo import (
    ARCHITECTURES,
    PatchTransformer,
    StreamingDetector,
    WaveformCNN,
    build_architecture,
    to_torchscript,
)
from captum_lmac.training import train_classifier
from captum_lmac.metrics import randomisation_stages
from toys import TINY_ARCHITECTURES

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


SR = 8000
TINY = TINY_ARCHITECTURES
EAGER = [k for k in TINY if k != "torchscript"]


def test_every_registered_architecture_has_a_tiny_setting():
    assert sorted(TINY) == sorted(ARCHITECTURES)


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    stft = STFT(sample_rate=SR, n_fft=256, hop_length=64, win_length=128)
    t = torch.arange(4000) / SR
    wav = torch.stack([torch.sin(2 * math.pi * f * t) * (0.5 + 0.5 * torch.rand(1)) + 0.05 * torch.randn(4000)
                       for f in (300, 700, 1500, 2500)])
    X, P = stft.analyze(wav)
    return stft, wav, X, P


@pytest.fixture(scope="module")
def models(data):
    stft = data[0]
    torch.manual_seed(0)
    return {name: build_architecture(name, 3, stft, **TINY[name]) for name in TINY}


def _run(model, info, X, P):
    if info["input"] == "waveform":
        with model.using_phase(P, length=4000):
            return model(X)
    return model(X)


@pytest.mark.parametrize("name", list(TINY))
def test_shapes_info_and_relus(models, data, name):
    _, _, X, P = data
    model, info = models[name]
    model.eval()
    assert _run(model, info, X, P).shape == (4, 3)
    assert info["name"] == name and info["parameters"] > 0
    if name == "torchscript":
        assert info["cam_layer"] is None and info["decoder_layers"] == [] and isinstance(model, torch.jit.ScriptModule)
        return
    assert isinstance(model.get_submodule(info["cam_layer"]), nn.Module)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(r.inplace for r in relus)
    calls = {id(r): 0 for r in relus}
    handles = [r.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1)) for r in relus]
    _run(model, info, X, P)
    for h in handles:
        h.remove()
    assert set(calls.values()) == {1}, "every ReLU is its own module, used once"


@pytest.mark.parametrize("name", EAGER)
def test_randomisation_stages_are_the_blocks(models, name):
    """The cascading-randomisation check walks every architecture block by block (a waveform
    model's wrapper is opened into its network's parts, not randomised as one stage)."""
    stages = randomisation_stages(models[name][0])
    assert len(stages) >= 4, [s[0] for s in stages]
    assert stages[-1][0] == "bn0"


def test_default_sizes_are_cpu_sized():
    stft = STFT()
    for name in EAGER:
        _, info = build_architecture(name, 10, stft)
        assert 5e4 < info["parameters"] < 1e6, (name, info["parameters"])


@pytest.mark.parametrize("name", EAGER)
def test_decoder_layers_record_batch_first_maps_and_auto_layers_agrees(models, data, name):
    _, _, X, P = data
    model, info = models[name]
    model.eval()
    rec = LayerRecorder(resolve_hooks(model, info["decoder_layers"]), model=model)
    with rec.capture() as feats:
        _run(model, info, X, P)
    assert all(f.shape[0] == 4 and f.dim() in (3, 4) and f.shape[-1] >= 2 for f in feats)
    example = (X[:2], P[:2]) if info["input"] == "waveform" else X[:2]
    chosen = auto_layers(model, example)
    expected = [h if isinstance(h, str) else h.layer for h in info["decoder_layers"]]
    assert chosen.names == expected, chosen.explanation


def test_streaming_chunks_are_folded_and_restored(models, data):
    _, _, X, P = data
    model, info = models["streaming"]
    chunks = model.model.n_chunks(4000)
    assert model.model.chunk == 256 and chunks == 16
    rec = LayerRecorder(resolve_hooks(model, ["model.enc2", "model.embed"]), model=model)
    with rec.capture() as feats:
        _run(model.eval(), info, X, P)
    enc, emb = feats
    assert enc.shape[0] == 4 and enc.shape[-1] % chunks == 0 and emb.shape == (4, 8, chunks)


BASELINES = {"saliency": {}, "ig": dict(n_steps=3), "gradcam": {}, "gradcam++": {}, "guided_backprop": {}}


@pytest.mark.parametrize("name", list(TINY))
def test_explained_by_the_baselines_and_batch_equals_items(models, data, name):
    _, _, X, P = data
    model, info = models[name]
    model.eval()
    layer = model.get_submodule(info["cam_layer"]) if info["cam_layer"] else None
    methods = [m for m in BASELINES if layer is not None or m not in ("gradcam", "gradcam++")]
    args = (P,) if info["input"] == "waveform" else None
    for method in methods:
        with pytest.warns(UserWarning, match="no nn.ReLU") if name == "torchscript" and "guided" in method \
                else _nothing():
            b = make_baseline(method, model, layer=layer, batch_size=4, **BASELINES[method])
        mask = b.attribute(X, additional_forward_args=args)
        assert mask.shape == X.shape and torch.isfinite(mask).all() and 0 <= mask.min() and mask.max() <= 1, method
        assert mask.sum() > 0 or method.startswith("gradcam"), method  # a ReLU-ed CAM of a random net may be empty
        if method in ("saliency", "gradcam"):
            items = torch.cat([b.attribute(X[i:i + 1], additional_forward_args=None if args is None else (P[i:i + 1],))
                               for i in range(4)])
            torch.testing.assert_close(mask, items, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", EAGER)  # a traced TorchScript graph keeps its float32 dtype: no float64 copy
def test_input_gradients_match_central_differences(data, name):
    """Reverse-mode input gradients (what Saliency, IG and the learned fits use), taken inside the
    package's eval_mode guard, equal central-difference directional derivatives (tests/test_utils.py
    has the PyTorch BatchNorm bug this catches on the waveform CNN without the guard)."""
    stft, _, X, P = data
    torch.manual_seed(0)
    model, info = build_architecture(name, 3, stft, **TINY[name])
    model = copy.deepcopy(model).double()  # a copy: .double() would cast the shared STFT in place
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    X, P = X.double(), P.double()
    v = torch.randn_like(X) * X  # a relative (mask-like) change of the magnitude
    f = lambda x: _run(model, info, x, P)[:, 0].sum()
    with eval_mode(model, freeze=True):
        Xr = X.clone().requires_grad_(True)
        f(Xr).backward()
        with torch.no_grad():
            central = (f(X + 1e-4 * v) - f(X - 1e-4 * v)) / 2e-4
    # the bug gives errors of order one; the waveform path's ISTFT runs in float32
    torch.testing.assert_close((Xr.grad * v).sum(), central, rtol=2e-2, atol=1e-6)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", list(TINY))
def test_trainable_with_train_classifier(data, name):
    stft, wav, X, _ = data
    torch.manual_seed(0)
    model, info = build_architecture(name, 3, stft, **TINY[name])
    y = torch.tensor([0, 1, 2, 0])
    net, inputs, augment = (model.model, wav, False) if info["input"] == "waveform" else (model, X, True)
    before = [p.detach().clone() for p in net.parameters()]
    hist = train_classifier(net, inputs, y, epochs=1, batch_size=4, progress=False, augment=augment)
    assert math.isfinite(hist["loss"][0])
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_torchscript_copy_matches_and_saves(data, tmp_path):
    stft, _, X, _ = data
    eager, _ = build_architecture("conv1d", 3, stft, width=8, n_mels=16)
    ts = to_torchscript(eager, X[:2], path=tmp_path / "m.pt")
    assert eager.training  # the flag is restored
    eager.eval()
    torch.testing.assert_close(ts(X), eager(X))
    X2, _ = stft.analyze(torch.randn(1, 6000))
    torch.testing.assert_close(ts(X2), eager(X2))  # traces to other lengths
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    torch.testing.assert_close(loaded(X), eager(X))


def test_errors(data):
    stft = data[0]
    with pytest.raises(InputError, match=r"unknown architecture 'cnn'.*'crnn'"):
        build_architecture("cnn", 3, stft)
    with pytest.raises(InputError, match="multiple of the patch height"):
        PatchTransformer(3, n_mels=10, patch=(4, 4))
    with pytest.raises(InputError, match="16000 Hz.*8000 Hz"):
        WaveformClassifier(WaveformCNN(3, sample_rate=16000), stft)
    with pytest.raises(InputError, match="takes waveforms"):
        build_architecture("torchscript", 3, stft, base="streaming", width=4)
    with pytest.raises(InputError, match="chunks of"):
        StreamingDetector(3, sample_rate=100, chunk_ms=32)
