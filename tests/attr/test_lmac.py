"""L-MAC: fit, attribute, fine-tune, Captum/Quantus interplay, save/load; the issue-14 decoder and checks."""

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import NoiseTunnel
from captum.metrics import infidelity, sensitivity_max
from torch import nn

from captum_lmac import STFT, CheckpointError, InputError, NotFittedError, SyntheticEvents, to_spectrograms
from captum_lmac._utils import eval_mode
from captum_lmac.attr.lmac import LMAC, apply_mask, out_term, sd_across_clips
from captum_lmac.metrics import randomisation_stages, randomise_
from captum_lmac.nn.decoders import InputMaskDecoder, LMACDecoder, MaskDecoder, interpolation_matrix, layer_shape_spec
from captum_lmac.nn.zoo import build_architecture
from captum_lmac.nn.classifier import SpectrogramClassifier
from captum_lmac.audio import LogMel
from captum_lmac.training import build_classifier, train_classifier


@pytest.fixture(scope="module")
def setup():
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    train = to_spectrograms(SyntheticEvents(48, seed=0, sample_rate=8000, duration=0.7, n_classes=3), stft, progress=False)
    test = to_spectrograms(SyntheticEvents(12, seed=2, sample_rate=8000, duration=0.7, n_classes=3), stft, progress=False)
    torch.manual_seed(0)
    model = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    train_classifier(model, train.X, train.y, epochs=6, lr=5e-3, batch_size=8, progress=False, seed=0)
    lmac = LMAC(model, layers=[model.net.block1, model.net.block2])
    hist = lmac.fit(train.X, epochs=3, batch_size=8, val=test.X, progress=False, seed=0)
    return stft, train, test, model, lmac, hist


def test_mask_shape_range_and_history(setup):
    stft, train, test, model, lmac, hist = setup
    mask = lmac.attribute(test.X)
    assert mask.shape == test.X.shape
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    for k in ("loss", "in", "out", "l1", "mask_mean", "val_fid_in", "val_mask_mean", "val_loss"):
        assert len(hist[k]) == 3, k
    assert 0 <= hist["best_epoch"] < 3
    assert hist["decoder_parameters"] == lmac.n_parameters() > 0
    # the training objective went down over the epochs
    assert hist["loss"][-1] < hist["loss"][0]


def test_mask_covers_every_frame_of_any_length(setup):
    _, _, test, _, lmac, _ = setup
    for T in (23, 64, 101):
        X = test.X[:2, :, :, :T] if T <= test.X.shape[-1] else torch.cat([test.X[:2]] * 2, -1)[..., :T]
        m = lmac.attribute(X)
        assert m.shape == X.shape
        # the last frame gets a real mask value from the decoder, not padding
        assert torch.isfinite(m[..., -1]).all()


def test_fitting_makes_mask_keep_the_decision(setup):
    """After fit the masked-in input keeps the decision more often than a random mask of equal mean."""
    _, _, test, model, lmac, _ = setup
    mask = lmac.attribute(test.X)
    with torch.no_grad():
        pred = model(test.X).argmax(1)
        keep = (model(mask * test.X).argmax(1) == pred).float().mean()
        g = torch.Generator().manual_seed(0)
        rnd = (torch.rand(test.X.shape, generator=g) < mask.mean()).float()
        keep_rnd = (model(rnd * test.X).argmax(1) == pred).float().mean()
    assert keep >= keep_rnd


def test_l1_term_does_not_scale_with_batch_size(setup):
    _, _, test, _, lmac, _ = setup
    lam = {"in": 4.0, "out": 0.2, "s": 0.4, "g": 0.0}
    with eval_mode(lmac.model, freeze=True):
        small = lmac._loss_terms(test.X[:4], None, lam, 0.7, "l1")
        big = lmac._loss_terms(torch.cat([test.X[:4]] * 3), None, lam, 0.7, "l1")
    assert small["l1"].item() == pytest.approx(big["l1"].item(), rel=1e-5)
    assert small["loss"].item() == pytest.approx(big["loss"].item(), rel=1e-4)


