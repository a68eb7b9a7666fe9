"""Hooked layers of any shape: Hook specs, the output normaliser, the recorder, name errors."""

import dataclasses
from collections import OrderedDict

import pytest
import torch
from torch import nn

from captum_lmac import InputError
from captum_lmac.nn.hooks import (
    Hook,
    LayerRecorder,
    infer_layout,
    normalize_output,
    resolve_hooks,
    resolve_layers,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


class FakeModelOutput(OrderedDict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


@dataclasses.dataclass
class EncoderOutput:
    attentions: torch.Tensor
    hidden: torch.Tensor


# --- picking and layouts ----------------------------------------------------------------------------------------


def test_gru_and_lstm_tuples_give_the_output_sequence_channels_first():
    x = torch.randn(2, 30, 8)
    gru = nn.GRU(8, 16, batch_first=True, bidirectional=True)
    out = gru(x)
    h = normalize_output(out, 2, module=gru)
    assert h.shape == (2, 32, 30)
    torch.testing.assert_close(h, out[0].transpose(1, 2))
    lstm = nn.LSTM(8, 16, batch_first=True)
    assert normalize_output(lstm(x), 2, module=lstm).shape == (2, 16, 30)
    gru_tf = nn.GRU(8, 16)  # batch second: (T, N, C)
    out = gru_tf(x.transpose(0, 1))
    torch.testing.assert_close(normalize_output(out, 2, module=gru_tf), out[0].permute(1, 2, 0))


def test_dicts_dataclasses_and_model_outputs():
    tokens = torch.randn(2, 7, 12)
    mo = FakeModelOutput(last_hidden_state=tokens, pooler_output=torch.randn(2, 12))
    torch.testing.assert_close(normalize_output(mo, 2), tokens.transpose(1, 2))  # last_hidden_state is NTC
    d = {"weights": torch.randn(4, 7, 7), "features": torch.randn(2, 5, 9)}  # first with the batch dim
    torch.testing.assert_close(normalize_output(d, 2), d["features"])
    torch.testing.assert_close(normalize_output(d, 2, Hook("x", pick="features", layout="NTC")),
                               d["features"].transpose(1, 2))
    dc = EncoderOutput(attentions=torch.randn(8, 3, 3), hidden=torch.randn(2, 6, 10))
    torch.testing.assert_close(normalize_output(dc, 2), dc.hidden)
    torch.testing.assert_close(normalize_output((torch.randn(2, 3), dc.hidden), 2, Hook("x", pick=1)), dc.hidden)
    torch.testing.assert_close(normalize_output({"a": {"b": dc.hidden}}, 2, Hook("x", pick=lambda o: o["a"]["b"])),
                               dc.hidden)
    v = torch.randn(2, 5)
    torch.testing.assert_close(normalize_output(v, 2), v.unsqueeze(-1))  # a vector: (N, C, 1)


def test_time_before_frequency_maps_are_transposed():
    m = torch.randn(2, 4, 10, 8)  # PANNs conv block: (N, C, T', F')
    torch.testing.assert_close(normalize_output(m, 2, Hook("b", layout="NCTF")), m.transpose(2, 3))
    torch.testing.assert_close(normalize_output(m, 2, Hook("b", layout="NTC")), m)  # a 3-D layout leaves maps alone
    with pytest.raises(InputError, match="is for 4-D maps"):
        normalize_output(torch.randn(2, 4, 10), 2, Hook("b", layout="NCTF"))


def test_layout_inference_rule():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1, enable_nested_tensor=False)
    assert infer_layout(enc) == "NTC" and infer_layout(enc.layers[0]) == "NTC"
    assert infer_layout(nn.TransformerEncoderLayer(8, 2, 16)) == "TNC"
    assert infer_layout(nn.MultiheadAttention(8, 2, batch_first=True)) == "NTC"
    assert infer_layout(nn.Linear(3, 3)) == "NTC" and infer_layout(nn.Conv1d(3, 3, 1)) == "NCT"
    assert infer_layout(nn.Sequential(nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3), nn.ReLU())) == "NCT"
    assert infer_layout(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Dropout())) == "NTC"
    assert infer_layout(nn.ReLU()) == "NCT"
    declared = nn.ReLU()
    declared.output_layout = "NTC"
    assert infer_layout(declared) == "NTC"
    assert infer_layout(None, "last_hidden_state") == "NTC"


