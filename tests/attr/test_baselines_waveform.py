"""Mask baselines on a waveform model: the phase follows each chunk as additional_forward_args."""

import math

import pytest
import torch
import torchaudio
from torch import nn

from captum_lmac import STFT, InputError
from captum_lmac.attr import make_baseline
from captum_lmac.attr.baselines import MaskBaseline, slice_forward_args
from captum_lmac.nn.adapters import WaveformClassifier

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


FAST = {
    "smoothgrad": dict(nt_samples=2),
    "ig": dict(n_steps=3, internal_batch_size=4),
    "gradient_shap": dict(n_samples=2),
    "kernel_shap": dict(n_samples=6, grid=(2, 2), perturbations_per_eval=3),
}
NAMES = ["saliency", "smoothgrad", "ig", "gradcam", "gradcam++", "guided_backprop", "guided_gradcam",
         "gradient_shap", "kernel_shap"]


class WaveNet(nn.Module):
    """Waveform → its own spectrogram front end → a 2-D conv (a 2-D CAM layer, as GuidedGradCam needs)."""

    sample_rate = 8000

    def __init__(self):
        super().__init__()
        self.front = torchaudio.transforms.Spectrogram(n_fft=64, hop_length=32)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, w):
        return self.fc(self.relu(self.conv(torch.log1p(self.front(w)).unsqueeze(1))).mean((2, 3)))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    stft = STFT(sample_rate=8000, n_fft=128, hop_length=64, win_length=128)
    wf = WaveformClassifier(WaveNet(), stft, length=1200).eval()
    t = torch.arange(1200) / 8000
    X, P = stft.analyze(torch.stack([torch.sin(2 * math.pi * f * t) for f in (200, 900, 2000)]))
    return wf, X, P


@pytest.mark.parametrize("name", NAMES)
def test_every_baseline_runs_with_the_phase_explicit_or_bound(setup, name):
    wf, X, P = setup
    m = make_baseline(name, wf, layer=wf.model.conv, batch_size=2, **FAST.get(name, {}))
    explicit = m.attribute(X, additional_forward_args=(P,))
    assert explicit.shape == X.shape and float(explicit.max()) <= 1.0
    with wf.using_phase(P):
        bound = m.attribute(X)
    torch.testing.assert_close(bound, explicit)


def test_batch_equals_items_with_chunks_of_the_phase(setup):
    wf, X, P = setup
    m = make_baseline("ig", wf, batch_size=2, n_steps=3)
    batch = m.attribute(X, target=[0, 1, 2], additional_forward_args=(P,))
    items = torch.cat([m.attribute(X[i:i + 1], target=i, additional_forward_args=(P[i:i + 1],)) for i in range(3)])
    torch.testing.assert_close(batch, items, atol=1e-5, rtol=1e-4)


def test_without_a_phase_the_error_names_the_remedy(setup):
    wf, X, _ = setup
    with pytest.raises(InputError, match="additional_forward_args=\\(phase,\\)"):
        make_baseline("saliency", wf).attribute(X)


def test_a_two_argument_raw_of_a_user_subclass_still_works(setup):
    class Ones(MaskBaseline):
        def raw(self, X, target):
            return torch.ones_like(X)

    _, X, _ = setup
    model = lambda x: x.flatten(1)[:, :3]  # noqa: E731 - a model taking X alone
    assert Ones(model).attribute(X).shape == X.shape


def test_slice_forward_args_cuts_only_batch_sized_tensors():
    p, other = torch.zeros(4, 2), torch.zeros(3)
    sliced = slice_forward_args((p, other, 7), 1, 3, 4)
    assert sliced[0].shape == (2, 2) and sliced[1] is other and sliced[2] == 7
    assert slice_forward_args(None, 0, 1, 4) is None
