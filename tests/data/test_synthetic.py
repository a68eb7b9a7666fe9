"""Tests of SyntheticEvents (the embedded default data set) and to_spectrograms."""

import numpy as np
import pytest
import torch

from captum_lmac.audio import STFT
from captum_lmac.data import SpectrogramSet, SyntheticEvents, to_spectrograms
from captum_lmac.data.synthetic import CLASSES
from captum_lmac.errors import InputError


def test_items_are_deterministic_per_seed_and_index():
    a, b = SyntheticEvents(20, seed=3), SyntheticEvents(20, seed=3)
    for i in (0, 7, 19):
        wa, la, ma = a[i]
        wb, lb, mb = b[i]
        assert la == lb and torch.equal(wa, wb) and torch.equal(ma["clean"], mb["clean"])
    # item i does not depend on n_items (only on seed and i)
    assert torch.equal(SyntheticEvents(50, seed=3)[7][0], a[7][0])
    # another seed gives other audio
    assert not torch.equal(SyntheticEvents(20, seed=4)[7][0], a[7][0])


def test_shape_dtype_range_and_negative_index():
    ds = SyntheticEvents(12, seed=0, duration=1.5)
    w, label, meta = ds[0]
    assert w.shape == (24000,) and w.dtype == torch.float32
    assert 0 < w.abs().max() <= 0.9 + 1e-6
    assert 0.0 <= meta["onset"] < meta["offset"] <= 1.5
    assert torch.equal(ds[-1][0], ds[11][0])
    with pytest.raises(IndexError):
        ds[12]


def test_balanced_labels():
    ds = SyntheticEvents(40, seed=0, n_classes=10)
    labels = [ds[i][1] for i in range(len(ds))]
    assert np.bincount(labels, minlength=10).tolist() == [4] * 10
    assert ds.classes == [c[0] for c in CLASSES]
    assert len(SyntheticEvents(10, n_classes=4).classes) == 4


def test_clean_plus_background_is_the_waveform():
    ds = SyntheticEvents(10, seed=1)
    for i in range(0, 10, 3):
        w, _, meta = ds[i]
        assert torch.allclose(meta["clean"] + meta["background"], w, atol=1e-6)
        # the event is silent outside [onset, offset)
        on, off = int(meta["onset"] * ds.sample_rate), int(meta["offset"] * ds.sample_rate)
        assert meta["clean"][:on].abs().max() == 0 if on > 0 else True
        assert meta["clean"][off:].abs().max() == 0 if off < len(w) else True
        assert meta["clean"][on:off].abs().max() > 0


def test_mixture_mode_adds_an_interferer_of_another_class():
    ds = SyntheticEvents(20, seed=2, mixture=True, mixture_snr_db=0.0)
    for i in range(20):
        w, label, meta = ds[i]
        assert meta["interferer_label"] != label
        assert 0 <= meta["interferer_label"] < 10
        total = meta["clean"] + meta["background"] + meta["interferer"]
        assert torch.allclose(total, w, atol=1e-6)
        # 0 dB between the target event and the interferer (powers over the whole clip)
        snr = 10 * torch.log10(meta["clean"].pow(2).mean() / meta["interferer"].pow(2).mean())
        assert abs(float(snr)) < 0.05


def _features(w: torch.Tensor, sr: int) -> list:
    """Hand-made descriptors of a clean event: log centroid, centroid slope, log bandwidth, activity."""
    X = torch.stft(w.double(), 512, 256, window=torch.hann_window(512, dtype=torch.float64), return_complex=True)
    X = X.abs() ** 2
    freqs = torch.fft.rfftfreq(512, 1 / sr).double()
    energy = X.sum(0)
    active = energy > 0.01 * energy.max()
    cen = (X * freqs[:, None]).sum(0) / (energy + 1e-12)
    t, c = torch.arange(len(energy)).double()[active], cen[active]
    slope = ((t - t.mean()) * (c - c.mean())).sum() / ((t - t.mean()) ** 2).sum()
    Xa = X[:, active]
    spread = ((Xa * (freqs[:, None] - c[None]) ** 2).sum(0) / Xa.sum(0)).sqrt()  # per-frame bandwidth
    return [
        float(torch.log(c.mean())), float(slope) / 100, float(torch.log(spread.mean())), float(active.double().mean())
    ]


def test_classes_are_distinguishable():
    """The 10 classes differ in spectral centroid, glide direction, bandwidth and duration."""
    ds = SyntheticEvents(80, seed=0)
    feats, labels = [], []
    for i in range(len(ds)):
        _, label, meta = ds[i]
        feats.append(_features(meta["clean"], ds.sample_rate))
        labels.append(label)
    feats, labels = torch.tensor(feats), torch.tensor(labels)
    mean = {ds.classes[c]: feats[labels == c].mean(0) for c in range(10)}
    hz = {k: float(torch.exp(v[0])) for k, v in mean.items()}
    # physically motivated orderings of the spectral centroid
    assert hz["thump"] < 150 and hz["engine"] < 300, hz
    assert 300 < hz["bark"] < 1000, hz
    assert hz["bird"] > 4000, hz
    assert hz["engine"] < hz["bark"] < hz["tone_burst"] < hz["bird"], hz
    # glide direction and bandwidth (pure tone narrow, band-pass noise wider, clicks broadband)
    assert mean["chirp_up"][1] > 0.5 and mean["chirp_down"][1] < -0.5
    assert mean["tone_burst"][2] < mean["noise_burst"][2] < mean["clock_tick"][2]
    # a nearest-centroid rule on these four numbers separates held-out items
    z = (feats - feats.mean(0)) / feats.std(0)
    train = torch.arange(len(ds)) < 50
    centroids = torch.stack([z[train & (labels == c)].mean(0) for c in range(10)])
    pred = torch.cdist(z[~train], centroids).argmin(1)
    acc = float((pred == labels[~train]).float().mean())
    assert acc >= 0.9, f"nearest-centroid accuracy {acc}"


def test_constructor_checks():
    with pytest.raises(InputError, match="n_classes"):
        SyntheticEvents(10, n_classes=1)
    with pytest.raises(InputError, match="n_items"):
        SyntheticEvents(0)
    with pytest.raises(InputError, match="too short"):
        SyntheticEvents(10, duration=0.5)


def test_to_spectrograms_keeps_clean_and_subsets():
    stft = STFT()
    ds = SyntheticEvents(6, seed=0, mixture=True)
    spec = to_spectrograms(ds, stft, batch_size=4, progress=False)
    assert isinstance(spec, SpectrogramSet) and len(spec) == 6
    T = stft.n_frames(ds.n_samples)
    assert spec.X.shape == spec.phase.shape == (6, 1, 513, T)
    assert spec.y.tolist() == [0, 1, 2, 3, 4, 5]
    for k in ("clean", "background", "interferer"):
        assert spec.extra[k].shape == (6, ds.n_samples)
        assert spec.extra[k + "_X"].shape == spec.X.shape
    assert spec.classes == ds.classes
    sub = spec.subset([4, 1])
    assert sub.y.tolist() == [4, 1] and torch.equal(sub.extra["clean_X"][0], spec.extra["clean_X"][4])
    batches = list(spec.batches(4))
    assert [b.shape[0] for b in batches] == [4, 2]
    assert sorted(torch.cat(list(spec.batches(4, shuffle=True))).sum((1, 2, 3)).tolist()) == pytest.approx(
        sorted(spec.X.sum((1, 2, 3)).tolist())
    )
    limited = to_spectrograms(ds, stft, limit=2, keep=(), progress=False)
    assert len(limited) == 2 and limited.extra == {}
