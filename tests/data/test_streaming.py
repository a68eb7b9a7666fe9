"""Streaming training data: lazy clips, STFT per item, seeded random crops, padding masks, workers, and
fits on a stream that equal the in-memory fits."""

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from captum_lmac import L2I, LMAC, STFT, SyntheticEvents, build_classifier, to_spectrograms
from captum_lmac.attr import LMACZS
from captum_lmac.data import AudioFolder, ConcatReaders, LabelCaptions, StreamingSpectrograms
from captum_lmac.data.streaming import ClipSpectrograms, FeatureTransform, valid_frames
from captum_lmac.distributed import shard_rows
from captum_lmac.errors import InputError
from captum_lmac.nn.zeroshot import ZeroShotClassifier
from toys import TinyAudio, WordVectors

STFT_ARGS = dict(n_fft=256, hop_length=64, win_length=128)


class Counting(Dataset):
    """A reader that counts how often each item is read."""

    def __init__(self, base):
        self.base, self.reads = base, [0] * len(base)
        self.classes, self.sample_rate, self.n_samples = base.classes, base.sample_rate, base.n_samples

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads[i] += 1
        return self.base[i]


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    stft = STFT(**STFT_ARGS)
    ds = SyntheticEvents(20, seed=0, n_classes=3, duration=1.0)
    torch.manual_seed(0)
    model = build_classifier(n_classes=3, stft=stft, n_mels=16, channels=(4, 8)).eval()
    return stft, ds, model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """WAVs of different lengths (0.4 s to 2.5 s) at 16 kHz."""
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i, secs in enumerate([0.4, 1.0, 2.5, 1.7, 0.9, 2.2]):
        sf.write(d / f"c{i}.wav", (0.1 * rng.standard_normal(int(secs * 16000))).astype(np.float32), 16000)
    return d


def test_items_follow_the_readers_rule_and_mask_padding(folder, tiny):
    stft = tiny[0]
    reader = AudioFolder(folder, duration=1.0)
    mem = to_spectrograms(reader, stft, progress=False)
    stream = StreamingSpectrograms(reader, stft)
    b = stream.first_batch(len(reader))
    assert torch.equal(b.X, mem.X) and b.length == 16000
    # the same complex spectrum (the phase of a (near-)zero bin is arbitrary, e.g. ±π)
    assert torch.allclose(torch.polar(b.X, b.phase), torch.polar(mem.X, mem.phase), atol=1e-6)
    # the 0.4 s and 0.9 s clips are zero-padded at the end: only their real frames are valid
    n_valid = b.valid.sum(1).tolist()
    assert n_valid[1:3] == [251, 251] and n_valid[0] == 101 and n_valid[4] == 226
    assert torch.equal(b.valid[0], valid_frames(stft, 16000, 0, 6400))
    assert float(b.X[0, ..., 102:].abs().max()) == 0.0  # what the mask calls padding is silence


def test_random_crops_are_seeded_per_epoch_and_item(folder, tiny):
    stft = tiny[0]
    reader = AudioFolder(folder, duration=2.5)
    clips = ClipSpectrograms(reader, stft, clip_seconds=0.5, crop="random", seed=3)
    a, again, other_epoch = clips[(2, 0)], clips[(2, 0)], clips[(2, 1)]
    assert a["length"] == 8000 and torch.equal(a["X"], again["X"])
    assert not torch.equal(a["X"], other_epoch["X"])
    assert not torch.equal(a["X"], ClipSpectrograms(reader, stft, clip_seconds=0.5, crop="random", seed=4)[(2, 0)]["X"])
    raw = reader.raw(2)[0]
    starts = [int(np.random.default_rng([3, e, 2]).integers(0, raw.shape[0] - 8000 + 1)) for e in range(2)]
    for e, s in enumerate(starts):  # the crop is the documented one
        assert torch.allclose(clips[(2, e)]["X"], stft.analyze(raw[s : s + 8000])[0][0])
    short = clips[(0, 0)]  # 0.4 s → padded to 0.5 s, not cropped
    assert short["valid"].sum() < short["valid"].numel()