def test_targets(setup):
    _, _, test, model, lmac, _ = setup
    X = test.X[:4]
    with torch.no_grad():
        pred = model(X).argmax(1)
    base = lmac.attribute(X)
    assert torch.equal(lmac.attribute(X, target=pred), base)
    assert torch.equal(lmac.attribute(X, target=pred.tolist()), base)
    assert torch.allclose(lmac.attribute(X[:1], target=int(pred[0])), base[:1], atol=1e-5)
    wrong = (pred + 1) % 3
    with pytest.raises(InputError, match="not the classifier's decision"):
        lmac.attribute(X, target=wrong)
    with pytest.warns(UserWarning):
        assert torch.equal(lmac.attribute(X, target=wrong, on_target_mismatch="warn"), base)
    with pytest.raises(InputError, match="unknown target 7"):
        lmac.attribute(X, target=7)
    with pytest.raises(InputError, match="entries"):
        lmac.attribute(X, target=[0, 1])


def test_tuple_input_and_bad_inputs(setup):
    _, _, test, _, lmac, _ = setup
    out = lmac.attribute((test.X[:2],))
    assert isinstance(out, tuple) and out[0].shape == test.X[:2].shape
    bad = test.X[:2].clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        lmac.attribute(bad)
    with pytest.raises(InputError, match="frequency bins"):
        lmac.attribute(test.X[:2, :, :100])
    with pytest.raises(InputError, match=r"\(N, 1, F, T\)"):
        lmac.attribute(test.X[0])
    with pytest.raises(InputError, match="empty"):
        lmac.attribute(test.X[:0])


def test_not_fitted_and_bad_layers(setup):
    _, _, test, model, _, _ = setup
    with pytest.raises(NotFittedError):
        LMAC(model, layers=["net.block1"]).attribute(test.X[:1])
    with pytest.raises(InputError, match="no layer named"):
        LMAC(model, layers=["net.block9"])
    with pytest.raises(InputError, match="not a submodule"):
        LMAC(model, layers=[nn.Conv2d(1, 1, 1)])


def test_finetune_with_guidance(setup):
    _, train, _, model, lmac, _ = setup
    ft = LMAC(model, layers=lmac.layer_names)
    ft._build(lmac._config())
    ft.decoder.load_state_dict(lmac.decoder.state_dict())
    pairs = (train.X, train.extra["clean_X"])
    hist = ft.finetune(pairs, epochs=1, lambda_g=4.0, cct=0.0, batch_size=8, progress=False)
    assert hist["guided_fraction"][0] == pytest.approx(1.0)  # CCT 0 selects every sample
    assert hist["guidance"][0] > 0
    hist = ft.finetune(pairs, epochs=1, lambda_g=4.0, cct=1.01, batch_size=8, progress=False)
    assert hist["guided_fraction"][0] == 0.0 and hist["guidance"][0] == 0.0  # nothing passes an impossible CCT
    hist = ft.finetune(train, epochs=1, lambda_g=4.0, cct=0.0, guidance="bce", batch_size=8, progress=False)
    assert hist["guidance"][0] > 0
    with pytest.raises(InputError, match="pairs"):
        ft.fit(train.X, epochs=1, lambda_g=1.0, progress=False)


def test_guidance_pulls_the_mask_towards_the_clean_source(setup):
    """Fine-tuning with a large guidance weight lowers the distance of M⊙X_mix to X_clean."""
    _, train, _, model, lmac, _ = setup
    ft = LMAC(model, layers=lmac.layer_names)
    ft._build(lmac._config())
    ft.decoder.load_state_dict(lmac.decoder.state_dict())
    X, C = train.X, train.extra["clean_X"]

    def dist(m):
        return float((torch.log1p(m.attribute(X) * X) - torch.log1p(C)).abs().mean())

    before = dist(ft)
    ft.finetune((X, C), epochs=3, lambda_g=32.0, cct=0.0, batch_size=8, progress=False, lr=3e-3)
    assert dist(ft) < before


def test_save_load_round_trip_and_fingerprint(setup, tmp_path):
    stft, train, test, model, lmac, _ = setup
    path = lmac.save(tmp_path / "lmac.pt")
    again = LMAC.load(path, model)
    assert torch.equal(again.attribute(test.X), lmac.attribute(test.X))
    assert again.history["best_epoch"] == lmac.history["best_epoch"]
    # same architecture, other weights -> refused
    other = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    with pytest.raises(CheckpointError, match="weights differ"):
        LMAC.load(path, other)
    # other architecture -> refused
    other = build_classifier(3, stft, n_mels=16, channels=(4, 6))
    with pytest.raises(CheckpointError, match="architecture differs"):
        LMAC.load(path, other)
    # the file holds only tensors and JSON: plain weights_only loading works
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "lmac"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        LMAC.load(tmp_path / "junk.pt", model)


