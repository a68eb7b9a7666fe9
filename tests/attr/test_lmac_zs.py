"""LMAC-ZS on a toy zero-shot model (deterministic word-vector text encoder, tiny audio CNN)."""


import copy

import pytest
import torch
from captum.attr import NoiseTunnel
from torch import nn

from captum_lmac.attr import LMACZS
from captum_lmac.metrics import randomisation_stages, randomise_
from captum_lmac.errors import CheckpointError, InputError, NotFittedError
from captum_lmac.nn.zeroshot import ZeroShotClassifier
from toys import TinyAudio, WordVectors


PROMPTS = ["this is the sound of dog", "this is the sound of rain", "this is the sound of a siren"]


def _data(n=8, seed=0):
    """Clips alternating between two kinds (energy high in the low / the high bands), with captions."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 16, 24, generator=g)
    X[0::2, :, :8] *= 4.0
    X[1::2, :, 8:] *= 4.0
    caps = [["a dog barking", "the sound of a dog"] if i % 2 == 0 else ["rain falling", "the sound of rain"]
            for i in range(n)]
    return X, caps


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    audio = TinyAudio().eval()
    zs = ZeroShotClassifier(audio, WordVectors(), PROMPTS, logit_scale=10.0)
    X, caps = _data()
    return zs, X, caps


@pytest.fixture(scope="module")
def fitted(setup):
    zs, X, caps = setup
    zsx = LMACZS(zs, layers=["audio_encoder.block1", zs.audio_encoder.block2], hidden=8)
    hist = zsx.fit((X, caps), epochs=4, batch_size=4, seed=0, progress=False, val=(X[:4], caps[:4]))
    return zsx, hist


def test_mask_shape_range_and_default_target(setup, fitted):
    zs, X, _ = setup
    zsx, _ = fitted
    m = zsx.attribute(X)
    assert m.shape == X.shape
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    # target None = the best-matching prompt, i.e. the zero-shot decision
    pred = zs(X).argmax(1)
    assert torch.allclose(m, zsx.attribute(X, target=pred))
    assert torch.allclose(m, zsx.attribute(X, target=pred.tolist()))
    assert isinstance(zsx.attribute((X,)), tuple)


def test_prompt_conditioning_and_unseen_prompt(setup, fitted):
    _, X, _ = setup
    zsx, _ = fitted
    m0 = zsx.attribute(X[:2], target=0)
    m1 = zsx.attribute(X[:2], target=1)
    assert not torch.allclose(m0, m1, atol=1e-4)
    unseen = zsx.attribute(X[:2], target=0, prompts=["a violin playing a melody"])
    assert unseen.shape == X[:2].shape and torch.isfinite(unseen).all()
    # the same prompt given in another list gives the same mask
    again = zsx.attribute(X[:2], target=1, prompts=["a violin playing a melody", PROMPTS[0]])
    assert torch.allclose(again, m0, atol=1e-6)


def test_target_errors_and_needs_fit(setup, fitted):
    zs, X, _ = setup
    zsx, _ = fitted
    with pytest.raises(InputError):
        zsx.attribute(X, target=len(PROMPTS))
    with pytest.raises(InputError):
        zsx.attribute(X, target=[0, 1])
    with pytest.raises(InputError):
        zsx.attribute(X, prompts=[])
    with pytest.raises(NotFittedError):
        LMACZS(zs, layers=[zs.audio_encoder.block2]).attribute(X)
    bare = LMACZS(zs.audio_encoder, WordVectors(), layers=["block2"])
    bare.decoder = zsx.decoder  # no default prompts without a ZeroShotClassifier
    with pytest.raises(InputError, match="prompts"):
        bare.attribute(X)
    with pytest.raises(InputError):
        LMACZS(zs.audio_encoder, layers=["block2"])  # no text encoder
    with pytest.raises(InputError):
        zsx.fit(X, epochs=1)  # audio without captions


def test_history(fitted):
    _, hist = fitted
    assert len(hist["loss"]) == 4 and 0 <= hist["best_epoch"] < 4 and len(hist["val_loss"]) == 4
    for k in ("sim", "l1", "div", "cls", "out", "mm_own", "mm_other", "seconds", "decoder_parameters",
              "val_cls", "val_out"):
        assert k in hist


def test_loss_decreases(setup):
    zs, X, caps = setup
    caps = [c[0] for c in caps]
    lambdas = {"sim": 1.0, "l1": 0.1, "div": 1.0}
    zsx = LMACZS(zs, layers=[zs.audio_encoder.block1, zs.audio_encoder.block2], hidden=8)
    torch.manual_seed(0)  # an untrained decoder (fit refuses lr=0: it would count an untrained decoder as fitted)
    zsx._ensure_decoder(X, int(zsx.embed_text(caps[:1]).shape[1]))
    before = zsx.evaluate((X, caps), lambdas=lambdas, batch_size=4)
    zsx.fit((X, caps), epochs=4, lr=1e-2, batch_size=4, lambda_l1=0.1, progress=False)
    after = zsx.evaluate((X, caps), lambdas=lambdas, batch_size=4)
    assert after["loss"] < before["loss"] - 0.01
    assert after["sim"] < 0.5 * before["sim"]  # the similarity-preservation term is learnt first


def test_fit_is_seeded(setup):
    zs, X, caps = setup
    a = LMACZS(zs, layers=[zs.audio_encoder.block2], hidden=8)
    b = LMACZS(zs, layers=[zs.audio_encoder.block2], hidden=8)
    ha = a.fit((X, caps), epochs=1, batch_size=4, texts_per_audio=2, seed=3, progress=False)
    hb = b.fit([(X[:4], caps[:4]), (X[4:], caps[4:])], epochs=1, texts_per_audio=2, seed=3, progress=False)
    assert torch.isfinite(torch.tensor(hb["loss"])).all()
    c = LMACZS(zs, layers=[zs.audio_encoder.block2], hidden=8)
    hc = c.fit((X, caps), epochs=1, batch_size=4, texts_per_audio=2, seed=3, progress=False)
    assert hc["loss"] == ha["loss"]


def test_save_load_round_trip_and_refusals(setup, fitted, tmp_path):
    zs, X, _ = setup
    zsx, _ = fitted
    path = zsx.save(tmp_path / "zs.pt")
    back = LMACZS.load(path, zs)
    assert torch.equal(back.attribute(X, target=1), zsx.attribute(X, target=1))
    assert back.layer_names == ["block1", "block2"]
    # the bare audio encoder + text encoder also load, with the stored prompts
    bare = LMACZS.load(path, zs.audio_encoder, WordVectors())
    assert bare.prompts == PROMPTS
    assert torch.equal(bare.attribute(X), zsx.attribute(X))
    other = TinyAudio()  # same architecture, other weights
    with pytest.raises(CheckpointError, match="different audio encoder"):
        LMACZS.load(path, other, WordVectors())
    with pytest.raises(CheckpointError, match="text encoder"):
        LMACZS.load(path, zs.audio_encoder, WordVectors(salt=1))
    with pytest.raises(CheckpointError):
        LMACZS.load(path, zs.audio_encoder, WordVectors(dim=8))
    LMACZS.load(path, zs.audio_encoder, WordVectors(salt=1), check_text_encoder=False)


def test_noise_tunnel_and_tuple_inputs(setup, fitted):
    _, X, _ = setup
    zsx, _ = fitted
    nt = NoiseTunnel(zsx)
    out = nt.attribute(X[:2], nt_type="smoothgrad", nt_samples=2, stdevs=0.01, target=0)
    assert out.shape == X[:2].shape


def test_text_conditioned_decoder_film_and_copy():
    import copy

    from captum_lmac.attr.lmac_zs import TextConditionedMaskDecoder

    torch.manual_seed(0)
    dec = TextConditionedMaskDecoder([{"channels": 4, "freqs": 8}], 16, hidden=8, cond_dim=5)
    for lin in dec.film:
        nn.init.normal_(lin.weight, std=1.0)
    feats, x, c = [torch.randn(2, 4, 8, 6)], torch.rand(2, 1, 16, 12), torch.randn(2, 5)
    out = dec(feats, x, c)
    assert out.shape == (2, 1, 16, 12)
    assert torch.allclose(copy.deepcopy(dec)(feats, x, c), out)  # hooks keep working on a copy
    assert dec.config()["film"] and any(k.startswith("film.") for k in dec.state_dict())
    plain = TextConditionedMaskDecoder([{"channels": 4, "freqs": 8}], 16, hidden=8, cond_dim=5, film=False)
    assert not any(k.startswith("film.") for k in plain.state_dict())
    with pytest.raises(InputError):
        TextConditionedMaskDecoder([{"channels": 4, "freqs": 8}], 16, hidden=8)


def test_plain_cross_attention_variant_round_trips(setup, tmp_path):
    zs, X, caps = setup
    zsx = LMACZS(zs, layers=[zs.audio_encoder.block2], hidden=8, film=False)
    zsx.fit((X, caps), epochs=1, batch_size=4, progress=False)
    back = LMACZS.load(zsx.save(tmp_path / "plain.pt"), zs)
    assert not back.decoder.use_film and torch.equal(back.attribute(X), zsx.attribute(X))


# --- the optional decision terms (lambda_cls, lambda_out) and the per-mask L1 ---------------------------


def _fit(zs, X, caps, **kw):
    z = LMACZS(zs, layers=[zs.audio_encoder.block2], hidden=8)
    hist = z.fit((X, caps), epochs=6, batch_size=4, lr=1e-2, seed=0, progress=False, **kw)
    return z, hist


def _held_out(z, X, caps, term):
    """One loss term of a fitted explainer, evaluated with both decision terms on."""
    return z.evaluate((X, caps), lambdas={"cls": 1.0, "out": 1.0}, batch_size=4)[term]


@pytest.fixture(scope="module")
def first_caps(setup):
    zs, X, caps = setup
    return [c[0] for c in caps]


@pytest.fixture(scope="module")
def plain_fit(setup, first_caps):
    zs, X, _ = setup
    return _fit(zs, X, first_caps)


def test_decision_terms_are_off_by_default_and_recorded(setup, first_caps, plain_fit):
    zs, X, _ = setup
    _, hist = plain_fit
    assert hist["cls"] == [0.0] * 6 and hist["out"] == [0.0] * 6
    _, on = _fit(zs, X, first_caps, lambda_cls=1.0, lambda_out=1.0)
    assert all(v > 0 for v in on["cls"]) and all(v > 0 for v in on["out"])
    # the loss recorded is the weighted sum of the terms
    for e in range(6):
        total = on["sim"][e] + 0.25 * on["l1"][e] + on["div"][e] + on["cls"][e] + on["out"][e]
        assert on["loss"][e] == pytest.approx(total, rel=1e-5)


def test_decision_term_keeps_the_own_caption(setup, first_caps, plain_fit):
    zs, X, _ = setup
    plain, _ = plain_fit
    trained, hist = _fit(zs, X, first_caps, lambda_cls=5.0)
    assert hist["cls"][-1] < hist["cls"][0]
    assert _held_out(trained, X, first_caps, "cls") < 0.9 * _held_out(plain, X, first_caps, "cls")


def test_masked_out_term_removes_the_own_caption(setup, first_caps, plain_fit):
    zs, X, _ = setup
    plain, _ = plain_fit
    trained, _ = _fit(zs, X, first_caps, lambda_out=5.0)
    assert _held_out(trained, X, first_caps, "out") < 0.9 * _held_out(plain, X, first_caps, "out")


def test_paraphrases_are_no_rivals(setup, first_caps, plain_fit):
    zs, X, _ = setup
    _, hist = plain_fit
    # every rival counts as a paraphrase: the decision term has nothing to contrast, the fit is the plain one
    _, none = _fit(zs, X, first_caps, lambda_cls=5.0, same_caption_threshold=-1.0)
    assert none["cls"] == [0.0] * 6 and none["loss"] == hist["loss"]
    # fixed rival texts (the class prompts): the own caption's class prompt is a paraphrase of it
    own = zs.encode_text(first_caps[:1])
    cos = own @ zs.encode_text(PROMPTS).t()
    assert float(cos[0, 0]) > float(cos[0, 1])
    _, fixed = _fit(zs, X, first_caps, lambda_cls=1.0, rival_texts=PROMPTS)
    assert all(v > 0 for v in fixed["cls"])


def test_per_mask_l1_scales_with_the_captions_per_clip(setup, first_caps):
    zs, X, _ = setup
    # batch 4, every clip masked for all 4 captions: per-mask L1 with λ_1 equals the mean with 4·λ_1
    _, per = _fit(zs, X, first_caps, lambda_l1=0.25, l1_reduction="per_mask")
    _, mean = _fit(zs, X, first_caps, lambda_l1=1.0)
    assert per["loss"] == pytest.approx(mean["loss"], rel=1e-5) and per["l1"] == pytest.approx(mean["l1"], rel=1e-5)
    _, weak = _fit(zs, X, first_caps, lambda_l1=0.25)
    assert per["l1"][-1] < weak["l1"][-1]


def test_decision_term_argument_errors(setup, first_caps):
    zs, X, _ = setup
    z = LMACZS(zs, layers=[zs.audio_encoder.block2], hidden=8)
    bad = [({"lambda_cls": -1.0}, "lambda_cls"), ({"lambda_out": float("nan")}, "lambda_out"),
           ({"rival_texts": "others"}, "rival_texts"), ({"rival_texts": []}, "rival_texts"),
           ({"same_caption_threshold": 1.5}, "same_caption_threshold"), ({"l1_reduction": "sum"}, "l1_reduction"),
           ({"lambda_cls": 1.0, "logit_scale": 0.0}, "logit_scale"), ({"sim_floor": "silence"}, "sim_floor")]
    for kwargs, name in bad:
        with pytest.raises(InputError, match=name):
            z.fit((X, first_caps), epochs=1, batch_size=4, progress=False, **kwargs)
    bare = LMACZS(zs.audio_encoder, WordVectors(), layers=["block2"], hidden=8)
    with pytest.raises(InputError, match="logit_scale"):
        bare.fit((X, first_caps), epochs=1, batch_size=4, progress=False, lambda_cls=1.0)
    hist = bare.fit((X, first_caps), epochs=1, batch_size=4, progress=False, lambda_cls=1.0, logit_scale=10.0)
    assert hist["cls"][0] > 0
    with pytest.raises(InputError, match="lambdas"):
        bare.evaluate((X, first_caps), lambdas={"typo": 1.0})


def test_similarity_floor_of_the_empty_input(setup, fitted, monkeypatch):
    zs, X, _ = setup
    zsx, _ = fitted
    caps = ["a dog barking", "rain falling", "a siren wailing", "a siren wailing"]
    with torch.no_grad():
        a = torch.nn.functional.normalize(zs.audio_encoder(X[:4]), dim=1)
        e0 = torch.nn.functional.normalize(zs.audio_encoder(torch.zeros_like(X[:1])), dim=1)[0]
    t = zsx.embed_text(caps)
    C, s = t @ a.t(), t @ e0  # C[i, j] = t_i . a_j; s[i] = t_i . f(0)
    assert (C < s.view(-1, 1)).any()  # silence matches the siren captions better than the clips do
    # an explainer whose every mask is empty: its masked similarities are those of the empty input
    monkeypatch.setattr(zsx, "_decode", lambda feats, X, t: torch.zeros(X.shape[0], 1, *X.shape[2:]))
    plain = zsx.evaluate((X[:4], caps), batch_size=4)["sim"]
    floor = zsx.evaluate((X[:4], caps), batch_size=4, sim_floor="empty")["sim"]
    assert plain == pytest.approx(float((C - s.view(-1, 1)).abs().mean()), abs=1e-5)
    assert floor == pytest.approx(float((C - s.view(-1, 1)).clamp_min(0).mean()), abs=1e-5)
    assert floor < plain
    with pytest.raises(InputError, match="sim_floor"):
        zsx.evaluate((X[:4], caps), sim_floor="silence")


def test_on_and_unfitted_copy_for_the_randomisation_check(setup, fitted):
    """Only the audio tower is randomised (projection first); the fitted decoder then reads the
    randomised encoder (on), or the same settings are fitted again on it (unfitted_copy)."""
    zs, X, caps = setup
    zsx, hist = fitted
    stages = randomisation_stages(zs)
    assert [label for label, _ in stages] == ["fc", "block2", "block1"]
    assert all(n.startswith("audio_encoder.") for _, names in stages for n in names)
    rand = copy.deepcopy(zs)
    for k, (_, names) in enumerate(stages, 1):
        randomise_(rand, names, seed=k)
    fixed = zsx.on(rand)
    assert fixed.decoder is zsx.decoder and fixed.model is rand.audio_encoder
    assert fixed.layer_names == zsx.layer_names and fixed.prompts == zsx.prompts
    assert not torch.equal(fixed.attribute(X[:2]), zsx.attribute(X[:2]))
    other = zsx.unfitted_copy(rand)
    assert other.decoder is None and other.hidden == zsx.hidden and other.film == zsx.film
    other.fit((X, caps), epochs=1, batch_size=4, seed=0, progress=False)
    assert other.attribute(X[:2]).shape == X[:2].shape
    bare = zsx.unfitted_copy(rand.audio_encoder)  # a bare audio encoder keeps this text encoder
    assert bare.text_encoder is zsx.text_encoder and bare.prompts == zsx.prompts
