"""``captum_lmac._utils``: the eval/freeze guard's BatchNorm input-gradient fix (every architecture's input
gradients against central differences: tests/nn/test_zoo.py), memory release."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from captum_lmac._utils import eval_mode, release_memory


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


def test_channels_last_batchnorm_inputs_pass_uncopied_with_exact_gradients():
    # the reference CNNs' blocks run channels-last: the guard must not copy them back to NCHW (that
    # undid the layout at every BatchNorm), and their input gradient is exact without the copy
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8).double()
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
    seen = []
    bn.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(3, 8, 5, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    g = torch.randn(3, 8, 5, 7, dtype=torch.float64)
    with eval_mode(bn, freeze=True):
        bn(x).backward(g)
    assert seen == [True]  # the guard's hook ran first and left the layout alone
    torch.testing.assert_close(x.grad, g * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1, 1))
    # ... while the mel layout (channels-last by PyTorch's test, a size-1 axis) is still copied
    bn2, base, grad_out, exact = _bn_on_mel_layout()
    assert base.transpose(1, 2).unsqueeze(1).transpose(1, 2).is_contiguous(memory_format=torch.channels_last)
    with eval_mode(bn2, freeze=True):
        torch.testing.assert_close(_input_grad(bn2, base, grad_out), exact)


def test_release_memory_trims_on_glibc_and_is_harmless_elsewhere():
    kept = torch.arange(10.0)
    junk = [torch.randn(256, 256) for _ in range(8)]  # 256 KB tensors: glibc's heap, not mmap
    del junk
    available = release_memory()
    assert isinstance(available, bool)
    if sys.platform.startswith("linux"):
        assert available  # the project's machines run glibc
    assert torch.equal(kept, torch.arange(10.0))  # live tensors untouched


def test_reuse_freed_memory_keeps_freed_blocks_until_release_memory_returns_them():
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    code = """
import pytest
import torch
from captum_lmac._utils import release_memory
from captum_lmac.benchmark import reuse_freed_memory
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1000
assert reuse_freed_memory()
base = rss()
blocks = [torch.ones(2 << 20) for _ in range(40)]  # 40 blocks of 8 MB: now heap blocks, not maps
full = rss()
del blocks
kept = rss()  # freed, kept for reuse
again = [torch.ones(2 << 20) for _ in range(40)]
del again
release_memory()
print(base, full, kept, rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    base, full, kept, after = (int(v) for v in out.stdout.split())
    assert full - base > 300  # MB
    assert kept > full - 50  # kept resident for the next batch ...
    assert after < base + 100  # ... and handed back by release_memory


def test_peak_rss_is_a_rising_high_water_mark():
    from captum_lmac._utils import peak_rss_mb

    before = peak_rss_mb()
    assert before is not None and before > 10  # MB: an interpreter with torch loaded
    block = bytearray(200_000_000)  # touch 200 MB
    block[::4096] = b"x" * len(block[::4096])
    after = peak_rss_mb()
    del block
    assert after >= before and peak_rss_mb() >= after
