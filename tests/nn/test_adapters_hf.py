"""HF AutoModelForAudioClassification behind a differentiable front end (no download: random tiny AST)."""

import numpy as np
import pytest
import torch

from captum_lmac import STFT
from captum_lmac.nn.adapters import FrontEndClassifier, KaldiFbank, WaveformClassifier

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def test_kaldi_fbank_matches_the_hf_ast_feature_extractor():
    fe = transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=64)
    wav = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    ref = fe(list(wav), sampling_rate=16000, return_tensors="pt")["input_values"]
    ours = KaldiFbank(16000, num_mel_bins=32, max_length=64)(torch.from_numpy(wav))
    assert ours.shape == ref.shape == (2, 64, 32)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_tiny_random_ast_explained_on_the_stft_magnitude():
    torch.manual_seed(0)
    cfg = transformers.ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 num_mel_bins=32, max_length=64, patch_size=16, frequency_stride=16, time_stride=16,
                                 num_labels=3)
    hf = transformers.ASTForAudioClassification(cfg).eval()
    net = FrontEndClassifier(KaldiFbank(16000, 32, 64), hf, input_name="input_values")
    wf = WaveformClassifier(net, STFT(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, window="hann"))
    X, P = wf.analyze(torch.randn(2, 8000) * 0.1)
    x = X.clone().requires_grad_(True)
    logits = wf(x, P)
    assert logits.shape == (2, 3)
    logits[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_auto_layers_reads_ast_tokens_as_the_patch_grid():
    from captum_lmac.nn.auto_layers import auto_layers
    from captum_lmac.nn.hooks import LayerRecorder, resolve_hooks

    torch.manual_seed(0)
    cfg = transformers.ASTConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                                 num_mel_bins=32, max_length=64, patch_size=16, frequency_stride=10, time_stride=10,
                                 num_labels=3)
    hf = transformers.ASTForAudioClassification(cfg).eval()
    wf = WaveformClassifier(FrontEndClassifier(KaldiFbank(16000, 32, 64), hf, input_name="input_values"),
                            STFT(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, window="hann"))
    X, P = wf.analyze(torch.randn(2, 8000) * 0.1)
    res = auto_layers(wf, (X, P))
    ast = "model.model.audio_spectrogram_transformer"
    assert res.names == [f"{ast}.embeddings", f"{ast}.layers.1", f"{ast}.layers.2", ast]
    assert all(h.drop_tokens == 2 and h.grid == (2, -1) for h in res.hooks)  # CLS + distillation token
    rec = LayerRecorder(resolve_hooks(wf, res.hooks), model=wf)
    with rec.capture() as feats, wf.using_phase(P):
        wf(X)
    assert [tuple(f.shape) for f in feats] == [(2, 16, 2, 5)] * 4  # (N, D, F' = 2, T' = 5)