def test_workers_give_the_same_batches(folder, tiny):
    stft = tiny[0]
    reader = AudioFolder(folder, duration=2.5)
    kw = dict(clip_seconds=0.6, crop="random", seed=1)
    g0, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    s0 = list(StreamingSpectrograms(reader, stft, **kw).fit_batches(4, g0))
    s2 = list(StreamingSpectrograms(reader, stft, num_workers=2, **kw).fit_batches(4, g2))
    assert len(s0) == len(s2) == 2
    for a, b in zip(s0, s2):
        assert torch.equal(a.X, b.X) and torch.equal(a.index, b.index) and torch.equal(a.valid, b.valid)
    assert torch.equal(torch.cat([b.index for b in s0]).sort().values, torch.arange(6))


def test_shards_split_every_global_batch(tiny):
    stft, ds, _ = tiny
    stream = StreamingSpectrograms(ds, stft)
    whole = [b.index for b in stream.fit_batches(8, torch.Generator().manual_seed(5))]
    parts = [[b for b in stream.shard(r, 3).fit_batches(8, torch.Generator().manual_seed(5))] for r in range(3)]
    for k, idx in enumerate(whole):  # 8, 8, 4 clips; ranks get 2-3 rows each, in order
        assert torch.equal(torch.cat([parts[r][k].index for r in range(3)]), idx)
        rows = [shard_rows(len(idx), r, 3) for r in range(3)]
        assert [len(parts[r][k]) for r in range(3)] == [s.stop - s.start for s in rows]
        assert all(parts[r][k].global_size == len(idx) for r in range(3))


def test_a_stream_is_read_once_per_epoch(tiny):
    stft, ds, model = tiny
    reader = Counting(ds)
    lmac = LMAC(model, ["net.block1", "net.block2"])
    lmac.fit(StreamingSpectrograms(reader, stft), epochs=2, batch_size=8, progress=False)
    # 2 epochs + the first batch the set-up looks at: nothing is loaded up front or kept
    assert sorted(set(reader.reads)) in ([2, 3], [3]) and sum(reader.reads) == 2 * len(ds) + 8


@pytest.mark.parametrize("method", ["lmac", "l2i"])
def test_streaming_fit_equals_in_memory_fit(tiny, method):
    stft, ds, model = tiny
    mem = to_spectrograms(ds, stft, progress=False)
    val = to_spectrograms(SyntheticEvents(6, seed=1, n_classes=3, duration=1.0), stft, progress=False)
    make = {"lmac": lambda: LMAC(model, ["net.block1", "net.block2"]),
            "l2i": lambda: L2I(model, ["net.block1", "net.block2"], n_components=6, hidden=8)}[method]
    opts = {"nmf_iter": 5} if method == "l2i" else {}
    a, b = make(), make()
    ha = a.fit(mem, epochs=2, batch_size=8, val=val, progress=False, **opts)
    hb = b.fit(StreamingSpectrograms(ds, stft), epochs=2, batch_size=8,
               val=StreamingSpectrograms(SyntheticEvents(6, seed=1, n_classes=3, duration=1.0), stft, batch_size=4),
               progress=False, **opts)
    for x, y in zip(a.decoder.state_dict().values(), b.decoder.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), method
    assert np.allclose(ha["loss"], hb["loss"], rtol=1e-6) and np.allclose(ha["val_loss"], hb["val_loss"], rtol=1e-5)


def test_streaming_l2i_dictionary_reads_a_bounded_number_of_frames(tiny):
    stft, ds, model = tiny
    l2i = L2I(model, ["net.block1", "net.block2"], n_components=4, hidden=8)
    h = l2i.fit(StreamingSpectrograms(ds, stft), epochs=1, batch_size=8, progress=False, nmf_iter=3,
                nmf_max_frames=1000)
    assert h["dictionary"]["frames"] <= 1000 and l2i.dictionary.shape == (129, 4)


