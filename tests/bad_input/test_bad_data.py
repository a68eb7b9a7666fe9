"""Bad input to the data readers: corrupt ESC-50 / UrbanSound8K metadata, wrong paths, bad arguments."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from captum_lmac.data import ESC50, FSDD, AudioFolder, NoiseFolder, SpeechFolder, UrbanSound8K
from captum_lmac.errors import DataNotFoundError, InputError

ESC_HEADER = "filename,fold,target,category,esc10,src_file,take"
US_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"


def _tone(path: Path, n: int = 4000, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.3 * np.sin(np.arange(n) * 0.2)).astype(np.float32), sr)


def _esc(root: Path, lines) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    for name in ("1-100-A-0.wav", "2-101-A-1.wav"):
        _tone(root / "audio" / name)
    text = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    (root / "meta" / "esc50.csv").write_bytes(text)
    return root


GOOD_ESC = [ESC_HEADER, "1-100-A-0.wav,1,0,dog,True,100,A", "2-101-A-1.wav,2,1,rooster,True,101,A"]


@pytest.mark.parametrize("lines, match", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", r"esc50\.csv is not a UTF-8 text csv"),
    ((ESC_HEADER + "\n1-100-A-0.wav,1,0,dog\x00,True,100,A\n").encode(), r"NUL byte at line 2"),
    ([ESC_HEADER, "1-100-A-0.wav,one,0,dog,True,100,A"], r"esc50\.csv, line 2: column 'fold' must be an integer, got 'one'"),
    ([ESC_HEADER, "1-100-A-0.wav,1.5,0,dog,True,100,A"], r"line 2: column 'fold' must be an integer"),
    ([ESC_HEADER, "1-100-A-0.wav,7,0,dog,True,100,A"], r"line 2: fold 7 is not one of \[1, 2, 3, 4, 5\]"),
    ([ESC_HEADER, "1-100-A-0.wav,1,dog,dog,True,100,A"], r"line 2: column 'target' must be an integer, got 'dog'"),
    (GOOD_ESC[:2] + ["2-101-A-1.wav,2,1"], r"line 3: the row is truncated \(it has 3 of 7 fields"),
    (GOOD_ESC[:2] + ["2-101-A-1.wav,2,1,rooster,True,101,A,extra"], r"line 3: the row has 8 fields but the header has 7"),
    (GOOD_ESC[:2] + [",2,1,rooster,True,101,A"], r"line 3: column 'filename' is empty"),
    (GOOD_ESC[:2] + ["2-101-A-1.wav,2,0,rooster,True,101,A"], r"line 3: target 0 is 'rooster' here but 'dog' at line 2"),
    ([ESC_HEADER], r"lists no clips"),
    (["filename;fold;target;category", "1-100-A-0.wav;1;0;dog"], r"lacks the column\(s\)"),
    (b"", r"lacks the column"),
])
def test_corrupt_esc50_csv(tmp_path, lines, match):
    root = _esc(tmp_path / "esc", lines)
    with pytest.raises(DataNotFoundError, match=match):
        ESC50(root)


def test_esc50_good_csv_with_blank_lines_and_spaces(tmp_path):
    root = _esc(tmp_path / "esc", [ESC_HEADER.replace(",", ", "), "", GOOD_ESC[1], "   ", GOOD_ESC[2]])
    ds = ESC50(root, sample_rate=8000, duration=0.5)
    assert len(ds) == 2 and ds.classes == ["dog", "rooster"]


def test_esc50_paths(tmp_path):
    with pytest.raises(DataNotFoundError, match="ESC-50 folder not found"):
        ESC50(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataNotFoundError, match="it is a file"):
        ESC50(tmp_path / "file")
    root = _esc(tmp_path / "esc", GOOD_ESC)
    (root / "meta" / "esc50.csv").unlink()
    (root / "meta" / "esc50.csv").mkdir()
    with pytest.raises(DataNotFoundError, match=r"esc50\.csv is a directory, not a csv file"):
        ESC50(root)
    root2 = _esc(tmp_path / "esc2", GOOD_ESC)
    (root2 / "audio" / "2-101-A-1.wav").unlink()
    (root2 / "audio" / "2-101-A-1.wav").mkdir()
    with pytest.raises(DataNotFoundError, match=r"2-101-A-1\.wav .* is a directory, not an audio file"):
        ESC50(root2)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(folds=[1.5]), InputError, "unknown fold 1.5"),
    (dict(folds=["x"]), InputError, "fold 'x' is not an integer"),
    (dict(folds=3), InputError, "fold 3 has no clips"),
    (dict(folds=[]), InputError, "no folds selected"),
    (dict(sample_rate=0), InputError, "sample_rate must be >= 1"),
    (dict(duration=float("nan")), InputError, "duration .* finite"),
    (dict(duration=-1), InputError, "duration"),
    (dict(duration="5s"), InputError, "duration .* must be a number"),
])
def test_esc50_arguments(tmp_path, kwargs, error, match):
    root = _esc(tmp_path / "esc", GOOD_ESC)
    with pytest.raises(error, match=match):
        ESC50(root, **kwargs)


def _us8k(root: Path, lines) -> Path:
    (root / "metadata").mkdir(parents=True)
    _tone(root / "audio" / "fold1" / "100-3-0-0.wav")
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("lines, match", [
    ([US_HEADER, "100-3-0-0.wav,100,0.0,0.5,1,first,3,dog_bark"], "column 'fold' must be an integer, got 'first'"),
    ([US_HEADER, "100-3-0-0.wav,100,0.0,0.5,1,11,3,dog_bark"], r"fold 11 is not one of \[1, 2"),
    ([US_HEADER, "100-3-0-0.wav,100,zero,0.5,1,1,3,dog_bark"], "column 'start' must be a number, got 'zero'"),
    ([US_HEADER, "100-3-0-0.wav,100,0.0,nan,1,1,3,dog_bark"], "column 'end' must be a finite number"),
    ([US_HEADER, "100-3-0-0.wav,100,0.0,0.5,1,1,three,dog_bark"], "column 'classID' must be an integer"),
    ([US_HEADER, "100-3-0-0.wav,100,0.0,0.5"], r"UrbanSound8K\.csv, line 2: the row is truncated"),
])
def test_corrupt_us8k_csv(tmp_path, lines, match):
    with pytest.raises(DataNotFoundError, match=match):
        UrbanSound8K(_us8k(tmp_path / "us", lines))


def test_other_folders(tmp_path):
    with pytest.raises(DataNotFoundError, match="audio folder not found"):
        AudioFolder(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no audio files"):
        AudioFolder(tmp_path / "empty")
    (tmp_path / "clip.wav").write_text("x")
    with pytest.raises(DataNotFoundError, match="it is a file"):
        AudioFolder(tmp_path / "clip.wav")
    with pytest.raises(DataNotFoundError, match="no speech files"):
        SpeechFolder(tmp_path / "empty")
    with pytest.raises(InputError, match="sample_rate must be >= 1"):
        NoiseFolder(tmp_path, sample_rate=-8000)
    with pytest.raises(DataNotFoundError, match="no FSDD recordings"):
        FSDD(tmp_path / "empty")
    _tone(tmp_path / "rec" / "7_jackson_1.wav")
    with pytest.raises(InputError, match="split must be 'train', 'test' or 'all'"):
        FSDD(tmp_path / "rec", split="validation")
    with pytest.raises(InputError, match=r"unknown speaker\(s\) \['nobody'\]"):
        FSDD(tmp_path / "rec", split="all", speakers=["nobody"])


def test_a_corrupt_audio_file_is_named(tmp_path):
    root = tmp_path / "clips"
    _tone(root / "good.wav")
    (root / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    ds = AudioFolder(root, sample_rate=8000, duration=0.5)
    with pytest.raises(InputError, match=r"cannot read audio file .*bad\.wav"):
        [ds[i] for i in range(len(ds))]
