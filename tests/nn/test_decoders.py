"""L-MAC decoders: shapes for any layers and length, no clip-independent template, frequency maps, configs."""

import pytest
import torch
import torch.nn.functional as F

from captum_lmac import InputError
from captum_lmac.nn.decoders import (
    CrossAttention,
    InputMaskDecoder,
    LMACDecoder,
    MaskDecoder,
    SequenceToMap,
    UpStage,
    build_lmac_decoder,
    interpolation_matrix,
    up_stages_for,
)

MAPS = [{"channels": 4, "freqs": 8}, {"channels": 8, "freqs": 4}]


def feats_for(spec, T, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    out, t = [], T
    for s in spec:
        t = -(-t // 2)
        shape = (n, s["channels"], t) if s["freqs"] == 1 else (n, s["channels"], s["freqs"], t)
        out.append(torch.randn(*shape, generator=g))
    return out


@pytest.mark.parametrize("T", [7, 31, 64, 101])
def test_maps_and_sequences_cover_every_frame(T):
    for spec in (MAPS, [{"channels": 6, "freqs": 1}, {"channels": 10, "freqs": 1}], [MAPS[0], {"channels": 5, "freqs": 1}]):
        dec = LMACDecoder(spec, 65, hidden=8, up_stages=up_stages_for(T, -(-T // 2)))
        x = torch.rand(2, 1, 65, T)
        out = dec(feats_for(spec, T), x)
        assert out.shape == (2, 1, 65, T) and torch.isfinite(out).all()


def test_zero_representations_give_a_uniform_mask():
    """No bias terms but one global offset: nothing clip-independent can be drawn."""
    dec = LMACDecoder(MAPS, 33, hidden=8, up_stages=1)
    with torch.no_grad():
        dec.offset.fill_(0.7)
        zero = [torch.zeros_like(f) for f in feats_for(MAPS, 20)]
        out = dec(zero, torch.rand(2, 1, 33, 20))
    assert torch.allclose(out, torch.full_like(out, 0.7))
    with_bias = LMACDecoder(MAPS, 33, hidden=8, up_stages=1, bias=True)  # the ablation can hold a template
    with torch.no_grad():
        for p in with_bias.parameters():
            p.add_(0.1 * torch.randn_like(p))
        assert with_bias(zero, torch.rand(2, 1, 33, 20)).std() > 1e-4


def test_reads_the_representations_only():
    dec = LMACDecoder(MAPS, 33, hidden=8, up_stages=1)
    f = feats_for(MAPS, 20)
    a = dec(f, torch.rand(2, 1, 33, 20))
    b = dec(f, 5 * torch.rand(2, 1, 33, 20))  # other input values, same representations
    assert torch.equal(a, b)
    gain = LMACDecoder(MAPS, 33, hidden=8, up_stages=1, use_input=True)  # the former gain path (ablation)
    assert not torch.allclose(gain(f, torch.rand(2, 1, 33, 20)), gain(f, 5 * torch.rand(2, 1, 33, 20)))


def test_sequences_get_a_frequency_axis_from_their_channels():
    seq = SequenceToMap(channels=6, hidden=4, freqs=10, rank=2)
    z = seq(torch.randn(3, 6, 17))
    assert z.shape == (3, 4, 10, 17)
    assert z.std(dim=2).mean() > 1e-3  # not one row broadcast over frequency
    dec = LMACDecoder([{"channels": 6, "freqs": 1}], 40, hidden=8, up_stages=1, seq_freqs=10)
    m = dec([torch.randn(2, 6, 16)], torch.rand(2, 1, 40, 32))
    assert m.std(dim=2).mean() > 1e-4


def test_up_stages_reach_exact_sizes():
    st = UpStage(4, 3, double_freqs=True)
    for rows, frames in ((10, 21), (10, 22), (9, 40), (16, 5)):
        out = st(torch.randn(1, 4, 5, 11), (rows, frames))
        assert out.shape == (1, 3, rows, frames)
    assert up_stages_for(431, 215) == 1 and up_stages_for(431, 53) == 3 and up_stages_for(10, 10) == 0
    assert up_stages_for(1000, 1, max_stages=4) == 4


def test_frequency_map_starts_as_interpolation_or_given():
    A = interpolation_matrix(11, 4)
    v = torch.randn(4)
    assert torch.allclose(A @ v, F.interpolate(v.view(1, 1, 4), size=11, mode="linear", align_corners=False).flatten(),
                          atol=1e-6)
    dec = LMACDecoder(MAPS, 20, hidden=8, up_stages=0)
    assert torch.allclose(dec.freq_map.weight, interpolation_matrix(20, 8))
    W = torch.rand(20, 8)
    dec.set_freq_map(W)
    assert torch.equal(dec.freq_map.weight, W)
    with pytest.raises(InputError, match="frequency map"):
        dec.set_freq_map(torch.rand(20, 7))


def test_config_round_trip_and_old_checkpoints():
    dec = LMACDecoder(MAPS, 33, hidden=8, up_stages=1, seq_rank=3)
    again = build_lmac_decoder(dec.config())
    again.load_state_dict(dec.state_dict())
    f, x = feats_for(MAPS, 20), torch.rand(2, 1, 33, 20)
    assert torch.equal(again(f, x), dec(f, x))
    old = MaskDecoder(MAPS, 33, hidden=8, use_input=True)  # checkpoints written before issue 14 have no 'arch'
    assert isinstance(build_lmac_decoder(old.config()), MaskDecoder)
    inp = InputMaskDecoder(33, bands=8)
    assert isinstance(build_lmac_decoder(inp.config()), InputMaskDecoder)
    with pytest.raises(InputError, match="unknown L-MAC decoder"):
        build_lmac_decoder({"arch": "nope"})


def test_bad_layer_outputs_are_named():
    dec = LMACDecoder(MAPS, 33, hidden=8)
    f = feats_for(MAPS, 20)
    with pytest.raises(InputError, match="expects 2 layer outputs"):
        dec(f[:1], torch.rand(2, 1, 33, 20))
    with pytest.raises(InputError, match="built for"):
        dec([f[1], f[0]], torch.rand(2, 1, 33, 20))
    with pytest.raises(InputError, match="at least one layer"):
        LMACDecoder([], 33)


def test_input_only_decoder():
    dec = InputMaskDecoder(65, bands=16, channels=(4, 8, 8))
    for T in (5, 37):
        assert dec([], torch.rand(2, 1, 65, T)).shape == (2, 1, 65, T)
    with pytest.raises(InputError, match="no layer outputs"):
        dec([torch.zeros(2, 4, 3)], torch.rand(2, 1, 65, 5))


def test_lmac_decoder_runs_channels_last_with_the_contiguous_layouts_output():
    torch.manual_seed(0)
    dec = LMACDecoder(MAPS, 65, hidden=8, up_stages=1)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in dec.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
    ref = LMACDecoder(MAPS, 65, hidden=8, up_stages=1)
    ref.load_state_dict(dec.state_dict())
    ref.to(memory_format=torch.contiguous_format)
    feats, x = feats_for(MAPS, 40, n=3), torch.rand(3, 1, 65, 40)
    for f in (feats, [h.contiguous(memory_format=torch.channels_last) for h in feats]):  # either layout in
        torch.testing.assert_close(dec(f, x), ref(feats, x), rtol=1e-5, atol=1e-6)


def test_cross_attention_takes_channels_last_maps():
    torch.manual_seed(0)
    ca = CrossAttention(8, 12)
    z, cond = torch.randn(2, 8, 5, 7), torch.randn(2, 12)
    cl = CrossAttention(8, 12)
    cl.load_state_dict(ca.state_dict())
    cl.to(memory_format=torch.channels_last)  # its 1x1 convs then give channels-last maps
    torch.testing.assert_close(cl(z.contiguous(memory_format=torch.channels_last), cond), ca(z, cond))