def test_streaming_lmac_zs_equals_in_memory(tiny):
    stft = STFT(sample_rate=8000, n_fft=30, hop_length=30, win_length=30)  # 16 bins for the toy audio encoder
    ds = SyntheticEvents(8, seed=0, n_classes=2, duration=1.0, sample_rate=8000)
    words = {ds.classes[0]: ["a dog barking", "the sound of a dog"], ds.classes[1]: ["rain falling", "rain"]}
    captions = LabelCaptions(ds.classes, lambda c: words[c])
    torch.manual_seed(0)
    zs = ZeroShotClassifier(TinyAudio().eval(), WordVectors(), ["dog", "rain"], logit_scale=10.0)
    mem = to_spectrograms(ds, stft, progress=False)
    caps = [words[ds.classes[int(y)]] for y in mem.y]
    a = LMACZS(zs, layers=["audio_encoder.block1", "audio_encoder.block2"], hidden=8)
    b = LMACZS(zs, layers=["audio_encoder.block1", "audio_encoder.block2"], hidden=8)
    ha = a.fit((mem.X, caps), epochs=2, batch_size=4, progress=False)
    hb = b.fit(StreamingSpectrograms(ds, stft, captions=captions), epochs=2, batch_size=4, progress=False)
    assert np.allclose(ha["loss"], hb["loss"], rtol=1e-6)
    for x, y in zip(a.decoder.state_dict().values(), b.decoder.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6)
    with pytest.raises(InputError, match="captions"):
        LMACZS(zs, layers=["audio_encoder.block1"], hidden=8).fit(StreamingSpectrograms(ds, stft), epochs=1)


def test_default_collate_dataloader_and_feature_transform(tiny):
    stft, ds, model = tiny
    loader = DataLoader(ClipSpectrograms(ds, stft), batch_size=10)  # dicts; 'length' becomes a tensor
    lmac = LMAC(model, ["net.block1", "net.block2"])
    h = lmac.fit(loader, epochs=1, progress=False)
    assert len(h["loss"]) == 1 and np.isfinite(h["loss"][0])
    mel = StreamingSpectrograms(ds, stft, transform=FeatureTransform(model.features)).first_batch(2)
    assert mel.X.shape[2] == 16 and mel.phase is None and mel.valid.shape == (2, mel.X.shape[-1])


def test_bad_streaming_input_is_named(folder, tiny):
    stft = tiny[0]
    reader = AudioFolder(folder, duration=1.0)
    with pytest.raises(InputError, match="crop"):
        StreamingSpectrograms(reader, stft, crop="middle")
    with pytest.raises(InputError, match="8000 Hz"):
        StreamingSpectrograms(AudioFolder(folder, sample_rate=8000), stft)
    with pytest.raises(InputError, match="empty"):
        StreamingSpectrograms(reader, stft, index=[])
    with pytest.raises(InputError, match="out of range"):
        StreamingSpectrograms(reader, stft, index=[99])

    class Ragged(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.randn(4000 + 1000 * i), 0, {}

    with pytest.raises(InputError, match="clip_seconds"):
        StreamingSpectrograms(Ragged(), stft).first_batch(2)


def test_concat_readers_offsets_labels_and_streams_mixed_lengths(folder, tiny):
    stft = tiny[0]
    a = AudioFolder(folder, duration=1.0)
    b = SyntheticEvents(4, seed=0, n_classes=3, duration=1.0)
    both = ConcatReaders([a, b])
    assert len(both) == 10 and both.classes == ["unlabelled"] + list(b.classes)
    assert both.labels[:6] == [0] * 6 and both.labels[6:] == [1 + b[i][1] for i in range(4)]
    assert both.raw(2)[0].shape[0] == 40000 and both[2][0].shape[0] == 16000  # the file's own length vs the reader's
    stream = StreamingSpectrograms(both, stft, clip_seconds=1.5, crop="random")
    batch = stream.first_batch(10)
    assert batch.X.shape[-1] == 376 and not bool(batch.valid[0].all()) and bool(batch.valid[2].all())
    with pytest.raises(InputError, match="sample rates"):
        ConcatReaders([a, AudioFolder(folder, sample_rate=8000)])
