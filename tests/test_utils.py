"""``captum_lmac._utils``: the eval/freeze guard's BatchNorm input-gradient fix."""

import torch
from torch import nn

from captum_lmac._utils import eval_mode


def _bn_on_mel_layout(n=2, mels=8, frames=16):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(mels).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
    base = torch.randn(n, frames, mels, dtype=torch.float64)  # a mel front end's (N, T, mels) product
    grad_out = torch.randn(n, mels, 1, frames, dtype=torch.float64)
    exact = (grad_out[:, :, 0] * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1)).transpose(1, 2)
    return bn, base, grad_out, exact.detach()


def _input_grad(bn, base, grad_out):
    b = base.clone().requires_grad_(True)
    x = b.transpose(1, 2).unsqueeze(1).transpose(1, 2)  # bn0(x.transpose(1, 2)) on (N, 1, mels, T): stride 1 along C
    bn(x).backward(grad_out)
    return b.grad


def test_batchnorm_input_gradient_is_exact_inside_eval_mode():
    bn, base, grad_out, exact = _bn_on_mel_layout()
    with eval_mode(bn, freeze=True):
        torch.testing.assert_close(_input_grad(bn, base, grad_out), exact)
    assert not bn._forward_pre_hooks  # the guard's hooks are gone on exit
    bn.eval()
    raw = _input_grad(bn, base, grad_out)
    # the PyTorch bug the guard works around (torch 2.9.1 on CPU): outside the guard the gradient may be wrong
    print("unguarded BatchNorm2d input-gradient error:", float((raw - exact).abs().max()))


def test_every_architecture_has_exact_input_gradients(tmp_path):
    """Reverse-mode input gradients (what saliency, IG and the learned fits use) equal central-difference
    directional derivatives for every zoo architecture, through the guard."""
    from captum_lmac.audio import STFT
    from captum_lmac.nn.zoo import build_architecture
    from toys import TINY_ARCHITECTURES

    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    torch.manual_seed(0)
    wav = torch.randn(2, 4000) * 0.1
    X, P = stft.analyze(wav)
    X, P = X.double(), P.double()
    for name, tiny in TINY_ARCHITECTURES.items():
        if name == "torchscript":
            continue  # a frozen TorchScript graph: no forward-mode rules for every op
        torch.manual_seed(0)
        model, info = build_architecture(name, 3, stft, **tiny)
        model = model.double()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                with torch.no_grad():
                    m.running_mean.uniform_(-1, 1)
                    m.running_var.uniform_(0.5, 2)
        waveform = info["input"] == "waveform"
        v = torch.randn_like(X) * X  # a relative (mask-like) change of the magnitude
        with eval_mode(model, freeze=True):
            ctx = model.using_phase(P, length=4000) if waveform else _nullcontext()
            with ctx:
                f = lambda x: model(x)[:, 0].sum()
                Xr = X.clone().requires_grad_(True)
                f(Xr).backward()
                with torch.no_grad():
                    forward = (f(X + 1e-4 * v) - f(X - 1e-4 * v)) / 2e-4
        # the bug gives errors of order one; the waveform path's ISTFT runs in float32
        torch.testing.assert_close((Xr.grad * v).sum(), forward, rtol=2e-2, atol=1e-6, msg=name)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
