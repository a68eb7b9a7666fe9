"""Bad input to every method's fit and attribute (L-MAC, L2I, LMAC-ZS, the Captum baselines)."""

import pytest
import torch

from captum_lmac import L2I, LMAC, CheckpointError, InputError, NotFittedError, make_baseline
from captum_lmac.attr import LMACZS
from captum_lmac.training import build_classifier

LAYERS = ["net.block1", "net.block2"]


def _bad_inputs():
    """(make(X) -> bad input, expected message) for an (N, 1, F, T) magnitude batch X."""
    def set0(X, v):
        X = X.clone()
        X[0, 0, 3, 3] = v
        return X
    return [
        (lambda X: X.numpy(), "must be a tensor"),
        (lambda X: [X], "must be a tensor"),
        (lambda X: (X, X), "tuple of 2"),
        (lambda X: X[0], r"add the batch dimension"),
        (lambda X: X[:, 0], r"\(N, 1, F, T\)"),
        (lambda X: X.repeat(1, 2, 1, 1), r"\(N, 1, F, T\)"),
        (lambda X: X[:0], "empty"),
        (lambda X: X[..., :0], "empty"),
        (lambda X: X.round().long(), "dtype torch.int64"),
        (lambda X: X > 0.5, "dtype torch.bool"),
        (lambda X: X.to(torch.complex64), "complex"),
        (lambda X: X[:, :, :64], "64 frequency bins .* fitted on 129"),
        (lambda X: set0(X, float("nan")), "NaN or infinite"),
        (lambda X: set0(X, float("inf")), "NaN or infinite"),
        (lambda X: -X, "negative values"),
        (lambda X: 20 * torch.log10(X + 1e-6), "negative values"),           # a dB spectrogram
        (lambda X: (X - X.mean()) / X.std(), "negative values"),             # a normalised one
        (lambda X: torch.cat([X[:1], torch.zeros_like(X[:1])]), r"all zeros for sample\(s\) \[1\]"),
    ]


@pytest.mark.parametrize("make, match", _bad_inputs())
def test_lmac_attribute(lmac, clips, make, match):
    with pytest.raises(InputError, match=match):
        lmac.attribute(make(clips.X[:2]))


@pytest.mark.parametrize("make, match", _bad_inputs())
def test_l2i_attribute(l2i, clips, make, match):
    with pytest.raises(InputError, match=match):
        l2i.attribute(make(clips.X[:2]))


@pytest.mark.parametrize("make, match", [m for m in _bad_inputs() if "129" not in m[1]] + [
    (lambda X: X[:, :, :8], "8 frequency bins .* fitted on 16")])
def test_lmac_zs_attribute(zs, zs_data, make, match):
    with pytest.raises(InputError, match=match):
        zs.attribute(make(zs_data[0][:2]))


@pytest.mark.parametrize("make, match", [m for m in _bad_inputs() if not any(
    k in m[1] for k in ("fitted on", "tuple", "batch dimension"))])
def test_baseline_attribute(model, clips, make, match):
    with pytest.raises(InputError, match=match):
        make_baseline("saliency", model).attribute(make(clips.X[:2]))


@pytest.mark.parametrize("target, match", [
    (3, "unknown target 3: the model has 3 outputs"),
    (-1, "non-negative"),
    (True, "not a bool"),
    (0.5, "must be None, int"),
    ([0, 1, 2], "3 entries for 2 inputs"),
    (torch.tensor([0.0, 1.0]), "integer class indices"),
])
def test_targets(lmac, l2i, clips, target, match):
    for method in (lmac, l2i):
        with pytest.raises(InputError, match=match):
            method.attribute(clips.X[:2], target=target)


def test_lmac_target_mismatch_and_option(lmac, clips):
    pred = lmac.model(clips.X[:1]).argmax(1)
    with pytest.raises(InputError, match="not the classifier's decision"):
        lmac.attribute(clips.X[:1], target=(int(pred) + 1) % 3)
    with pytest.raises(InputError, match="on_target_mismatch"):
        lmac.attribute(clips.X[:1], target=(int(pred) + 1) % 3, on_target_mismatch="maybe")


def test_valid_edge_inputs_give_finite_masks(lmac, l2i, zs, clips, zs_data):
    """float64 is cast, tiny magnitudes and noise-level negatives (NoiseTunnel) are fine: never NaN."""
    X = clips.X[:2]
    for inp in (X.double(), X * 1e-12, X - 1e-3 * X.amax()):
        for method in (lmac, l2i):
            m = method.attribute(inp)
            assert m.dtype == torch.float32 and torch.isfinite(m).all() and 0 <= float(m.min()) <= float(m.max()) <= 1
    m = zs.attribute(zs_data[0][:2].double())
    assert torch.isfinite(m).all()