def test_captum_metrics_and_noise_tunnel(setup):
    _, _, test, model, lmac, _ = setup
    X = test.X[:3]

    def perturb(inputs):
        noise = 0.01 * torch.randn_like(inputs) * inputs.std()
        return noise, inputs - noise

    mask = lmac.attribute(X)
    with torch.no_grad():
        pred = model(X).argmax(1)
    inf = infidelity(model, perturb, X, mask, target=pred, n_perturb_samples=4)
    assert inf.shape == (3,) and torch.isfinite(inf).all()
    sens = sensitivity_max(lmac.attribute, X, perturb_radius=0.001, n_perturb_samples=3)
    assert sens.shape == (3,) and torch.isfinite(sens).all()
    nt = NoiseTunnel(lmac)
    smooth = nt.attribute(X, nt_type="smoothgrad", nt_samples=3, stdevs=float(X.std()) * 0.01)
    assert smooth.shape == X.shape and float(smooth.min()) >= 0 and float(smooth.max()) <= 1


def test_quantus_explain_func(setup):
    quantus = pytest.importorskip("quantus")
    from captum_lmac.metrics import quantus_explain_func

    _, _, test, model, lmac, _ = setup
    X = test.X[:4]
    with torch.no_grad():
        y = model(X).argmax(1).numpy()
    fn = quantus_explain_func(lmac)
    a = fn(model, X.numpy(), y)
    assert isinstance(a, np.ndarray) and a.shape == tuple(X.shape)
    scores = quantus.Sparseness(disable_warnings=True)(model=model, x_batch=X.numpy(), y_batch=y, a_batch=None,
                                                       explain_func=fn, device="cpu")
    assert len(scores) == 4 and all(0 <= s <= 1 for s in scores)


def test_log1p_mask_domain(setup):
    _, train, test, model, _, _ = setup
    lm = LMAC(model, layers=["net.block2"], mask_domain="log1p")
    lm.fit(train.X[:16], epochs=1, batch_size=8, progress=False)
    X = test.X[:2]
    ones = torch.ones_like(X)
    assert torch.allclose(apply_mask(X, ones, "log1p"), X, rtol=1e-4, atol=1e-5)
    assert torch.equal(apply_mask(X, torch.zeros_like(X), "log1p"), torch.zeros_like(X))
    assert lm.attribute(X).shape == X.shape


class SeqNet(nn.Module):
    """A 1-D classifier over time: collapses frequency, Conv1d + GRU, like a recurrent audio model."""

    def __init__(self, n_mels: int, n_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_mels, 12, 3, padding=1)
        self.relu = nn.ReLU()
        self.gru = nn.GRU(12, 10, batch_first=True)
        self.fc = nn.Linear(10, n_classes)

    def forward(self, z):
        h = self.relu(self.conv(z[:, 0]))  # (N, 12, T)
        out, _ = self.gru(h.transpose(1, 2))  # (N, T, 10)
        return self.fc(out.mean(1))


def test_one_dimensional_sequence_layers(setup):
    stft, train, test, _, _, _ = setup
    model = SpectrogramClassifier(LogMel(stft, n_mels=16), SeqNet(16, 3)).eval()
    lm = LMAC(model, layers=["net.conv"])
    lm.fit(train.X[:16], epochs=1, batch_size=8, progress=False)
    assert lm.attribute(test.X[:2]).shape == test.X[:2].shape
    lm = LMAC(model, layers=["net.gru"], sequence_layout="NTC")
    lm.fit(train.X[:16], epochs=1, batch_size=8, progress=False)
    assert lm.attribute(test.X[:2]).shape == test.X[:2].shape


def test_feature_domain(setup):
    """The same class masks the classifier's own features (the papers' "Mel" rows)."""
    _, train, test, model, _, _ = setup
    feat_model = model.in_feature_domain()
    Z = model.features(train.X[:16]).detach()
    lm = LMAC(feat_model, layers=["net.block2"])
    lm.fit(Z, epochs=1, batch_size=8, progress=False)
    Zt = model.features(test.X[:2]).detach()
    assert lm.attribute(Zt).shape == Zt.shape


