"""WaveformClassifier (X ↦ model(ISTFT(X·e^{jP}))), the phase protocol, and picking logits."""

import math
from collections import OrderedDict

import pytest
import torch
from captum.attr import (
    GradientShap,
    IntegratedGradients,
    KernelShap,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from captum.metrics import infidelity
from torch import nn

from captum_lmac import STFT, InputError
from captum_lmac.nn.adapters import (
    FrontEndClassifier,
    PickLogits,
    WaveformClassifier,
    bound_forward_args,
    needs_phase,
    select_logits,
    using_phase,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


SR = 8000


class TinyWaveNet(nn.Module):
    """A waveform classifier stand-in: strided conv front end, one ReLU module per use, linear head."""

    sample_rate = SR

    def __init__(self, n_classes=3):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 6, 64, stride=16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(6, 8, 5, stride=2)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(8, n_classes)
        self.seen_lengths = []

    def forward(self, w):
        self.seen_lengths.append(w.shape[-1])
        h = self.relu2(self.conv2(self.relu1(self.conv1(w.unsqueeze(1)))))
        return self.fc(h.mean(-1))


def tones(freqs, n=2000, sr=SR):
    t = torch.arange(n) / sr
    return torch.stack([torch.sin(2 * math.pi * f * t) + 0.05 * torch.randn(n) for f in freqs])


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    stft = STFT(sample_rate=SR, n_fft=256, hop_length=64, win_length=128)
    net = TinyWaveNet().eval()
    wf = WaveformClassifier(net, stft, length=2000).eval()
    wav = tones([300, 2500])  # two clips with very different spectra
    X, P = stft.analyze(wav)
    return stft, net, wf, wav, X, P


# --- the signal path ---------------------------------------------------------------------------------------


def test_all_ones_spectrogram_gives_back_the_clip_and_the_model_output(setup):
    stft, net, wf, wav, X, P = setup
    torch.testing.assert_close(wf.waveform(X, P), wav, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(wf(X, P), net(wav), atol=1e-4, rtol=1e-4)
    assert wf.needs_phase and needs_phase(wf) and not needs_phase(net)
    assert wf.n_freqs == stft.n_freqs == 129 and wf.sample_rate == SR


def test_gradients_flow_through_the_istft(setup):
    """d logit / dX is finite, non-zero, and matches a finite difference along a random direction."""
    _, _, wf, _, X, P = setup
    w = torch.randn(2000, dtype=torch.float64)
    lin = WaveformClassifier(lambda wav: (wav.double() @ w).unsqueeze(1), wf.stft, length=2000)
    x = X[:1].clone().requires_grad_(True)
    lin(x, P[:1]).sum().backward()
    g = x.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    d = torch.randn_like(X[:1]).clamp(-3, 3) * X[:1]  # keeps X ± eps·d non-negative (the ISTFT clamps at 0)
    eps = 1e-2
    fd = (lin(X[:1] + eps * d, P[:1]) - lin(X[:1] - eps * d, P[:1])).item() / (2 * eps)
    assert (g * d).sum().item() == pytest.approx(fd, rel=1e-3)


def test_istft_length_comes_from_the_call_the_binding_or_the_constructor(setup):
    stft, net, _, wav, X, P = setup
    wf = WaveformClassifier(net, stft)
    net.seen_lengths.clear()
    wf(X, P)
    assert net.seen_lengths[-1] == (X.shape[-1] - 1) * stft.hop_length  # ISTFT default
    wf(X, P, 1990)
    assert net.seen_lengths[-1] == 1990
    with wf.using_phase(P, length=1995):
        wf(X)
        wf(X, P)  # an explicit phase keeps the bound length
        assert net.seen_lengths[-2:] == [1995, 1995]
    assert WaveformClassifier(net, stft, length=2000).bound_length == 2000


# --- the bound phase ------------------------------------------------------------------------------------------


def test_bound_phase_equals_explicit_phase_and_nests(setup):
    _, _, wf, _, X, P = setup
    ref = wf(X, P)
    assert wf.bound_phase is None
    with wf.using_phase(P) as m:
        assert m is wf and wf.bound_phase is not None
        torch.testing.assert_close(wf(X), ref)
        with wf.using_phase(P[1:]):  # one clip: broadcast to any batch
            torch.testing.assert_close(wf(X[1:].expand(3, -1, -1, -1)), ref[1:].expand(3, -1))
        torch.testing.assert_close(wf.bound_phase, P)  # previous binding restored
    assert wf.bound_phase is None
    with pytest.raises(RuntimeError):
        with wf.using_phase(P):
            raise RuntimeError("boom")
    assert wf.bound_phase is None  # restored after an exception too


def test_generic_helpers(setup):
    _, net, wf, _, X, P = setup
    with using_phase(net, None):  # no-op for models without a phase
        pass
    with using_phase(wf, P):
        assert bound_forward_args(wf)[0] is wf.bound_phase
    assert bound_forward_args(wf) is None and bound_forward_args(net) is None
    with pytest.raises(InputError, match="needs the clips' phase"):
        using_phase(wf, None)


def test_missing_and_mismatched_phase_errors(setup):
    _, _, wf, _, X, P = setup
    with pytest.raises(InputError, match="needs the phase.*additional_forward_args=\\(phase,\\).*using_phase"):
        wf(X)
    with wf.using_phase(P):
        with pytest.raises(InputError) as err:
            wf(torch.cat([X, X]))
    msg = str(err.value)
    assert "(4, 1, 129, 32)" in msg and "(2, 1, 129, 32)" in msg and "additional_forward_args" in msg
    with pytest.raises(InputError, match="batch sizes differ"):
        wf(X, P[:1])
    with pytest.raises(InputError, match="frames"):
        wf(X, P[..., :-1])
    with pytest.raises(InputError, match=r"expected \(N, 1, 129, T\)"):
        with wf.using_phase(P[:, :, :100]):
            pass
    with pytest.raises(InputError, match=r"expects X of shape \(N, 1, 129, T\)"):
        wf(X[:, :, :100], P[:, :, :100])


def test_clip_context_analyses_and_binds(setup):
    stft, _, wf, wav, X, P = setup
    with wf.clip(wav, sample_rate=SR) as (X2, P2):
        torch.testing.assert_close(X2, X)
        assert wf.bound_length == 2000
        torch.testing.assert_close(wf(X2), wf(X, P))
    with pytest.raises(InputError, match="16000 Hz.*8000 Hz"):
        with wf.clip(wav, sample_rate=16000):
            pass


def test_wrong_sample_rate_names_both_rates(setup):
    stft, net, _, _, _, _ = setup
    with pytest.raises(InputError) as err:
        WaveformClassifier(net, STFT(sample_rate=16000, n_fft=256, hop_length=64, win_length=128))
    assert "8000 Hz" in str(err.value) and "16000 Hz" in str(err.value)
    with pytest.raises(InputError, match="32000 Hz.*8000 Hz"):
        WaveformClassifier(lambda w: w[:, :3], stft, sample_rate=32000)
    with pytest.raises(InputError, match="captum_lmac.STFT"):
        WaveformClassifier(net, None)


# --- Captum, with the phase as additional_forward_args -------------------------------------------------------------


class AlignmentSpy(WaveformClassifier):
    """Records, for every row Captum feeds in, which clip's phase came with it."""

    def __init__(self, *a, reference=None, **kw):
        super().__init__(*a, **kw)
        self.reference = reference  # (X, P) of the explained batch
        self.rows = 0

    def forward(self, X, phase=None, length=None):
        ref_X, ref_P = self.reference
        if phase is not None:
            for x, p in zip(X.detach(), phase):
                clip = [i for i in range(len(ref_P)) if torch.equal(p, ref_P[i])]
                assert len(clip) == 1
                if x.abs().sum() > 0:  # a fully removed input (KernelShap) carries no clip identity
                    sims = [torch.cosine_similarity(x.flatten(), r.flatten(), 0) for r in ref_X]
                    assert int(torch.stack(sims).argmax()) == clip[0], "Captum paired a row with another clip's phase"
                self.rows += 1
        return super().forward(X, phase, length)


@pytest.fixture()
def spy(setup):
    stft, net, _, _, X, P = setup
    return AlignmentSpy(net, stft, length=2000, reference=(X, P)).eval()


def _run(name, spy, X, P):
    t = torch.tensor([0, 2])
    args = (P,)
    if name == "saliency":
        return Saliency(spy).attribute(X, target=t, additional_forward_args=args)
    if name == "ig":
        return IntegratedGradients(spy).attribute(X, target=t, additional_forward_args=args, n_steps=4,
                                                  internal_batch_size=3)
    if name == "smoothgrad":
        return NoiseTunnel(Saliency(spy)).attribute(X, target=t, additional_forward_args=args, nt_type="smoothgrad",
                                                    nt_samples=3, stdevs=0.01)
    if name == "gradient_shap":
        return GradientShap(spy).attribute(X, baselines=torch.zeros(2, *X.shape[1:]), target=t,
                                           additional_forward_args=args, n_samples=3)
    if name == "kernel_shap":
        fm = (torch.arange(X.shape[-1]) * 4 // X.shape[-1]).view(1, 1, 1, -1).expand(1, 1, X.shape[2], -1)
        return torch.cat([
            KernelShap(spy).attribute(X[i:i + 1], target=int(t[i]), additional_forward_args=(P[i:i + 1],),
                                      feature_mask=fm, n_samples=6, perturbations_per_eval=3)
            for i in range(2)
        ])
    if name == "gradcam":
        return LayerGradCam(spy, spy.model.conv2).attribute(X, target=t, additional_forward_args=args)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["saliency", "ig", "smoothgrad", "gradient_shap", "kernel_shap", "gradcam"])
def test_captum_methods_expand_the_phase_with_the_inputs(setup, spy, name):
    _, _, _, _, X, P = setup
    with pytest.raises(AssertionError, match="another clip's phase"):  # the spy does catch a mis-pairing
        spy(X, P.flip(0))
    spy.rows = 0
    a = _run(name, spy, X, P)
    assert spy.rows > 0 and torch.isfinite(a).all()
    assert a.shape[0] == 2
    if name != "gradcam":
        assert a.shape == X.shape and a.abs().sum() > 0


def test_captum_infidelity_expands_the_phase(setup, spy):
    _, _, _, _, X, P = setup

    def perturb(inputs):
        noise = 0.01 * torch.randn_like(inputs) * inputs
        return noise, inputs - noise

    attr = Saliency(spy).attribute(X, target=0, additional_forward_args=(P,))
    inf = infidelity(spy, perturb, X, attr, additional_forward_args=(P,), target=0, n_perturb_samples=4)
    assert inf.shape == (2,) and torch.isfinite(inf).all() and spy.rows >= 8


def test_explaining_a_batch_equals_explaining_its_items(setup):
    _, _, wf, _, X, P = setup
    for method, kw in ((Saliency(wf), {}), (IntegratedGradients(wf), {"n_steps": 4})):
        batch = method.attribute(X, target=1, additional_forward_args=(P,), **kw)
        items = torch.cat([method.attribute(X[i:i + 1], target=1, additional_forward_args=(P[i:i + 1],), **kw)
                           for i in range(2)])
        torch.testing.assert_close(batch, items, atol=1e-6, rtol=1e-4)
    with wf.using_phase(P):
        bound = Saliency(wf).attribute(X, target=1)
    torch.testing.assert_close(bound, Saliency(wf).attribute(X, target=1, additional_forward_args=(P,)))


def test_a_bound_batch_phase_refuses_a_method_that_expands_the_batch(setup):
    _, _, wf, _, X, P = setup
    with wf.using_phase(P), pytest.raises(InputError, match="additional_forward_args"):
        IntegratedGradients(wf).attribute(X, target=0, n_steps=3)


# --- picking logits --------------------------------------------------------------------------------------------


class FakeModelOutput(OrderedDict):
    """Mapping + attribute access, like transformers.utils.ModelOutput."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def test_select_logits_from_tuples_dicts_model_outputs_and_callables():
    z = torch.randn(2, 4)
    assert select_logits(z) is z
    assert select_logits((z, torch.randn(2, 8))) is z
    assert select_logits({"logits": z, "hidden": torch.randn(2, 3, 5)}) is z
    assert select_logits(FakeModelOutput(loss=None, logits=z)) is z
    assert select_logits((torch.randn(2, 8), z), output=1) is z
    assert select_logits({"a": z}, output="a") is z
    assert select_logits({"a": {"b": z}}, output=lambda o: o["a"]["b"]) is z
    p = torch.tensor([[0.9, 0.1]])
    torch.testing.assert_close(select_logits({"clipwise_output": p}, "clipwise_output", from_probabilities=True),
                               torch.logit(p))


def test_select_logits_errors_name_the_shape_or_the_keys():
    with pytest.raises(InputError, match=r"\(N, classes\), got shape \(2,\)"):
        select_logits(torch.zeros(2))
    with pytest.raises(InputError, match=r"got shape \(2, 3, 7\).*pooling"):
        select_logits(torch.zeros(2, 3, 7))
    with pytest.raises(InputError, match=r"for a batch of 3"):
        select_logits(torch.zeros(2, 3), batch_size=3)
    with pytest.raises(InputError, match=r"keys \['clipwise_output', 'embedding'\].*output="):
        select_logits({"clipwise_output": torch.zeros(2, 3), "embedding": torch.zeros(2, 8)})
    with pytest.raises(InputError, match="no 'logit'"):
        select_logits({"logits": torch.zeros(2, 3)}, output="logit")
    with pytest.raises(InputError, match="out of range"):
        select_logits((torch.zeros(2, 3),), output=2)
    with pytest.raises(InputError, match="picker"):
        select_logits({"a": 1}, output=lambda o: o["b"])


class PannsLike(nn.Module):
    """PANNs-shaped stand-in: waveform → its own log-mel front end → dict of sigmoid probabilities."""

    def __init__(self, n_classes=3):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=256, hop_length=80, n_mels=16)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, n_classes)

    def forward(self, w):
        h = self.relu(self.conv(torch.log(self.mel(w).unsqueeze(1) + 1e-6)))
        emb = h.mean((2, 3))
        return {"clipwise_output": torch.sigmoid(self.fc(emb)), "embedding": emb}


def test_panns_like_dict_of_probabilities_and_pick_logits(setup):
    stft, _, _, wav, X, P = setup
    panns = PannsLike().eval()
    wf = WaveformClassifier(panns, stft, sample_rate=SR, output="clipwise_output", from_probabilities=True)
    logits = wf(X, P)
    torch.testing.assert_close(torch.sigmoid(logits), panns(wf.waveform(X, P))["clipwise_output"], atol=1e-5, rtol=1e-4)
    sal = Saliency(wf).attribute(X, target=0, additional_forward_args=(P,))
    assert sal.shape == X.shape and sal.abs().sum() > 0
    with pytest.raises(InputError, match="none is called 'logits'"):
        WaveformClassifier(panns, stft)(X, P)
    picked = PickLogits(panns, output="clipwise_output", from_probabilities=True)
    assert picked(wav).shape == (2, 3)


def test_front_end_classifier_passes_features_by_keyword(setup):
    stft, _, _, wav, X, P = setup

    class KwModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 3)

        def forward(self, input_values=None):
            return FakeModelOutput(logits=self.fc(input_values.mean(-1)))

    import torchaudio

    front = torchaudio.transforms.MelSpectrogram(SR, n_fft=256, hop_length=80, n_mels=16)
    net = FrontEndClassifier(nn.Sequential(front), KwModel(), sample_rate=SR, input_name="input_values")
    wf = WaveformClassifier(net, stft)  # reads net.sample_rate
    assert wf(X, P).shape == (2, 3)
    with pytest.raises(InputError, match="8000 Hz"):
        WaveformClassifier(FrontEndClassifier(front, KwModel(), sample_rate=16000), stft)