def test_too_short_for_the_classifier(deep_lmac, deep_model, stft, wave):
    X, _ = stft.analyze(wave[:300])  # passes the STFT: 5 frames; the 4-block CNN needs 16
    with pytest.raises(InputError, match="has 5 frames but the classifier needs at least 16 frames"):
        deep_lmac.attribute(X)
    with pytest.raises(InputError, match="needs at least 16 frames"):
        make_baseline("saliency", deep_model).attribute(X, target=0)
    with pytest.raises(InputError, match="needs at least 16 frames"):
        make_baseline("gradcam", deep_model).attribute(X)


def test_not_fitted(model, clips):
    for method in (LMAC(model, layers=LAYERS), L2I(model, layers=LAYERS, n_components=4)):
        with pytest.raises(NotFittedError, match="call fit"):
            method.attribute(clips.X[:1])
        with pytest.raises(NotFittedError):
            method.save("never.pt")


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs must be >= 1, got 0"),
    (dict(epochs=-3), "epochs must be >= 1, got -3"),
    (dict(epochs=2.5), "epochs must be an integer"),
    (dict(epochs="10"), "epochs must be an integer"),
    (dict(epochs=None), "epochs must be an integer"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(lr=-1e-3), "lr must be > 0"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(lr=1e38), r"lr must be <= 1e\+06"),
    (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
    (dict(seed="zero"), "seed must be an integer"),
])
@pytest.mark.parametrize("method", ["lmac", "l2i", "lmac_zs"])
def test_fit_options(model, clips, zs_classifier, zs_data, method, kwargs, match):
    if method == "lmac":
        m, data = LMAC(model, layers=LAYERS), clips.X
    elif method == "l2i":
        m, data = L2I(model, layers=LAYERS, n_components=4, hidden=4), clips.X
    else:
        m, data = LMACZS(zs_classifier, layers=["audio_encoder.block1"], hidden=8), zs_data
    with pytest.raises(InputError, match=match):
        m.fit(data, progress=False, **kwargs)
    assert m.decoder is None  # nothing counts as fitted
    with pytest.raises(NotFittedError):
        m.attribute(data[0] if isinstance(data, tuple) else data[:1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(lambda_in=float("nan")), "lambda_in must be a finite number"),
    (dict(lambda_out=-0.2), "lambda_out must be >= 0"),
    (dict(lambda_s="0.4"), "lambda_s must be a number"),
    (dict(cct=float("inf")), "cct must be a finite number"),
    (dict(lambda_g=4.0, guidance="l2"), "guidance must be 'l1' or 'bce'"),
    (dict(lambda_g=4.0), "lambda_g > 0 needs"),
])
def test_lmac_fit_loss_options(model, clips, kwargs, match):
    m = LMAC(model, layers=LAYERS)
    with pytest.raises(InputError, match=match):
        m.fit(clips.X, epochs=1, progress=False, **kwargs)
    assert m.decoder is None


@pytest.mark.parametrize("data, match", [
    (lambda X: [], "no training batches"),
    (lambda X: X.long(), "dtype torch.int64"),
    (lambda X: X * float("nan"), "NaN"),
    (lambda X: -X, "negative values"),
    (lambda X: X[:, 0], r"\(N, 1, F, T\)"),
    (lambda X: X[:, :, :64], "64 frequency bins"),
    (lambda X: "clips/", "a training batch must be"),
    (lambda X: (X, X[:3]), "paired tensors differ in length"),
])
def test_lmac_fit_data(model, clips, data, match):
    m = LMAC(model, layers=LAYERS)
    with pytest.raises(InputError, match=match):
        m.fit(data(clips.X), epochs=1, progress=False)
    assert m.decoder is None


def test_validation_of_the_wrong_size_is_caught_before_training(model, clips, monkeypatch):
    m = LMAC(model, layers=LAYERS)
    steps = []
    monkeypatch.setattr(LMAC, "_train_step", lambda self, b: steps.append(1))
    with pytest.raises(InputError, match="validation inputs have 64 frequency bins but the training inputs have 129"):
        m.fit(clips.X, epochs=3, val=clips.X[:2, :, :64], progress=False)
    assert steps == [] and m.decoder is None
    l2 = L2I(model, layers=LAYERS, n_components=4)
    with pytest.raises(InputError, match="validation inputs have 64"):
        l2.fit(clips.X, epochs=3, val=clips.X[:2, :, :64], progress=False)
    assert l2.decoder is None and l2.dictionary is None