# --- issue 14: a decoder on the representations only, no-hook decoder, loss options, caching, warnings ------------


def test_default_decoder_reads_representations_only(setup):
    _, _, test, model, lmac, _ = setup
    assert isinstance(lmac.decoder, LMACDecoder) and not lmac.decoder.use_input
    X = test.X[:2]
    with torch.no_grad(), eval_mode(model, freeze=True):
        _, feats = lmac.forward_with_features(X)
        a = lmac.decoder(feats, X)
        b = lmac.decoder(feats, torch.rand_like(X))  # other input values, same representations
    assert torch.equal(a, b)


def test_frequency_map_starts_from_the_mel_filterbank(setup):
    _, _, test, model, _, _ = setup
    lm = LMAC(model, layers=["net.block1", "net.block2"])
    lm._ensure_decoder(test.X[:1])
    fb = model.features.mel.fb  # (F, n_mels)
    expect = (fb / fb.sum(1, keepdim=True).clamp_min(1e-8)) @ interpolation_matrix(fb.shape[1], lm.decoder.rows)
    assert torch.allclose(lm.decoder.freq_map.weight, expect, atol=1e-6)


def test_without_layers_the_decoder_reads_the_input(setup, tmp_path):
    _, train, test, model, _, _ = setup
    lm = LMAC(model, layers=[])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = lm.fit(train.X[:16], epochs=2, batch_size=8, progress=False)
    assert isinstance(lm.decoder, InputMaskDecoder)
    m = lm.attribute(test.X[:3])
    assert m.shape == test.X[:3].shape and 0 <= float(m.min()) and float(m.max()) <= 1
    assert hist["loss"][-1] < hist["loss"][0]
    again = LMAC.load(lm.save(tmp_path / "noh.pt"), model)
    assert again.layer_names == [] and torch.equal(again.attribute(test.X[:3]), m)
    with pytest.raises(InputError, match="use_input"):
        LMAC(model, layers=[], use_input=True).fit(train.X[:8], epochs=1, progress=False)


def test_checkpoints_of_the_former_decoder_still_load(setup, tmp_path):
    _, _, test, model, lmac, _ = setup
    old = LMAC(model, layers=lmac.layer_names, use_input=True)
    with torch.no_grad(), eval_mode(model, freeze=True):
        _, feats = old.forward_with_features(test.X[:1])
    old.decoder = MaskDecoder(layer_shape_spec(feats), test.X.shape[2], hidden=8, use_input=True)
    again = LMAC.load(old.save(tmp_path / "old.pt"), model)
    assert isinstance(again.decoder, MaskDecoder)
    assert torch.equal(again.attribute(test.X[:2]), old.attribute(test.X[:2]))


def test_masked_passes_are_batched_and_the_out_loss_options(setup):
    _, _, test, model, lmac, _ = setup
    X = test.X[:3]
    M = lmac.attribute(X)
    with torch.no_grad(), eval_mode(model, freeze=True):
        a_in, a_out = lmac._masked_logits(X, M)
        assert torch.allclose(a_in, model(M * X), atol=1e-5)
        assert torch.allclose(a_out, model((1 - M) * X), atol=1e-5)
        y = model(X).argmax(1)
        p = torch.softmax(a_out, 1).gather(1, y[:, None])[:, 0]
        assert out_term(a_out, y, "bounded").item() == pytest.approx(-torch.log1p(-p).mean().item(), rel=1e-4)
        assert out_term(a_out, y, "ce").item() == pytest.approx(-F.cross_entropy(a_out, y).item(), rel=1e-5)
        sure = torch.tensor([[50.0, -50.0]])  # p_ŷ = 1 - 1e-44: finite, large
        assert torch.isfinite(out_term(sure, torch.tensor([0]), "bounded"))
    with pytest.raises(InputError, match="out_loss"):
        LMAC(model, layers=lmac.layer_names).fit(test.X[:4], epochs=1, out_loss="hinge", progress=False)


def test_history_records_every_term_and_mask_statistics(setup):
    _, _, _, _, lmac, hist = setup
    for k in ("loss", "in", "out", "out_term", "l1", "guidance", "guided_fraction", "mask_mean", "mask_sd"):
        assert len(hist[k]) == 3, k
    assert hist["loss"][0] == pytest.approx(4 * hist["in"][0] + 0.2 * hist["out_term"][0] + 2 * hist["l1"][0], rel=1e-4)
    assert set(hist["mask_stats"]) == {"n", "mean", "sd_of_clip_means", "sd_across_clips", "sd_within_clip"}
    assert isinstance(hist["warnings"], list) and hist["cached_outputs"] is True
    assert hist["fit_args"]["epochs"] == 3 and hist["fit_args"]["out_loss"] == "bounded"


