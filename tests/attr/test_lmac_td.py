"""LMAC-TD: fit, attribute (the explanation waveform), explain, Captum interplay, save / load."""

import pytest
import torch
from captum.attr import NoiseTunnel
from captum.metrics import infidelity

from captum_lmac import STFT, CheckpointError, InputError, LMACTD, NotFittedError, SyntheticEvents, to_spectrograms
from captum_lmac.nn.zoo import build_architecture
from captum_lmac.training import build_classifier, train_classifier

SMALL = dict(channels=32, masker_kwargs=dict(bottleneck=16, hidden=32, blocks=2, repeats=1))


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    stft = STFT(sample_rate=8000, n_fft=256, hop_length=64, win_length=128)
    data = to_spectrograms(SyntheticEvents(16, seed=0, n_classes=3, duration=1.0, sample_rate=8000), stft,
                           progress=False)
    torch.manual_seed(0)
    wave, _ = build_architecture("waveform_cnn", 3, stft, width=4, n_mels=16)
    train_classifier(wave.model, data.waveform, data.y, epochs=2, augment=False, progress=False)
    td = LMACTD(wave, layers=["model.block2", "model.block3"], stft=stft, **SMALL)
    hist = td.fit(data, epochs=2, batch_size=8, val=data.waveform[:6], autoencoder_steps=3, progress=False)
    return stft, data, wave, td, hist


def test_fit_history_and_filterbank(setup):
    _, _, _, td, hist = setup
    assert len(hist["loss"]) == 2 and {"in", "out", "reg", "mask_mean", "val_fid_in"} <= set(hist)
    assert hist["autoencoder_si_sdr"] >= 30  # the pretrained filterbank reconstructs the audio
    assert td.layer_names == ["block2", "block3"]  # names inside the waveform model
    assert not any(p.requires_grad for p in td.decoder["encoder"].parameters())  # frozen by default


def test_attribute_is_the_explanation_waveform(setup):
    stft, data, wave, td, _ = setup
    x = data.waveform[:4]
    x_in = td.attribute(x)
    assert x_in.shape == x.shape and torch.isfinite(x_in).all()
    out = td.explain(x)
    assert torch.allclose(out["x_in"], x_in)
    assert out["mask"].shape[:2] == (4, 32) and 0 <= float(out["mask"].min()) <= float(out["mask"].max()) <= 1
    assert out["stft_mask"].shape == stft.magnitude(x).shape
    # x_in + x_out = Dec(Enc(x)) ≈ x (the filterbank is linear in the masked representation)
    assert float(((out["x_in"] + out["x_out"] - x).pow(2).mean() / x.pow(2).mean())) < 1e-3
    assert isinstance(td.attribute((x,)), tuple)
    pred = out["logits"].argmax(1)
    td.attribute(x, target=pred.tolist())
    with pytest.raises(InputError, match="not the classifier's decision"):
        td.attribute(x, target=((pred + 1) % 3).tolist())


def test_captum_infidelity_and_noise_tunnel_run(setup):
    _, data, _, td, _ = setup
    x = data.waveform[:2]

    def perturb(inp):
        noise = 0.01 * torch.randn_like(inp)
        return noise, inp - noise

    pred = td.explain(x)["logits"].argmax(1)
    score = infidelity(td.model, perturb, x, td.attribute(x), target=pred, n_perturb_samples=2)
    assert score.shape == (2,) and torch.isfinite(score).all()
    nt = NoiseTunnel(td).attribute(x, nt_samples=2, stdevs=0.001, on_target_mismatch="ignore")
    assert nt.shape == x.shape


def test_spectrogram_classifier_through_the_adapter_and_alpha_zero(setup):
    stft, data, _, _, _ = setup
    torch.manual_seed(1)
    clf = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    td = LMACTD(clf, layers=["net.block1"], alpha=1.0, stft=stft, **SMALL)
    td.fit(data.waveform, epochs=1, batch_size=8, autoencoder_steps=0, progress=False)
    assert td.layer_names == ["model.net.block1"] and td.attribute(data.waveform[:2]).shape == (2, 8000)
    zero = LMACTD(clf, layers=[], alpha=0.0, stft=stft, **SMALL)
    zero.fit(data.waveform, epochs=1, batch_size=8, autoencoder_steps=0, progress=False)
    assert "psi" not in zero.decoder
    with pytest.raises(InputError, match="give layers"):
        LMACTD(clf, layers=[], alpha=0.5, stft=stft)


def test_save_load_and_refusals(setup, tmp_path):
    stft, data, wave, td, _ = setup
    path = td.save(tmp_path / "td.pt")
    back = LMACTD.load(path, wave)
    x = data.waveform[:3]
    assert torch.allclose(back.attribute(x), td.attribute(x), atol=1e-6)
    other, _ = build_architecture("waveform_cnn", 3, stft, width=4, n_mels=16)
    with pytest.raises(CheckpointError, match="different classifier"):
        LMACTD.load(path, other)
    with pytest.raises(NotFittedError):
        LMACTD(wave, layers=["model.block2"], stft=stft).attribute(x)


@pytest.mark.parametrize("bad, message", [
    (torch.randn(2, 1, 8000), "waveforms \\(N, samples\\)"),
    (torch.full((2, 8000), float("nan")), "NaN"),
    (torch.zeros(2, 8000, dtype=torch.int16), "floating-point"),
    (torch.randn(2, 10), "too short"),
])
def test_bad_inputs(setup, bad, message):
    td = setup[3]
    with pytest.raises(InputError, match=message):
        td.attribute(bad)


def test_bad_settings(setup):
    stft, data, wave, _, _ = setup
    with pytest.raises(InputError, match="alpha"):
        LMACTD(wave, layers=["model.block2"], alpha=1.5, stft=stft)
    with pytest.raises(InputError, match="masker"):
        LMACTD(wave, layers=["model.block2"], masker="rnn", stft=stft)
    with pytest.raises(InputError, match="epochs"):
        LMACTD(wave, layers=["model.block2"], stft=stft).fit(data.waveform, epochs=0)
