"""LayerGradCamPlusPlus: closed-form GradCAM++ as a Captum layer attribution."""

import math

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel
from torch import nn

from captum_lmac.attr import LayerGradCamPlusPlus
from captum_lmac.audio import STFT
from captum_lmac.errors import InputError
from captum_lmac.training import build_classifier


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    stft = STFT(n_fft=256, hop_length=64, win_length=128)
    model = build_classifier(n_classes=3, stft=stft, n_mels=16, channels=(4, 8)).eval()
    X, _ = stft.analyze(torch.randn(3, 2000))
    return model, X


class Quadratic(nn.Module):
    """A = layer(x) = x; score_c = sum_{k,i,j} V[c,k,i,j] * A[k,i,j]^2 + A.sum().

    dS/dA = 2 V A + 1 varies with position, so the GradCAM++ alphas are not trivial."""

    def __init__(self, V):
        super().__init__()
        self.layer = nn.Identity()
        self.V = V

    def forward(self, x):
        a = self.layer(x)
        return torch.einsum("ckij,nkij->nc", self.V, a * a) + a.sum(dim=(1, 2, 3)).unsqueeze(1)


def _hand_gradcam_pp(A, V, c):
    """Independent loop implementation of the paper's closed form for one sample."""
    K, H, W = A.shape
    cam = [[0.0] * W for _ in range(H)]
    for k in range(K):
        total = sum(float(A[k, a, b]) for a in range(H) for b in range(W))
        w_k = 0.0
        for i in range(H):
            for j in range(W):
                g = 2 * float(V[c, k, i, j]) * float(A[k, i, j]) + 1.0
                den = 2 * g**2 + total * g**3
                alpha = g**2 / den if den != 0 else 0.0
                w_k += alpha * max(g, 0.0)
        for i in range(H):
            for j in range(W):
                cam[i][j] += w_k * float(A[k, i, j])
    return torch.tensor([[max(v, 0.0) for v in row] for row in cam])


def test_matches_hand_computation_on_tiny_layer():
    torch.manual_seed(1)
    V = torch.randn(2, 3, 2, 3)
    A = torch.randn(2, 3, 2, 3)  # mixed signs: some channels get negative gradients
    model = Quadratic(V)
    out = LayerGradCamPlusPlus(model, model.layer).attribute(A, target=[0, 1])
    assert out.shape == (2, 1, 2, 3)
    for n, c in enumerate([0, 1]):
        torch.testing.assert_close(out[n, 0], _hand_gradcam_pp(A[n], V, c), rtol=1e-5, atol=1e-6)


def test_exp_score_scaling_is_a_positive_per_sample_factor():
    torch.manual_seed(2)
    V = torch.randn(2, 2, 3, 3) * 0.1
    A = torch.rand(2, 2, 3, 3)
    model = Quadratic(V)
    g = LayerGradCamPlusPlus(model, model.layer)
    plain = g.attribute(A, target=1)
    scaled = g.attribute(A, target=1, scale_by_exp_score=True)
    s = model(A)[:, 1].detach()
    torch.testing.assert_close(scaled, plain * torch.exp(s).view(-1, 1, 1, 1))


def test_differs_from_gradcam_and_is_non_negative(tiny):
    model, X = tiny
    layer = model.net.block2
    pp = LayerGradCamPlusPlus(model, layer).attribute(X, target=1)
    gc = LayerGradCam(model, layer).attribute(X, target=1, relu_attributions=True)
    assert pp.shape == gc.shape
    assert pp.dim() == 4 and pp.shape[:2] == (3, 1)
    assert (pp >= 0).all()

    def unit(m):
        m = m.flatten(1)
        return m / m.norm(dim=1, keepdim=True).clamp_min(1e-12)

    # Not the same map up to a per-sample scale.
    assert (unit(pp) - unit(gc)).abs().max() > 1e-3


def test_relu_flag_on_a_layer_with_negative_activations(tiny):
    model, X = tiny
    layer = model.net.block2.bn2  # BatchNorm output: signed activations
    g = LayerGradCamPlusPlus(model, layer)
    signed = g.attribute(X, target=0, relu_attributions=False)
    relu = g.attribute(X, target=0)
    assert (relu >= 0).all()
    assert (signed < 0).any()
    torch.testing.assert_close(relu, signed.clamp_min(0))


def test_target_forms_agree(tiny):
    model, X = tiny
    g = LayerGradCamPlusPlus(model, model.net.block2)
    per_sample = [g.attribute(X[i : i + 1], target=t) for i, t in enumerate([0, 2, 1])]
    expected = torch.cat(per_sample)
    torch.testing.assert_close(g.attribute(X, target=[0, 2, 1]), expected)
    torch.testing.assert_close(g.attribute(X, target=torch.tensor([0, 2, 1])), expected)
    same = g.attribute(X, target=2)
    torch.testing.assert_close(g.attribute(X, target=torch.tensor(2)), same)
    torch.testing.assert_close(g.attribute(X, target=[2, 2, 2]), same)
    # None: the arg-max class of every example
    top = model(X).argmax(1)
    torch.testing.assert_close(g.attribute(X), g.attribute(X, target=top))
    with pytest.raises(InputError):
        g.attribute(X, target=[0, 1])
    with pytest.raises(InputError):
        g.attribute(X, target=7)


def test_frozen_model_no_grad_context_and_noise_tunnel(tiny):
    model, X = tiny
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        g = LayerGradCamPlusPlus(model, model.net.block2)
        ref = g.attribute(X, target=1)
        with torch.no_grad():
            torch.testing.assert_close(g.attribute(X, target=1), ref)
        # NoiseTunnel calls attribute.__wrapped__ under no_grad
        nt = NoiseTunnel(g).attribute(X, nt_samples=2, stdevs=0.0, target=1)
        torch.testing.assert_close(nt, ref, rtol=1e-4, atol=1e-6)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


def test_layer_input_and_upsampling(tiny):
    model, X = tiny
    g = LayerGradCamPlusPlus(model, model.net.block2)
    a_in = g.attribute(X, target=0, attribute_to_layer_input=True)
    a_out = g.attribute(X, target=0)
    assert a_in.shape[-2] == 2 * a_out.shape[-2] and a_in.shape[-1] == 2 * a_out.shape[-1]
    up = LayerAttribution.interpolate(a_out, (16, 32), "bilinear")
    assert up.shape == (3, 1, 16, 32) and torch.isfinite(up).all()
    assert not math.isnan(float(a_in.sum()))


def test_layer_called_twice_is_rejected():
    lin = nn.Linear(4, 4)

    def f(x):
        return lin(lin(x))

    with pytest.raises(InputError, match="2 times"):
        LayerGradCamPlusPlus(f, lin).attribute(torch.randn(2, 4), target=0)