def test_transformer_tokens_with_cls_become_a_patch_grid():
    torch.manual_seed(0)
    patches = torch.randn(2, 8, 3, 5)  # (N, D, F', T') from a conv patch embedding
    tokens = torch.cat([torch.randn(2, 1, 8), patches.flatten(2).transpose(1, 2)], 1)  # CLS + 15 patches
    enc_layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    seq = normalize_output(tokens, 2, Hook("t", drop_tokens=1), module=enc_layer)
    torch.testing.assert_close(seq, patches.flatten(2))
    grid = normalize_output(tokens, 2, Hook("t", drop_tokens=1, grid=(3, -1)), module=enc_layer)
    torch.testing.assert_close(grid, patches)
    back = torch.cat([tokens, torch.randn(2, 2, 8)], 1)
    torch.testing.assert_close(normalize_output(back, 2, Hook("t", drop_tokens=(1, 2), grid=(-1, 5), layout="NTC")),
                               patches)


# --- folded batches --------------------------------------------------------------------------------------------------


class Chunked(nn.Module):
    """Folds C chunks of each clip into the batch; the hooked modules see N·C rows."""

    def __init__(self, chunk=4, order_check=False):
        super().__init__()
        self.chunk = chunk
        self.seq = nn.Identity()
        self.vec = nn.Identity()
        self.grid = nn.Identity()

    def forward(self, x):  # (N, C·L)
        n = x.shape[0]
        rows = x.reshape(n * (x.shape[1] // self.chunk), self.chunk)  # clip-major, as reshape gives
        s = self.seq(rows.unsqueeze(1))  # (N·C, 1, L)
        self.vec(rows.sum(1, keepdim=True))  # (N·C, 1)
        self.grid(torch.stack([rows, -rows], 1).unsqueeze(2))  # (N·C, 2, 1, L)
        return s.reshape(n, -1)[:, :3]


def test_folded_chunks_are_put_back_along_time_in_order():
    x = torch.arange(2 * 12, dtype=torch.float).reshape(2, 12)
    model = Chunked(chunk=4)
    rec = LayerRecorder(resolve_hooks(model, ["seq", "vec", "grid"]), model=model)
    with rec.capture() as feats:
        model(x)
    seq, vec, grid = feats
    torch.testing.assert_close(seq, x.unsqueeze(1))  # (N, 1, C·L) is the clip itself
    torch.testing.assert_close(vec, x.reshape(2, 3, 4).sum(-1).unsqueeze(1))  # (N, 1, C): one value per chunk
    torch.testing.assert_close(grid, torch.stack([x, -x], 1).unsqueeze(2))  # (N, 2, 1, C·L)
    rec = LayerRecorder(resolve_hooks(model, [Hook("seq", fold=3)]))  # explicit count, no batch size needed
    with rec.capture() as feats:
        model(x)
    (seq,) = feats
    torch.testing.assert_close(seq, x.unsqueeze(1))


def test_folded_batch_errors_name_the_layer_shapes_and_the_fix():
    with pytest.raises(InputError) as err:
        normalize_output(torch.randn(7, 4, 5), 2, Hook("enc"), name="enc")
    msg = str(err.value)
    assert "'enc'" in msg and "(7, 4, 5)" in msg and "batch size 2" in msg and "fold=" in msg and "pick=" in msg
    with pytest.raises(InputError, match=r"fold=False.*Hook\('enc', fold=<chunks per clip>\)"):
        normalize_output(torch.randn(6, 4, 5), 2, Hook("enc", fold=False), name="enc")
    with pytest.raises(InputError, match=r"\(6, 4, 5\).*4 chunks"):
        normalize_output(torch.randn(6, 4, 5), 2, Hook("enc", fold=4), name="enc")


# --- other errors --------------------------------------------------------------------------------------------------


def test_pick_and_shape_errors():
    with pytest.raises(InputError, match=r"no 'logits' in a dict \{a: \(2, 3\)\}"):
        normalize_output({"a": torch.zeros(2, 3)}, 2, Hook("x", pick="logits"), name="x")
    with pytest.raises(InputError, match="no tensor in it has the input batch size 2"):
        normalize_output({"a": torch.zeros(3, 3)}, 2, name="x")
    with pytest.raises(InputError, match="PackedSequence.*pad_packed_sequence"):
        packed = nn.utils.rnn.pack_padded_sequence(torch.randn(2, 5, 3), [5, 3], batch_first=True)
        normalize_output(packed, 2, name="rnn")
    with pytest.raises(InputError, match=r"'x' returned a tensor of shape \(2, 1, 2, 3, 4\) for a batch of 2"):
        normalize_output(torch.zeros(2, 1, 2, 3, 4), 2, name="x")
    with pytest.raises(InputError, match="leaves no tokens"):
        normalize_output(torch.zeros(2, 3, 8), 2, Hook("x", drop_tokens=3, layout="NTC"))
    with pytest.raises(InputError, match=r"15 tokens .* grid \(4, -1\)"):
        normalize_output(torch.zeros(2, 16, 8), 2, Hook("x", drop_tokens=1, grid=(4, -1), layout="NTC"))
    with pytest.raises(InputError, match="token sequences only"):
        normalize_output(torch.zeros(2, 3, 4, 5), 2, Hook("x", grid=(4, 5)))
    with pytest.raises(InputError, match="pick callable failed"):
        normalize_output((torch.zeros(2, 3),), 2, Hook("x", pick=lambda o: o["no"]))
    for bad in (dict(layout="NHWC"), dict(drop_tokens=-1), dict(grid=(-1, -1)), dict(fold=0)):
        with pytest.raises(InputError, match="Hook"):
            Hook("x", **bad)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv1d(8, 8, 3, padding=1), nn.ReLU())
        self.gru = nn.GRU(8, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = self.block2(self.block1(x))
        out, _ = self.gru(h.transpose(1, 2))
        return self.fc(out.mean(1))


def test_unknown_layer_lists_the_closest_names_and_the_children():
    with pytest.raises(InputError) as err:
        resolve_hooks(Net(), ["blok2"])
    msg = str(err.value)
    assert "'blok2'" in msg and "closest names: ['block2'" in msg and "['block1', 'block2', 'gru', 'fc']" in msg
    with pytest.raises(InputError, match="no layer named 'gruu'"):
        resolve_layers(Net(), [Hook("gruu")])
    with pytest.raises(InputError, match="not a submodule"):
        resolve_hooks(Net(), [nn.ReLU()])


def test_torchscript_models_are_refused_with_the_remedy():
    ts = torch.jit.trace(Net().eval(), torch.randn(2, 4, 10))
    with pytest.raises(InputError, match="TorchScript.*layers=\\[\\]"):
        resolve_hooks(ts, ["fc"])
    assert resolve_hooks(ts, []) == []


def test_resolve_layers_keeps_its_contract_and_accepts_hooks():
    net = Net()
    mods, names = resolve_layers(net, ["block1", net.gru, Hook("fc")])
    assert mods == [net.block1, net.gru, net.fc] and names == ["block1", "gru", "fc"]
    with pytest.raises(InputError, match="at least one"):
        resolve_layers(net, [])
    hooks = resolve_hooks(net, ["gru", Hook("fc", layout="NCT")], layout="NTC")
    assert [h.hook.layout for h in hooks] == ["NTC", "NCT"]


def test_recorder_normalises_hooks_and_keeps_legacy_modules_raw():
    net = Net().eval()
    x = torch.randn(2, 4, 10)
    rec = LayerRecorder(resolve_hooks(net, ["block2", "gru"]), model=net)
    with rec.capture() as feats:
        net(x)
    b2, g = feats
    assert b2.shape == (2, 8, 10) and g.shape == (2, 6, 10)
    legacy = LayerRecorder([net.gru])  # plain modules: out[0] as it is, (N, T, C)
    with legacy.capture() as feats:
        net(x)
    (g_raw,) = feats
    torch.testing.assert_close(g_raw.transpose(1, 2), g)
    with pytest.raises(InputError, match=r"\['gru'\] did not run"):
        with LayerRecorder(resolve_hooks(net, ["gru"])).capture():
            net.block1(x)


def test_hook_config_round_trip():
    h = Hook("enc.layers.0", pick="last_hidden_state", layout="NTC", drop_tokens=(1, 2), grid=(4, -1), fold=3)
    assert Hook.from_config(h.config()) == h
    assert Hook.from_config("net.block1") == Hook("net.block1")
    assert Hook("a", drop_tokens=(2, 0)).drop_tokens == 2
    with pytest.raises(InputError, match="callable pick"):
        Hook("a", pick=lambda o: o).config()
    with pytest.raises(InputError, match="string"):
        Hook(nn.ReLU()).config()
