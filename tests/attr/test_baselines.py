"""Captum baselines as masks: one mask rule, registry, user-registered methods."""

import pytest
import torch
from captum.attr import InputXGradient, LayerAttribution, Saliency
from torch import nn

from captum_lmac.attr import (
    BASELINES,
    MASK_RULES,
    CaptumBaseline,
    make_baseline,
    patch_feature_mask,
    register_baseline,
    to_mask,
)
from captum_lmac.audio import STFT
from captum_lmac.errors import InputError
from captum_lmac.training import build_classifier

# Small settings so the whole file stays fast on 2 shared cores.
FAST = {
    "smoothgrad": dict(nt_samples=3),
    "ig": dict(n_steps=4),
    "gradient_shap": dict(n_samples=4),
    "kernel_shap": dict(n_samples=12, grid=(4, 4), perturbations_per_eval=12),
}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    stft = STFT(n_fft=256, hop_length=64, win_length=128)
    model = build_classifier(n_classes=3, stft=stft, n_mels=16, channels=(4, 8)).eval()
    X, _ = stft.analyze(torch.randn(2, 2000))
    return model, X


# --- the mask rule -------------------------------------------------------------------------------


def test_to_mask_gradient_rule_is_abs_over_per_sample_max():
    a = torch.tensor([[[[-4.0, 2.0], [1.0, 0.0]]], [[[0.5, -0.25], [0.0, 0.0]]]])
    m = to_mask(a, a.shape, "gradient")
    torch.testing.assert_close(m[0, 0], torch.tensor([[1.0, 0.5], [0.25, 0.0]]))
    torch.testing.assert_close(m[1, 0], torch.tensor([[1.0, 0.5], [0.0, 0.0]]))


def test_to_mask_cam_rule_relu_bilinear_upsampling():
    cam = torch.tensor([[[[2.0, -1.0], [0.0, 1.0]]]])
    m = to_mask(cam, (1, 1, 6, 8), "cam")
    expected = LayerAttribution.interpolate(cam.clamp_min(0), (6, 8), "bilinear")
    expected = expected / expected.max()
    assert m.shape == (1, 1, 6, 8)
    torch.testing.assert_close(m, expected)
    # a 3-D map (N, h, w) is accepted as one channel; several channels are summed first
    torch.testing.assert_close(to_mask(cam[:, 0], (1, 1, 6, 8), "cam"), m)
    torch.testing.assert_close(to_mask(torch.cat([cam, cam], 1), (1, 1, 6, 8), "cam"), m)


def test_to_mask_all_zero_sample_stays_zero_and_bad_input_raises():
    a = torch.zeros(2, 1, 4, 5)
    a[1, 0, 2, 3] = -3.0
    for kind in ("gradient", "cam", "positive"):
        m = to_mask(a, a.shape, kind)
        assert torch.isfinite(m).all()
        assert (m[0] == 0).all()
    assert to_mask(a, a.shape, "positive")[1].max() == 0  # ReLU of a negative map
    with pytest.raises(InputError):
        to_mask(torch.full((1, 1, 2, 2), float("nan")), (1, 1, 2, 2))
    with pytest.raises(InputError):
        to_mask(torch.ones(1, 1, 3, 3), (1, 1, 2, 2), "gradient")
    with pytest.raises(InputError):
        to_mask(torch.ones(1, 1, 2, 2), (1, 1, 2, 2), "wobbly")


def test_patch_feature_mask_ids():
    fm = patch_feature_mask((1, 1, 10, 16), (2, 4))
    assert fm.shape == (1, 1, 10, 16)
    assert sorted(fm.unique().tolist()) == list(range(8))
    assert (fm[0, 0, :5, :4] == 0).all() and (fm[0, 0, 5:, 12:] == 7).all()
    # the grid is clipped to (F, T): every id is used
    assert patch_feature_mask((1, 1, 3, 6), (8, 8)).unique().tolist() == list(range(18))


