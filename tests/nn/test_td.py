"""LMAC-TD's networks: an exact filterbank, maskers of the right shape and size, ψ on any layer shapes."""

import pytest
import torch

from captum_lmac.errors import InputError
from captum_lmac.nn.td import (
    DualPathMasker,
    LearnedDecoder,
    LearnedEncoder,
    PsiMap,
    TemporalConvMasker,
    autoencoder_si_sdr,
    tight_frame_,
)


@pytest.mark.parametrize("n", [8000, 8003, 100])
def test_tight_frame_reconstructs_every_sample(n):
    enc, dec = LearnedEncoder(64, 16, 8), LearnedDecoder(64, 16, 8)
    tight_frame_(enc, dec, seed=3)
    x = torch.randn(2, n)
    h = enc(x)
    assert h.shape == (2, 64, enc.n_frames(n)) and bool((h >= 0).all())
    assert dec(h, n).shape == (2, n)
    assert float(autoencoder_si_sdr(enc, dec, x).min()) > 60  # exact up to float rounding


def test_filterbank_errors():
    with pytest.raises(InputError, match="multiple of stride"):
        LearnedEncoder(64, 12, 8)
    with pytest.raises(InputError, match="tight-frame"):
        tight_frame_(LearnedEncoder(40, 16, 8), LearnedDecoder(40, 16, 8))


def test_maskers_keep_the_shape_and_the_default_is_cpu_sized():
    h = torch.rand(2, 32, 301)
    assert TemporalConvMasker(32, 16, 32, 3, 1)(h).shape == h.shape
    assert DualPathMasker(32, d_model=16, chunk=50, intra_layers=1, inter_layers=1, heads=2)(h).shape == h.shape
    assert DualPathMasker(32, d_model=16, chunk=400, intra_layers=1, inter_layers=1, heads=2)(h).shape == h.shape
    assert sum(p.numel() for p in TemporalConvMasker().parameters()) <= 1_000_000


def test_psi_maps_maps_and_sequences_to_the_encoder_grid():
    psi = PsiMap([{"channels": 4, "freqs": 8}, {"channels": 6, "freqs": 1}], channels=32)
    out = psi([torch.rand(2, 4, 8, 20), torch.rand(2, 6, 5)], n_frames=123)
    assert out.shape == (2, 32, 123)
    with pytest.raises(InputError, match="values per frame"):
        psi([torch.rand(2, 5, 8, 20), torch.rand(2, 6, 5)], n_frames=10)