def test_a_failed_refit_keeps_the_fitted_decoder(lmac, clips):
    before = {k: v.clone() for k, v in lmac.decoder.state_dict().items()}
    with pytest.raises(InputError, match="validation inputs"):
        lmac.fit(clips.X, epochs=1, val=clips.X[:1, :, :64], progress=False)
    with pytest.raises(InputError, match="NaN"):
        lmac.fit(clips.X * float("nan"), epochs=1, progress=False)
    after = lmac.decoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_diverged_fit_is_refused(model, clips, monkeypatch):
    """A loss that turns NaN (simulated) leaves NaN decoder weights: the fit is refused and undone."""
    original = LMAC._train_step

    def diverging(self, batch):
        terms, n = original(self, batch)
        terms["loss"] = terms["loss"] * float("nan")
        return terms, n

    monkeypatch.setattr(LMAC, "_train_step", diverging)
    m = LMAC(model, layers=LAYERS, hidden=8)
    with pytest.raises(InputError, match="training diverged: lower lr"):
        m.fit(clips.X, epochs=1, batch_size=4, progress=False)
    assert m.decoder is None


def test_nan_classifier_weights(stft, model, clips, files):
    bad = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    bad.load_state_dict(model.state_dict())
    with torch.no_grad():
        bad.net.fc.weight[0, 0] = float("nan")
    for build in (lambda: LMAC(bad, layers=LAYERS), lambda: L2I(bad, layers=LAYERS),
                  lambda: make_baseline("saliency", bad), lambda: LMAC.load(files / "lmac.pt", bad)):
        with pytest.raises(InputError, match=r"NaN or infinite weights in \['net.fc.weight'\]"):
            build()


def test_constructor_arguments(model, zs):
    with pytest.raises(InputError, match="no layer named 'net.blok1'.*closest names: \\['net.block1'"):
        LMAC(model, layers=["net.blok1"])
    with pytest.raises(InputError, match="nn.Module"):
        LMAC(lambda X: X, layers=[])
    with pytest.raises(InputError, match="mask_domain"):
        LMAC(model, layers=LAYERS, mask_domain="db")
    with pytest.raises(InputError, match="n_components must be >= 1"):
        L2I(model, layers=LAYERS, n_components=0)
    with pytest.raises(InputError, match="non-negative"):
        L2I(model, layers=LAYERS, dictionary=-torch.ones(129, 4))
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        make_baseline("saliency", model, batch_size=0)


def test_l2i_options(l2i, clips):
    with pytest.raises(InputError, match="threshold must be a finite number"):
        l2i.attribute(clips.X[:1], threshold=float("nan"))
    with pytest.raises(InputError, match=r"component index 9 out of range \[0, 4\)"):
        l2i.component_masks(clips.X[:1], [9])
    with pytest.raises(InputError, match="alpha must be >= 0"):
        L2I(l2i.model, layers=LAYERS, n_components=4).fit(clips.X, alpha=-1, progress=False)


def test_lmac_zs_fit_and_prompts(zs, zs_classifier, zs_data):
    X, caps = zs_data
    fresh = LMACZS(zs_classifier, layers=["audio_encoder.block1"], hidden=8)
    with pytest.raises(InputError, match="pass \\(X, captions\\), not X alone"):
        fresh.fit(X, epochs=1, progress=False)
    with pytest.raises(InputError, match="4 clips but 3 captions"):
        fresh.fit((X, caps[:3]), epochs=1, progress=False)
    with pytest.raises(InputError, match="lambda_l1 must be >= 0"):
        fresh.fit((X, caps), epochs=1, lambda_l1=-1, progress=False)
    with pytest.raises(InputError, match="texts_per_audio must be >= 1"):
        fresh.fit((X, caps), epochs=1, texts_per_audio=0, progress=False)
    assert fresh.decoder is None
    with pytest.raises(InputError, match="unknown target 5"):
        zs.attribute(X[:1], target=5)
    with pytest.raises(InputError):
        zs.attribute(X[:1], prompts=[])


def test_load_errors(files, model, stft, clips):
    torch.manual_seed(123)  # (fits seed the global RNG with 0, which built `model`)
    other = build_classifier(3, stft, n_mels=16, channels=(4, 8))
    with pytest.raises(CheckpointError, match="fitted for a different classifier"):
        LMAC.load(files / "lmac.pt", other)
    with pytest.raises(CheckpointError, match="holds a 'lmac' checkpoint, expected 'l2i'"):
        L2I.load(files / "lmac.pt", model)
    with pytest.raises(InputError, match="needs the classifier as an nn.Module"):
        LMAC.load(files / "lmac.pt", "model")
    with pytest.raises(InputError, match="no layer named 'nope'"):
        LMAC.load(files / "lmac.pt", model, layers=["nope"])
