"""Reference classifiers and the SpectrogramClassifier wrapper."""

import pytest
import torch
from torch import nn

from captum_lmac import CNN14, STFT, CompactCNN, InputError, LogMel, SpectrogramClassifier, count_parameters
from captum_lmac._io import load_checkpoint, save_checkpoint
from captum_lmac.nn.zoo import CRNN


def test_cnn14_matches_the_published_size_and_panns_names():
    net = CNN14(n_classes=527, n_mels=64)
    assert count_parameters(net) == pytest.approx(80.7e6, rel=0.01)  # PANNs: ~80.7 M
    names = set(net.state_dict())
    for key in ("conv_block1.conv1.weight", "conv_block6.bn2.running_mean", "fc1.weight", "fc_audioset.bias", "bn0.weight"):
        assert key in names
    out = net.eval()(torch.randn(1, 1, 64, 40))
    assert out.shape == (1, 527)


def test_cnn14_loads_a_panns_state_dict_and_skips_mismatches():
    src = CNN14(n_classes=527, n_mels=64)
    dst = CNN14(n_classes=10, n_mels=64)
    missing = dst.load_panns_state_dict(src.state_dict())
    assert set(missing) == {"fc_audioset.weight", "fc_audioset.bias"}
    assert torch.equal(dst.conv_block3.conv1.weight, src.conv_block3.conv1.weight)


def test_compact_cnn_blocks_and_relus_are_guided_backprop_friendly():
    net = CompactCNN(n_classes=5, n_mels=32, channels=(8, 16, 32))
    assert [type(b).__name__ for b in net.blocks] == ["ConvBlock"] * 3
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 6 and all(not r.inplace for r in relus)
    assert len({id(r) for r in relus}) == len(relus)  # one module per use
    # each block halves the time-frequency grid
    x = torch.randn(2, 1, 32, 50)
    shapes = []
    hooks = [b.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for b in net.blocks]
    net.eval()(x)
    for h in hooks:
        h.remove()
    assert shapes == [(2, 8, 16, 25), (2, 16, 8, 12), (2, 32, 4, 6)]


@pytest.mark.parametrize("make", [
    lambda: CompactCNN(4, n_mels=16, channels=(4, 8, 16)),
    lambda: CRNN(4, n_mels=16, width=4, n_blocks=2),
], ids=["CompactCNN", "CRNN"])
def test_reference_nets_run_channels_last_and_match_the_contiguous_layout(make, tmp_path):
    torch.manual_seed(0)
    net = make().eval()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    seen = []
    net.blocks[-1].register_forward_hook(lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
    ref = make().eval()
    ref.load_state_dict(net.state_dict())
    ref.to(memory_format=torch.contiguous_format)
    x = torch.randn(3, 1, 16, 40)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = net(xa)
    assert seen == [True]  # activations stay channels-last through the blocks
    torch.testing.assert_close(out, ref(xb), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    ref(xb).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-6)  # input gradients (Saliency, fits)
    # a saved state is contiguous and loads back into the channels-last layout
    save_checkpoint(tmp_path / "net.pt", "classifier", net.state_dict(), {})
    state, _ = load_checkpoint(tmp_path / "net.pt", "classifier")
    assert all(v.is_contiguous() for v in state.values())
    again = make().eval()
    again.load_state_dict(state)
    assert again.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(again(x), net(x))


def test_spectrogram_classifier_domains_and_errors():
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    model = SpectrogramClassifier(LogMel(stft, n_mels=16), CompactCNN(3, n_mels=16, channels=(4, 8))).eval()
    X, _ = stft.analyze(torch.randn(2, 4000))
    logits = model(X)
    feat = model.in_feature_domain()
    assert feat.net is model.net  # weights shared
    assert torch.allclose(feat(model.features(X)), logits)
    assert torch.allclose(feat(feat.to_input_domain(X)), logits)
    with pytest.raises(InputError, match="frequency bins"):
        model(X[:, :, :100])
    with pytest.raises(InputError, match=r"\(N, 1, F, T\)"):
        model(X[:, 0])
    with pytest.raises(InputError, match="input_domain"):
        SpectrogramClassifier(model.features, model.net, input_domain="mel")
