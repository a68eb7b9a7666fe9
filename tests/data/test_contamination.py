"""Tests of the out-of-domain contaminations and the WHAM!-style training mixtures."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from captum_lmac.audio import STFT
from captum_lmac.data import (
    ESC50,
    PAPER_SNR_DB,
    REFERENCE_CODE_SNR_DB,
    ContaminatedDataset,
    Contamination,
    NoiseFolder,
    SpeechFolder,
    SyntheticEvents,
    WhamMixtures,
    default_data_root,
    to_spectrograms,
)
from captum_lmac.errors import DataNotFoundError, InputError

ROOT = default_data_root()


def _need(sub: str) -> Path:
    path = ROOT / sub
    if not path.is_dir():
        pytest.skip(f"shared data set {sub!r} not found at {path} (set CAPTUM_LMAC_DATA to the data root)")
    return path


def _snr(meta) -> float:
    return float(10 * torch.log10(meta["clean"].double().pow(2).mean() / meta["interferer"].double().pow(2).mean()))


@pytest.fixture(scope="module")
def synth():
    return SyntheticEvents(20, seed=0, duration=1.5)


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    """A tiny noise folder built here (so these tests do not need the shared data)."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for k in range(3):
        sf.write(str(root / f"n{k}.flac"), (0.1 * rng.standard_normal(12000)).astype(np.float32), 16000)
    return root


def test_defaults_and_documented_snrs():
    assert PAPER_SNR_DB == 3.0
    assert REFERENCE_CODE_SNR_DB == {"clip": 12.0, "speech": 12.0, "white": 6.0}
    c = Contamination("white")
    assert c.snr_db == 3.0 and c.seed == 0
    assert Contamination.reference_code("white").snr_db == 6.0
    assert Contamination.reference_code("speech").snr_db == 12.0
    assert c.describe() == "white noise at 3 dB SNR"
    with pytest.raises(InputError, match="unknown contamination kind"):
        Contamination("pink")
    with pytest.raises(InputError, match="snr_db"):
        Contamination("white", snr_db=float("nan"))
    with pytest.raises(InputError, match="reference code has no"):
        Contamination.reference_code("ambient")


@pytest.mark.parametrize("snr", [3.0, 12.0, -2.0])
def test_white_noise_hits_the_snr(synth, snr):
    ds = ContaminatedDataset(synth, "white", snr_db=snr, seed=1)
    assert len(ds) == len(synth) and ds.classes == synth.classes
    for i in (0, 5, 13):
        mix, label, meta = ds[i]
        clean, base_label, base_meta = synth[i]
        assert label == base_label
        assert torch.equal(meta["clean"], clean)
        assert torch.allclose(mix, meta["clean"] + meta["interferer"], atol=1e-6)
        assert abs(_snr(meta) - snr) < 0.1
        assert meta["snr_db"] == snr and meta["kind"] == "white"
        # the synthetic set's own event-only "clean" is kept under another name
        assert torch.equal(meta["base_clean"], base_meta["clean"])


def test_clip_interferer_is_of_another_class(synth):
    ds = ContaminatedDataset(synth, "clip", snr_db=3.0, seed=0)
    seen = set()
    for i in range(len(ds)):
        mix, label, meta = ds[i]
        assert meta["interferer_label"] != label
        j = meta["interferer_index"]
        assert synth[j][1] == meta["interferer_label"]
        # the interferer is a scaled copy of source item j
        src = synth[j][0]
        scale = float(meta["interferer"].abs().max() / src.abs().max())
        assert torch.allclose(meta["interferer"], src * scale, atol=1e-5)
        assert abs(_snr(meta) - 3.0) < 0.1
        seen.add(meta["interferer_label"])
    assert len(seen) >= 5  # interferers come from many classes
    # a torch Subset works too (labels come from the parent without reading audio)
    sub = torch.utils.data.Subset(synth, [0, 1, 2, 3])
    sub_ds = ContaminatedDataset(sub, "clip", seed=0)
    for i in range(4):
        _, label, meta = sub_ds[i]
        assert meta["interferer_label"] != label and meta["interferer_index"] in range(4)


def test_clip_from_another_dataset_compares_class_names(synth):
    other = SyntheticEvents(12, seed=5, n_classes=4)  # classes are the first 4 names of synth
    ds = ContaminatedDataset(synth, "clip", source=other, seed=0)
    for i in range(8):
        _, label, meta = ds[i]
        assert meta["interferer_category"] != synth.classes[label]


