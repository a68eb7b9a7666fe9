"""L2I: NMF dictionary + interpreter Ψ/Θ on a frozen classifier; masks, relevance, persistence, metrics."""

import pytest
import torch
from captum.attr import NoiseTunnel
from torch import nn

from captum_lmac import L2I, STFT, LogMel, SpectrogramClassifier, SyntheticEvents, to_spectrograms
from captum_lmac.metrics import ff_median, topk_fidelity
from captum_lmac.errors import CheckpointError, InputError, NotFittedError
from captum_lmac.training import build_classifier, predict

K = 8
LAYERS = ["net.block1", "net.block2"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def toy_classifier(stft, X, seed=0):
    """A learnable toy: a random tiny CNN whose head is re-centred and scaled on the training set so its
    decisions are balanced over the 3 classes and confident (Θ can then imitate a non-trivial function)."""
    torch.manual_seed(seed)
    model = build_classifier(n_classes=3, stft=stft, n_mels=16, channels=(4, 8)).eval()
    with torch.no_grad():
        logits = predict(model, X)
        scale = 3.0 / logits.std(0).mean()
        model.net.fc.bias.sub_(logits.mean(0)).mul_(scale)
        model.net.fc.weight.mul_(scale)
    return model


@pytest.fixture(scope="module")
def toy():
    stft = STFT(n_fft=256, hop_length=64, win_length=128)
    train = to_spectrograms(SyntheticEvents(36, seed=0, n_classes=3, duration=1.05), stft, progress=False)
    val = to_spectrograms(SyntheticEvents(18, seed=1, n_classes=3, duration=1.05), stft, progress=False)
    model = toy_classifier(stft, train.X)
    l2i = L2I(model, layers=LAYERS, n_components=K, hidden=16)
    # dictionary + untrained Ψ/Θ (fit(epochs=0) is refused: it would leave an untrained interpreter "fitted")
    first = {"dictionary": l2i.learn_dictionary(train, n_iter=50, progress=False)}
    torch.manual_seed(0)
    l2i._ensure_decoder(train.X)
    before = l2i.evaluate(train.X)
    hist = l2i.fit(train, epochs=30, batch_size=6, lr=3e-3, val=val, progress=False)
    return dict(stft=stft, train=train, val=val, model=model, l2i=l2i, first=first, before=before, hist=hist)


def test_dictionary_learnt_first(toy):
    info = toy["first"]["dictionary"]
    W = toy["l2i"].dictionary
    assert W.shape == (toy["stft"].n_freqs, K) and float(W.min()) >= 0
    assert torch.allclose(W.norm(dim=0), torch.ones(K), atol=1e-4)
    assert info["iterations"] >= 1 and 0 < info["relative_error"] < 1
    assert "dictionary" not in toy["hist"]  # a second fit reuses the dictionary


def test_fidelity_improves_with_training(toy):
    l2i, train = toy["l2i"], toy["train"]
    after = l2i.evaluate(train.X)
    majority = float(predict(toy["model"], train.X).argmax(1).bincount(minlength=3).max()) / len(train)
    assert after["fid_acc"] > toy["before"]["fid_acc"]
    assert after["fid_acc"] > majority + 0.1  # beats chance and the majority class
    assert after["fidelity"] < toy["before"]["fidelity"]
    h = toy["hist"]
    assert len(h["val_fid_acc"]) == 30 and 0 <= h["best_epoch"] < 30
    assert h["nmf"][-1] < h["nmf"][0]
    assert h["cached_features"] is True  # in-memory data: the frozen classifier ran once
    assert h["decoder_parameters"] == l2i.n_parameters() > 0
    top = topk_fidelity(l2i, toy["val"].X, k=(1, 2, 3))
    assert top[1] <= top[2] <= top[3] == 1.0  # k = C covers every class
    assert top[1] > 1 / 3


def test_mask_shape_range_and_tuple_input(toy):
    l2i, X = toy["l2i"], toy["val"].X[:4]
    mask = l2i.attribute(X)
    assert mask.shape == X.shape and mask.dtype == X.dtype
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    (mask_t,) = l2i.attribute((X,))
    assert torch.equal(mask, mask_t)
    audio = toy["stft"].listen(X, toy["val"].phase[:4], mask)
    assert audio.shape[0] == 4 and torch.isfinite(audio).all()
    # H covers every frame of inputs of another length
    assert l2i.attribute(X[..., :100]).shape == X[..., :100].shape
    assert hasattr(L2I.attribute, "__wrapped__")  # captum.log.log_usage


def test_relevance_normalised(toy):
    l2i, X = toy["l2i"], toy["val"].X[:6]
    r = l2i.relevance(X)
    assert r.shape == (6, K)
    assert torch.allclose(r.abs().amax(1), torch.ones(6))
    H = l2i.activations(X)
    assert H.shape == (6, K, X.shape[-1]) and float(H.min()) >= 0
    # the definition: z_k θ_{c,k} / max_l |z_l θ_{c,l}| with c the classifier's decision
    c = predict(toy["model"], X).argmax(1)
    z = l2i.decoder.theta.pool(H)
    contrib = z * l2i.decoder.theta.linear.weight[c]
    assert torch.allclose(r, contrib / contrib.abs().amax(1, keepdim=True), atol=1e-5)


def test_threshold_monotonicity(toy):
    l2i, X = toy["l2i"], toy["val"].X[:6]
    masks = [l2i.attribute(X, threshold=rt) for rt in (-1.5, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    for lo, hi in zip(masks, masks[1:]):
        assert bool((hi <= lo + 1e-6).all())  # fewer components → elementwise smaller mask
        assert float(hi.mean()) <= float(lo.mean()) + 1e-7
    assert float(masks[-1].max()) == 0.0  # r ≤ 1: nothing passes RT = 1
    assert float(masks[0].mean()) > 0.95  # every component selected: the shares of W H sum to 1
    counts = [sum(len(s) for s in l2i.selected_components(X, threshold=rt)) for rt in (0.0, 0.2, 0.6)]
    assert counts[0] >= counts[1] >= counts[2] >= 1


def test_component_masks_and_selection(toy):
    l2i, X, phase = toy["l2i"], toy["val"].X[:3], toy["val"].phase[:3]
    all_k = l2i.component_masks(X, list(range(K)))
    assert all_k.shape == (3, K, X.shape[2], X.shape[3])
    assert float(all_k.min()) >= 0 and float(all_k.max()) <= 1
    total = all_k.sum(1)
    assert float(total.max()) <= 1 + 1e-5 and float(total.mean()) > 0.95  # shares of W H sum to 1
    sel = l2i.selected_components(X, threshold=0.2)
    r = l2i.relevance(X)
    mask = l2i.attribute(X, threshold=0.2)
    for i, idx in enumerate(sel):
        assert bool((r[i, idx] > 0.2).all()) and bool((r[i, idx][:-1] >= r[i, idx][1:]).all())
        expected = all_k[i, idx].sum(0) if len(idx) else torch.zeros_like(mask[i, 0])
        assert torch.allclose(mask[i, 0], expected.clamp(0, 1), atol=1e-5)
    one = l2i.component_masks(X, torch.stack([s[:1] for s in sel]))  # the top component of each sample
    assert one.shape == (3, 1, X.shape[2], X.shape[3])
    assert toy["stft"].listen(X, phase, one[:, :1]).shape[0] == 3  # listen to it alone
    with pytest.raises(InputError, match="out of range"):
        l2i.component_masks(X, [K])


def test_target_handling(toy):
    l2i, X = toy["l2i"], toy["val"].X[:4]
    pred = predict(toy["model"], X).argmax(1)
    default = l2i.attribute(X)
    assert torch.equal(default, l2i.attribute(X, target=pred))
    assert torch.equal(default, l2i.attribute(X, target=pred.tolist()))
    other = (pred + 1) % 3  # Θ scores every class: another class can be explained
    r_other = l2i.relevance(X, target=other)
    assert not torch.equal(r_other, l2i.relevance(X))
    m_other = l2i.attribute(X, target=other)
    assert m_other.shape == X.shape
    assert torch.equal(l2i.attribute(X[:1], target=int(other[0])), m_other[:1])
    assert torch.equal(l2i.attribute(X[:1], target=torch.tensor(int(other[0]))), m_other[:1])
    with pytest.raises(InputError, match="unknown target"):
        l2i.attribute(X, target=3)
    with pytest.raises(InputError, match="entries"):
        l2i.attribute(X, target=[0, 1])


def test_bad_input_and_not_fitted(toy):
    l2i, X = toy["l2i"], toy["val"].X[:2]
    fresh = L2I(toy["model"], layers=LAYERS, n_components=K)
    with pytest.raises(NotFittedError):
        fresh.attribute(X)
    with pytest.raises(NotFittedError):
        fresh.save("never.pt")
    with pytest.raises(InputError, match="frequency bins"):
        l2i.attribute(X[:, :, :-1])
    with pytest.raises(InputError, match=r"\(N, 1, F, T\)"):
        l2i.attribute(X[:, 0])
    with pytest.raises(InputError, match="NaN"):
        l2i.attribute(X * float("nan"))
    with pytest.raises(InputError, match="threshold"):
        l2i.attribute(X, threshold=float("inf"))
    with pytest.raises(InputError, match="columns"):
        L2I(toy["model"], layers=LAYERS, n_components=5, dictionary=l2i.dictionary)
    with pytest.raises(InputError, match="non-negative"):
        L2I(toy["model"], layers=LAYERS, dictionary=-l2i.dictionary)
    with pytest.raises(InputError, match="no layer named"):
        L2I(toy["model"], layers=["net.nope"])


def test_save_load_round_trip_and_refusal(toy, tmp_path):
    l2i, X = toy["l2i"], toy["val"].X[:4]
    path = l2i.save(tmp_path / "l2i.pt")
    payload = torch.load(str(path), weights_only=True)
    assert any(k.startswith("decoder.theta.") for k in payload["state"])  # Θ is saved (the reference forgets it)
    assert "decoder.dictionary" in payload["state"]
    loaded = L2I.load(path, toy["model"])
    assert loaded.layer_names == LAYERS and loaded.n_components == K
    assert torch.equal(loaded.dictionary, l2i.dictionary)
    assert torch.equal(loaded.attribute(X), l2i.attribute(X))
    assert torch.equal(loaded.relevance(X), l2i.relevance(X))
    assert torch.equal(loaded.interpreter_logits(X), l2i.interpreter_logits(X))
    assert loaded.history["best_epoch"] == l2i.history["best_epoch"]
    other = toy_classifier(toy["stft"], toy["train"].X, seed=1)
    with pytest.raises(CheckpointError, match="different classifier"):
        L2I.load(path, other)


def test_reuse_dictionary_with_1d_sequence_layer(toy):
    class SeqNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(16, 6, 3, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):  # log-mel (N, 1, 16, T) → 1-D sequence (N, 6, T) → logits
            return self.fc(self.relu(self.conv(x[:, 0])).mean(-1))

    torch.manual_seed(0)
    model = SpectrogramClassifier(LogMel(toy["stft"], n_mels=16), SeqNet()).eval()
    l2i = L2I(model, layers=["net.relu"], hidden=8, dictionary=toy["l2i"].dictionary)
    assert l2i.n_components == K
    X_train = toy["train"].X
    hist = l2i.fit([X_train[:6], X_train[6:12]], epochs=2, progress=False)  # an iterable of batches
    assert "dictionary" not in hist and hist["dictionary_seconds"] < 1
    assert hist["cached_features"] is False and len(hist["loss"]) == 2
    X = toy["val"].X[:2]
    mask = l2i.attribute(X)
    assert mask.shape == X.shape and 0 <= float(mask.min()) <= float(mask.max()) <= 1
    assert l2i.decoder.layer_spec == [{"channels": 6, "freqs": 1}]


def test_l2i_metrics(toy):
    l2i, X = toy["l2i"], toy["val"].X
    res = ff_median(l2i, X, threshold=0.2, seed=0)
    n = X.shape[0]
    assert res["ff"].shape == res["ff_random"].shape == res["n_selected"].shape == (n,)
    assert res["ff_median"] == pytest.approx(float(res["ff"].median()))
    assert res["ff_random_median"] == pytest.approx(float(res["ff_random"].median()))
    assert bool((res["ff"].abs() <= 1).all())
    assert bool(((res["n_selected"] >= 0) & (res["n_selected"] <= K)).all())
    empty = res["n_selected"] == 0  # nothing selected: nothing removed, FF = 0 for both
    assert bool((res["ff"][empty] == 0).all()) and bool((res["ff_random"][empty] == 0).all())
    # FF agrees with the generic faithfulness metric on the same masks
    from captum_lmac.metrics import faithfulness

    ff = faithfulness(toy["model"], X, l2i.attribute(X, threshold=0.2))["FF"]
    assert torch.allclose(ff, res["ff"], atol=1e-5)
    assert ff_median(l2i, X, seed=0)["ff_random"].tolist() == res["ff_random"].tolist()  # seeded
    with pytest.raises(InputError):
        topk_fidelity(l2i, X, k=(0,))


def test_noise_tunnel_compatible(toy):
    l2i, X = toy["l2i"], toy["val"].X[:2]
    out = NoiseTunnel(l2i).attribute(X, nt_samples=2, stdevs=1e-3, nt_type="smoothgrad")
    assert out.shape == X.shape


def test_learn_dictionary_from_batches_of_any_length(toy):
    X = toy["train"].X
    l2i = L2I(toy["model"], layers=LAYERS, n_components=4)
    assert l2i.dictionary is None
    info = l2i.learn_dictionary([X[:2], X[2:4, ..., :100]], n_iter=3, progress=False)
    assert info["frames"] <= 2 * X.shape[-1] + 2 * 100 and info["iterations"] == 3
    assert l2i.dictionary.shape == (X.shape[2], 4)
    with pytest.raises(NotFittedError):
        l2i.relevance(X[:1])