def test_cached_classifier_outputs_give_the_same_fit(setup):
    """Caching the frozen classifier's outputs on the clean inputs changes nothing but the time."""
    _, train, test, model, lmac, _ = setup
    runs = []
    for gb in (1.0, 0.0):
        lm = LMAC(model, layers=lmac.layer_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = lm.fit(train.X[:24], epochs=2, batch_size=8, val=test.X[:6], progress=False, cache_outputs_gb=gb)
        runs.append((h, lm.attribute(test.X[:4])))
    (h1, m1), (h0, m0) = runs
    assert h1["cached_outputs"] and not h0["cached_outputs"]
    for k in ("loss", "in", "out", "val_loss"):
        assert h1[k] == pytest.approx(h0[k], rel=1e-3), k
    assert torch.allclose(m1, m0, atol=1e-3)


def test_fit_that_did_not_learn_warns(setup):
    _, _, test, model, lmac, _ = setup
    stuck = lmac.unfitted_copy()
    stuck._build(lmac._config())
    with torch.no_grad():
        for p in stuck.decoder.parameters():
            p.zero_()  # mask = sigmoid(0) = 0.5 everywhere, for every clip
    stats = stuck.mask_statistics(test.X[:6])
    assert stats["mean"] == pytest.approx(0.5) and stats["sd_across_clips"] == pytest.approx(0.0)
    problems = stuck.fit_warnings(stats)
    assert len(problems) == 3 and "stuck near 0.5" in problems[-1]
    assert lmac.fit_warnings(lmac.mask_statistics(test.X)) == lmac.history["warnings"]
    stuck._stats_data = (test.X[:6], None, None, None)
    hist = {}
    with pytest.warns(UserWarning, match="did not learn"):
        stuck._check_learned(hist)
    assert hist["warnings"] == problems


def test_unfitted_copy_and_on(setup):
    """The two randomisation checks: the fitted decoder on another classifier, or the same fit again."""
    _, train, test, model, lmac, hist = setup
    rand = copy.deepcopy(model)
    for k, (_, names) in enumerate(randomisation_stages(model), 1):
        randomise_(rand, names, seed=k)
    fixed = lmac.on(rand)
    assert fixed.decoder is lmac.decoder and fixed.model is rand
    assert not torch.equal(fixed.attribute(test.X[:2]), lmac.attribute(test.X[:2]))
    other = lmac.unfitted_copy(rand)
    assert other.decoder is None and other.layer_names == lmac.layer_names and other.model is rand
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a randomised classifier may well give a constant mask
        other.fit(train.X[:16], progress=False, **dict(hist["fit_args"], epochs=1))
    assert other.attribute(test.X[:2]).shape == test.X[:2].shape


def test_waveform_classifier_batched_passes_bind_the_phase_twice():
    stft = STFT(sample_rate=8000, n_fft=128, hop_length=32, win_length=64)
    data = to_spectrograms(SyntheticEvents(8, seed=0, sample_rate=8000, duration=0.7, n_classes=2), stft, progress=False)
    torch.manual_seed(0)
    model, info = build_architecture("waveform_cnn", 2, stft, width=4, n_mels=16)
    model.eval()
    lm = LMAC(model, layers=info["decoder_layers"][-2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = lm.fit(data, epochs=1, batch_size=4, progress=False)
    assert hist["cached_outputs"]
    X, P, n = data.X[:3], data.phase[:3], data.waveform.shape[-1]
    with model.using_phase(P, n), torch.no_grad(), eval_mode(model, freeze=True):
        M = lm.attribute(X)
        a_in, a_out = lm._masked_logits(X, M)
        assert torch.allclose(a_in, model(M * X), atol=1e-4)
        assert torch.allclose(a_out, model((1 - M) * X), atol=1e-4)


def test_sd_across_clips_is_the_per_bin_sd_averaged():
    M = torch.rand(5, 1, 7, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sd_across_clips(M), M.std(0).mean())
    assert torch.isnan(sd_across_clips(M[:1]))
