"""layers="auto": the documented rule on flat CNNs, patch-token models and models without time structure."""

import pytest
import torch
from torch import nn

from captum_lmac import InputError
from captum_lmac.nn.auto_layers import AUTO_RULE, auto_layers
from captum_lmac.nn.hooks import Hook, LayerRecorder, resolve_hooks


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


class FlatCNN(nn.Module):
    """A front end, then one flat nn.Sequential of conv / ReLU / pool layers."""

    def __init__(self):
        super().__init__()
        self.front = nn.AvgPool2d(1)  # no parameters: the front end
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.body(self.front(x)).mean((2, 3)))


def test_auto_layers_on_a_flat_cnn_takes_the_last_activation_of_each_resolution():
    names, why = auto_layers(FlatCNN(), torch.randn(1, 1, 16, 32), n=3)
    # the last activation at each resolution (the Sequential itself ends the last one)
    assert names == ["body.1", "body.4", "body"]
    assert "front end: 1" in why and AUTO_RULE in why
    assert "chosen" in why and "same output as body" in why


class TokenModel(nn.Module):
    """AST-like: conv patches, two prefix tokens, a batch-first encoder, a head on the first token."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.prefix = nn.Parameter(torch.zeros(1, 2, 8))
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                         enable_nested_tensor=False)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        p = self.patch(x).flatten(2).transpose(1, 2)
        return self.fc(self.enc(torch.cat([self.prefix.expand(x.shape[0], -1, -1), p], 1))[:, 0])


def test_auto_layers_reads_patch_tokens_as_their_grid():
    model = TokenModel()
    x = torch.randn(2, 1, 16, 24)
    res = auto_layers(model, x, n=3)
    assert res.names == ["patch", "enc.layers.0", "enc"]
    assert res.hooks[1] == Hook("enc.layers.0", drop_tokens=2, grid=(4, -1))
    rec = LayerRecorder(resolve_hooks(model, res.hooks), model=model)
    with rec.capture() as feats:
        model(x)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 4, 6)] * 3
    assert "read as Hook('enc.layers.0', drop_tokens=2, grid=(4, -1))" in res.explanation


def test_auto_layers_with_no_time_structure_or_torchscript():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(40, 5), nn.ReLU(), nn.Linear(5, 2))
    names, why = auto_layers(mlp, torch.randn(2, 1, 4, 10))
    assert names == [] and "layers=[]" in why
    ts = torch.jit.trace(mlp, torch.randn(2, 1, 4, 10))
    res = auto_layers(ts, torch.randn(2, 1, 4, 10))
    assert res.names == [] and "TorchScript" in str(res)
    with pytest.raises(InputError, match="n must be"):
        auto_layers(mlp, torch.randn(2, 1, 4, 10), n=0)
