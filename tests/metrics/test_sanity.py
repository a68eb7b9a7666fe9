"""Sanity check: SSIM and cascading model randomisation (GradCAM vs L-MAC)."""

import numpy as np
import pytest
import torch

from captum_lmac.attr import LMAC, make_baseline
from captum_lmac.benchmark.methods import lmac_on
from captum_lmac.benchmark.media import plot_cascading
from captum_lmac.metrics import cascading_randomisation, randomisation_stages, randomise_, ssim
from captum_lmac.metrics.sanity import chance_ssim
from captum_lmac.errors import InputError
from captum_lmac.metrics import fast_complexity, fast_sparseness, quantus_complexity, quantus_sparseness


def test_ssim_identical_is_one_and_falls_with_noise():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 40, 50, generator=g)
    assert torch.allclose(ssim(a, a), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ssim(a, 3 * a), torch.ones(3, dtype=torch.float64))  # per-sample max normalisation
    noisy = [ssim(a, (a + s * torch.rand(a.shape, generator=g)).clamp(0, 1)).mean().item() for s in (0.1, 0.5, 2.0)]
    assert 1 > noisy[0] > noisy[1] > noisy[2]
    other = torch.rand(3, 1, 40, 50, generator=g)
    assert ssim(a, other).abs().max() < 0.2
    with pytest.raises(InputError):
        ssim(a, a[:, :, :10])


def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 30, 45, generator=g)
    b = (a + 0.3 * torch.rand(2, 30, 45, generator=g)).clamp(0, 1)
    ours = ssim(a, b)
    for i in range(2):
        x, y = (a[i] / a[i].max()).double().numpy(), (b[i] / b[i].max()).double().numpy()
        ref = skm.structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-6)


def test_fast_complexity_scores_equal_quantus():
    g = torch.Generator().manual_seed(2)
    M = torch.rand(4, 1, 20, 30, generator=g) ** 3
    M[1] = 0  # undefined → NaN in both
    M[3, 0, :10] = 0
    np.testing.assert_allclose(fast_sparseness(M), quantus_sparseness(M), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(fast_complexity(M), quantus_complexity(M), rtol=1e-9, equal_nan=True)


def test_stages_and_randomise(tiny):
    model, _, _ = tiny
    stages = randomisation_stages(model)
    assert [s[0] for s in stages] == ["fc", "block2", "block1", "bn0"]
    import copy

    rand = copy.deepcopy(model)
    randomise_(rand, ["net.fc"], seed=0)
    assert not torch.equal(rand.net.fc.weight, model.net.fc.weight)
    assert torch.equal(rand.net.block2.conv1.weight, model.net.block2.conv1.weight)


@pytest.fixture(scope="module")
def fitted_lmac(tiny):
    model, _, data = tiny
    lm = LMAC(model, ["net.block1", "net.block2"])
    lm.fit(data["train"].X, epochs=2, batch_size=12, progress=False)
    return lm


def test_cascading_randomisation_gradcam_vs_lmac(tiny, fitted_lmac, tmp_path):
    model, _, data = tiny
    X = data["test"].X[:4]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explainers = {
        "gradcam": lambda m, x, t: make_baseline("gradcam", m).attribute(x, t),
        "lmac": lambda m, x, t: lmac_on(m, fitted_lmac).attribute(x),
    }
    res = cascading_randomisation(model, X, explainers, seed=0, progress=False)
    assert res["stages"] == ["none", "fc", "+block2", "+block1", "+bn0"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model itself is untouched
    for name in explainers:
        mean = res["methods"][name]["mean"]
        assert len(mean) == 5 and mean[0] == pytest.approx(1.0)
        assert all(-1 <= v <= 1 + 1e-9 for v in mean)
        assert len(res["methods"][name]["per_sample"][0]) == 4
    # fully randomised: the GradCAM maps change; L-MAC's unchanged decoder reads the randomised layers
    assert res["methods"]["gradcam"]["mean"][-1] < 0.95
    assert res["methods"]["lmac"]["mean"][-1] < 1.0
    # L-MAC's explainer really uses the randomised classifier
    import copy

    rand = copy.deepcopy(model)
    randomise_(rand, ["net.fc", "net.block2", "net.block1", "net.bn0"], seed=1)
    assert not torch.allclose(lmac_on(rand, fitted_lmac).attribute(X), fitted_lmac.attribute(X))
    png = plot_cascading(res, tmp_path / "sanity.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_only_some_stages_and_the_chance_level(tiny, fitted_lmac, tmp_path):
    model, _, data = tiny
    X = data["test"].X[:4]
    calls = []

    def counted(m, x, t):
        calls.append(m is model)
        return lmac_on(m, fitted_lmac).attribute(x)

    res = cascading_randomisation(model, X, {"lmac": counted}, seed=0, progress=False, only={"lmac": [4]})
    r = res["methods"]["lmac"]
    assert r["mean"][1:4] == [None, None, None] and r["per_sample"][1] is None and r["mean"][-1] is not None
    assert calls == [True, True, False]  # the original twice (stage "none"), then the last stage only
    M = fitted_lmac.attribute(X)
    assert r["chance"] == pytest.approx(float(chance_ssim(M).mean()), abs=1e-6)
    assert chance_ssim(M[:1]).shape == (1,) and np.isnan(chance_ssim(M[:1])[0])
    assert plot_cascading(res, tmp_path / "only.png").is_file()
    with pytest.raises(InputError, match="without an explainer"):
        cascading_randomisation(model, X, {"lmac": counted}, progress=False, only={"gradcam": [1]})


def test_runner_sanity_result(tiny_run):
    res, out, _ = tiny_run
    san = res["sanity"]
    assert set(san["methods"]) == {"lmac", "gradcam", "lmac (refit)"}  # sanity.refit "last" by default
    assert san["methods"]["gradcam"]["mean"][0] == pytest.approx(1.0)
    assert san["methods"]["lmac"]["mean"][0] == pytest.approx(1.0)
    refit = san["methods"]["lmac (refit)"]["mean"]
    assert refit[0] == pytest.approx(1.0) and all(v is None for v in refit[1:-1]) and -1 <= refit[-1] <= 1
    assert san["decoder"]["lmac (refit)"].startswith("refitted") and san["decoder"]["lmac"].startswith("fitted decoder")
    fits = san["refit"]["fits"]["lmac (refit)"]
    assert len(fits) == 1 and fits[0]["epochs"] >= 1 and "warnings" in fits[0]
    assert all(0 <= r["chance"] <= 1 for r in san["methods"].values())
    assert (out / san["plot"]).is_file()