def test_items_are_deterministic_per_seed_and_index(synth, noise_dir):
    for kind, src in (("white", None), ("clip", None), ("ambient", noise_dir)):
        a = ContaminatedDataset(synth, kind, source=src, seed=3)
        b = ContaminatedDataset(synth, kind, source=src, seed=3)
        c = ContaminatedDataset(synth, kind, source=src, seed=4)
        assert torch.equal(a[7][0], b[7][0])
        assert torch.equal(a[7][0], a[7][0])  # re-reading gives the same item
        # another seed (or another index) gives other interferers (a clip may coincide by chance)
        assert any(not torch.equal(a[i][2]["interferer"], c[i][2]["interferer"]) for i in range(6))
        assert not torch.equal(a[2][2]["interferer"][:100], a[7][2]["interferer"][:100])


def test_snr_range_and_options_object(synth):
    ds = Contamination("white", snr_db=(0.0, 10.0), seed=2).apply(synth)
    snrs = [ds[i][2]["snr_db"] for i in range(10)]
    assert all(0.0 <= s <= 10.0 for s in snrs) and len(set(snrs)) == 10
    for i in range(3):
        assert abs(_snr(ds[i][2]) - ds[i][2]["snr_db"]) < 0.1
    with pytest.raises(InputError, match="low, high"):
        ContaminatedDataset(synth, "white", snr_db=(5.0, 1.0))


def test_ambient_and_wham_mixtures(synth, noise_dir):
    wham = WhamMixtures(synth, noise_dir, seed=0)
    assert wham.snr_db == 0.0
    mix, label, meta = wham[4]
    assert label == synth[4][1]
    assert abs(_snr(meta)) < 0.1
    assert torch.equal(meta["noise"], meta["interferer"])
    assert torch.allclose(mix, meta["clean"] + meta["noise"], atol=1e-6)
    spec = to_spectrograms(wham, STFT(), limit=4, progress=False)
    assert spec.extra["clean_X"].shape == spec.X.shape
    assert torch.allclose(spec.extra["clean"], torch.stack([synth[i][0] for i in range(4)]))
    # the mixture spectrogram carries more energy than the clean one
    assert float(spec.X.pow(2).sum()) > float(spec.extra["clean_X"].pow(2).sum())


def test_source_errors(synth, tmp_path):
    with pytest.raises(DataNotFoundError, match="noise folder not found"):
        ContaminatedDataset(synth, "ambient", source=tmp_path / "none")
    with pytest.raises(InputError, match="random_segment"):
        ContaminatedDataset(synth, "speech", source=synth)
    with pytest.raises(InputError, match="at 8000 Hz"):
        ContaminatedDataset(synth, "clip", source=SyntheticEvents(10, sample_rate=8000))
    one_class = SyntheticEvents(4, n_classes=2)
    one_class.labels = [0, 0, 0, 0]
    with pytest.raises(InputError, match="two classes"):
        ContaminatedDataset(one_class, "clip")
    with pytest.raises(IndexError):
        ContaminatedDataset(synth, "white")[len(synth)]


def test_shared_speech_and_esc10_conditions():
    """The paper conditions on real data: a clip of another ESC-10 class and LJSpeech at 3 dB."""
    esc = ESC50(_need("esc10"), folds=5)
    speech = SpeechFolder(_need("ljspeech32"))
    clip = ContaminatedDataset(esc, "clip", snr_db=3.0, seed=0)
    for i in (0, 41, 79):
        mix, label, meta = clip[i]
        assert mix.shape == (80000,)
        assert meta["interferer_label"] != label
        assert meta["interferer_category"] != esc.classes[label]
        assert meta["interferer_path"] != meta["path"]
        assert abs(_snr(meta) - 3.0) < 0.1
    sp = ContaminatedDataset(esc, "speech", snr_db=12.0, source=speech, seed=0)
    mix, label, meta = sp[10]
    assert abs(_snr(meta) - 12.0) < 0.1 and meta["kind"] == "speech" and meta["fold"] == 5
    # default sources come from the data root
    amb = ContaminatedDataset(esc, "ambient", seed=0)
    assert isinstance(amb.source, NoiseFolder) and abs(_snr(amb[0][2]) - 3.0) < 0.1