# --- every built-in baseline ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_builtin_baseline_returns_mask(tiny, name):
    model, X = tiny
    method = make_baseline(name, model, layer=model.net.block2, **FAST.get(name, {}))
    m = method.attribute(X, target=[0, 2])
    assert m.shape == X.shape
    assert m.dtype == torch.float32
    assert torch.isfinite(m).all() and m.min() >= 0 and m.max() <= 1
    peaks = m.flatten(1).amax(1)
    # each sample is normalised to max 1, or is all zero (e.g. GradCAM for a class with only
    # negative evidence, after its ReLU)
    assert all(abs(float(p) - 1) < 1e-6 or float(p) == 0 for p in peaks) and float(peaks.max()) == 1.0
    assert method.name == name and method.mask_rule in MASK_RULES.values()
    assert not X.requires_grad


def test_default_target_is_argmax_and_cam_layer_default(tiny):
    model, X = tiny
    sal = make_baseline("saliency", model)
    torch.testing.assert_close(sal.attribute(X), sal.attribute(X, target=model(X).argmax(1)))
    gc = make_baseline("gradcam", model)  # default layer: last block of model.net.blocks
    assert gc.layer is model.net.block2
    assert gc.mask_rule == MASK_RULES["cam"]


def test_eval_mode_is_used_and_restored(tiny):
    model, X = tiny
    method = make_baseline("saliency", model)
    ref = method.attribute(X, target=1)
    model.train()
    try:
        out = method.attribute(X, target=1)
        assert model.training and model.net.block1.bn1.training  # flags restored
    finally:
        model.eval()
    torch.testing.assert_close(out, ref)  # dropout/batch-stat BN were not active


def test_random_methods_are_seeded_without_touching_global_rng(tiny):
    model, X = tiny
    sg = make_baseline("smoothgrad", model, nt_samples=3, seed=5)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a1 = sg.attribute(X, target=0)
    after = torch.rand(1)
    assert torch.equal(before, after)
    torch.testing.assert_close(sg.attribute(X, target=0), a1)


# --- registry --------------------------------------------------------------------------------------


def test_captum_class_by_name(tiny):
    model, X = tiny
    ixg = make_baseline("InputXGradient", model)
    assert ixg.name == "InputXGradient" and ixg.mask_rule == MASK_RULES["gradient"]
    expected = to_mask(InputXGradient(model).attribute(X.clone().requires_grad_(), target=1), X.shape)
    torch.testing.assert_close(ixg.attribute(X, target=1), expected)
    layer_method = make_baseline("LayerGradientXActivation", model, layer=model.net.block2)
    assert layer_method.mask_rule == MASK_RULES["cam"]
    assert layer_method.attribute(X).shape == X.shape
    occ = make_baseline("Occlusion", model, sliding_window_shapes=(1, 43, 11), strides=(1, 43, 11))
    m = occ.attribute(X, target=0)
    assert m.shape == X.shape and m.max() <= 1
    with pytest.raises(InputError, match="unknown baseline"):
        make_baseline("NoSuchMethod", model)


def test_register_user_method(tiny):
    model, X = tiny
    name = "test_ixg_user"
    register_baseline(name, InputXGradient)
    try:
        m = make_baseline(name, model).attribute(X, target=2)
        assert m.shape == X.shape and 0 <= float(m.min()) and float(m.max()) == 1.0
        assert make_baseline(name, model).name == name
        with pytest.raises(InputError, match="already registered"):
            register_baseline(name, InputXGradient)

        # a factory returning a Captum instance is wrapped with the mask rule
        register_baseline(name, lambda model, layer=None, **kw: Saliency(model), overwrite=True)
        sal = make_baseline(name, model)
        assert isinstance(sal, CaptumBaseline)
        torch.testing.assert_close(sal.attribute(X, target=2), make_baseline("saliency", model).attribute(X, target=2))
    finally:
        BASELINES.pop(name, None)


def test_guided_backprop_rejects_inplace_relu():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with pytest.raises(InputError, match="in-place"):
        make_baseline("guided_backprop", net)
    no_relu = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.warns(UserWarning, match="no nn.ReLU"):
        make_baseline("guided_backprop", no_relu)


def test_bad_inputs(tiny):
    model, X = tiny
    sal = make_baseline("saliency", model)
    with pytest.raises(InputError):
        sal.attribute(X, target=[0, 1, 2])
    with pytest.raises(InputError):
        sal.attribute(X[0, 0, 0])
    with pytest.raises(InputError):
        sal.attribute(torch.full_like(X, float("nan")))
