"""Every test architecture through the harness: every method, waveform models included (phase bound per chunk)."""

import pytest
import torch

from captum_lmac import STFT, SyntheticEvents, to_spectrograms
from captum_lmac.benchmark import run_benchmark
from captum_lmac.nn.zoo import build_architecture
from captum_lmac.training import train_classifier
from toys import TINY_ARCHITECTURES

SR = 8000
TINY = {k: v for k, v in TINY_ARCHITECTURES.items() if k != "torchscript"}
METHODS = ["saliency", "smoothgrad", "ig", "gradcam", "gradcam++", "guided_backprop", "guided_gradcam",
           "gradient_shap", "kernel_shap", "lmac", "lmac_ft", "l2i"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


@pytest.fixture(scope="module")
def zoo_data():
    stft = STFT(sample_rate=SR, n_fft=256, hop_length=64, win_length=128)
    mk = lambda n, s: to_spectrograms(SyntheticEvents(n, seed=s, n_classes=3, duration=1.0, sample_rate=SR), stft,
                                      progress=False)
    return stft, {"train": mk(12, 0), "val": mk(6, 1), "test": mk(6, 2)}


def tiny_architecture(name, stft, data):
    torch.manual_seed(0)
    model, info = build_architecture(name, 3, stft, **TINY[name])
    waveform = info["input"] == "waveform"
    train, val = data["train"], data["val"]
    inner = model.model if waveform else model
    pick = (lambda s: s.waveform) if waveform else (lambda s: s.X)
    train_classifier(inner, pick(train), train.y, pick(val), val.y, epochs=2, augment=False, progress=False)
    return model.eval(), info


@pytest.mark.parametrize("name", list(TINY))
def test_every_method_explains_every_architecture(name, zoo_data, tmp_path):
    stft, data = zoo_data
    model, info = tiny_architecture(name, stft, data)
    cfg = {
        "suite": f"zoo-{name}", "methods": METHODS, "conditions": ["in-domain", "white"], "domains": ["stft"],
        "cam_layer": info["cam_layer"], "sanity": {"n_clips": 3, "methods": ["lmac", "gradcam"]},
        "report": {"n_examples": 1},
        "method_options": {"smoothgrad": {"nt_samples": 2}, "ig": {"n_steps": 3}, "gradient_shap": {"n_samples": 2},
                           "kernel_shap": {"n_samples": 6, "grid": [4, 4], "perturbations_per_eval": 6}},
        "lmac": {"layers": [h.config() if hasattr(h, "config") else h for h in info["decoder_layers"]],
                 "fit": {"epochs": 1, "batch_size": 6}},
        "lmac_ft": {"pairs": "synthetic", "fit": {"epochs": 1, "batch_size": 6}},  # waveform models: pairs with phase
        "l2i": {"layers": [h.config() if hasattr(h, "config") else h for h in info["decoder_layers"][-2:]],
                "init": {"n_components": 4, "hidden": 8}, "fit": {"epochs": 1, "nmf_iter": 3}, "thresholds": [0.2]},
    }
    res = run_benchmark(model, stft, data, config=cfg, out_dir=tmp_path, progress=False)
    names = {r["method"] for r in res["rows"]}
    assert names == set(METHODS) - {"l2i"} | {"l2i (RT=0.2)"}
    for r in res["rows"]:
        assert 0 <= r["metrics"]["MM"]["mean"] <= 1 and r["metrics"]["FidIn"]["n"] == 6
    assert len(res["sanity"]["methods"]["lmac"]["mean"]) >= 2
    assert (tmp_path / "report.html").is_file()


@pytest.mark.parametrize("name", ["conv1d", "waveform_cnn"])
def test_lmac_td_rows_through_the_harness(name, zoo_data, tmp_path):
    stft, data = zoo_data
    model, info = tiny_architecture(name, stft, data)
    small = {"channels": 32, "masker_kwargs": {"bottleneck": 16, "hidden": 32, "blocks": 2, "repeats": 1}}
    cfg = {
        "suite": f"td-{name}", "methods": ["gradcam", "lmac_td", "lmac_td_a0"], "conditions": ["in-domain", "white"],
        "domains": ["stft"], "cam_layer": info["cam_layer"], "report": {"n_examples": 1},
        "sanity": {"n_clips": 3, "methods": ["lmac_td", "gradcam"]},
        "lmac_td": {"layers": [h.config() if hasattr(h, "config") else h for h in info["decoder_layers"][-2:]],
                    "init": small, "fit": {"epochs": 1, "batch_size": 6, "autoencoder_steps": 2}},
    }
    res = run_benchmark(model, stft, data, config=cfg, out_dir=tmp_path, progress=False)
    rows = {r["method"]: r for r in res["rows"] if r["condition"] == "in-domain"}
    assert set(rows) == {"gradcam", "lmac_td", "lmac_td_a0"}
    td = rows["lmac_td"]["metrics"]
    assert 0 <= td["MM"]["mean"] <= 1 and td["FidIn"]["n"] == 6 and "SI-SDR" in td  # the clean event is known
    assert res["fits"]["lmac_td (stft)"]["epochs_run"] == 1
    assert len(res["sanity"]["methods"]["lmac_td"]["mean"]) >= 2
    wavs = [m["wav"] for ex in res["examples"] for c in ex["clips"] for m in c["methods"] if m["name"] == "lmac_td"]
    assert wavs and all((tmp_path / w).is_file() for w in wavs)
