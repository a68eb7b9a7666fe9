"""The one input-validation layer of the package.

Every public entry point checks what the user hands it with these functions, so that bad input
ends in one :class:`~captum_lmac.errors.InputError` whose message names the argument, the shape,
the dtype or the value — never in a deep torch traceback, and never in a silent wrong answer.
The input contract they enforce is documented in ``docs/input_contract.md``:

- :func:`check_waveform` — audio: (samples,), (N, samples), (N, 1, samples) or a soundfile-style
  (samples, channels) array (mixed down to mono); floats are cast to float32, integer PCM is
  scaled to [-1, 1] (:func:`pcm_to_float`), NaN/inf, empty, silent and implausibly loud arrays are
  refused.
- :func:`check_spectrogram` — linear magnitudes X (N, 1, F, T): floating point (float64/float16 are
  cast to float32; integer, bool and complex tensors are refused), finite, not mostly negative,
  optionally not all-zero, with the expected number of frequency bins.
- :func:`check_int`, :func:`check_positive_int`, :func:`check_number`, :func:`check_choice` —
  scalar arguments (epochs, batch sizes, learning rates, sample rates, thresholds, options).
- :func:`check_model_output`, :func:`check_finite_module`, :func:`guarded_forward` — the
  classifier: finite weights, finite (N, classes) outputs, and inputs too short for its pooling
  reported with the minimum length (:func:`min_input_frames`) instead of torch's pooling error.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Callable, Iterable, List, Optional, Type

import numpy as np
import torch
from torch import Tensor, nn

from .errors import InputError

#: Largest peak accepted for a floating-point waveform. Audio lies in [-1, 1]; a float array
#: louder than this is almost always integer PCM converted to float without scaling.
MAX_FLOAT_PEAK = 64.0

#: A 2-D array (a, b) with b <= MAX_CHANNELS < a is read as (samples, channels) (soundfile's layout).
MAX_CHANNELS = 8

#: Integer PCM dtypes and how they map to [-1, 1]: ``(x - offset) / scale``.
PCM_SCALING = {
    torch.int8: (0.0, 128.0),
    torch.uint8: (128.0, 128.0),          # 8-bit WAV is unsigned, centred on 128
    torch.int16: (0.0, 32768.0),
    torch.int32: (0.0, 2147483648.0),
}

#: Fraction of the largest |value| a sample's most negative bin may reach (rounding, NoiseTunnel
#: or sensitivity perturbations of a magnitude); anything more negative is not a magnitude.
NEGATIVE_TOLERANCE = 0.1

#: Largest fraction of negative bins a sample may have. Zero-mean noise added to a magnitude
#: X >= 0 makes each bin negative with probability <= 1/2, so more than half negative bins means
#: a log / dB / normalised spectrogram, not |X|.
NEGATIVE_FRACTION = 0.5

#: Phrases of torch errors raised when an input is smaller than a pooling / convolution kernel.
_TOO_SMALL = (
    "output size is too small",
    "kernel size can't be greater than actual input size",
    "padding size should be less than",
    "input size is too small",
    "expected input with shape",
    "smaller than kernel size",
    "non-positive",
)


# --- scalar arguments -------------------------------------------------------------------------------------------


def check_int(value: Any, name: str, minimum: Optional[int] = None) -> int:
    """``value`` as an int (an int, a numpy integer or an integral float such as ``16000.0``).

    Raises:
        InputError: for bools, strings, non-integral or non-finite numbers, or values below
            ``minimum``, naming the argument.
    """
    if isinstance(value, bool) or value is None:
        raise InputError(f"{name} must be an integer, got {value!r}")
    if torch.is_tensor(value) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, Integral):
        out = int(value)
    elif isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
        out = int(value)
    else:
        raise InputError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and out < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {out}")
    return out


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (epochs, batch sizes, sample rates, FFT sizes, ...)."""
    return check_int(value, name, minimum=1)


def check_number(value: Any, name: str, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 strict_minimum: bool = False) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (``(minimum, maximum]`` with ``strict_minimum``).

    Raises:
        InputError: for bools, non-numbers, NaN/inf and values out of range, naming the argument.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        if not (torch.is_tensor(value) and value.numel() == 1):
            raise InputError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (out <= minimum if strict_minimum else out < minimum):
        raise InputError(f"{name} must be {'>' if strict_minimum else '>='} {minimum:g}, got {out:g}")
    if maximum is not None and out > maximum:
        raise InputError(f"{name} must be <= {maximum:g}, got {out:g}")
    return out


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else an InputError listing them."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name} must be one of {choices}, got {value!r}")
    return value


# --- waveforms --------------------------------------------------------------------------------------------------


def pcm_to_float(waveform: Tensor, name: str = "waveform") -> Tensor:
    """Integer PCM → float32 in [-1, 1]; floating point → float32 (float64/float16 are cast).

    The rule: int16 ÷ 32768, int32 ÷ 2³¹, int8 ÷ 128, uint8 (8-bit WAV) (x − 128) ÷ 128. Other
    integer types (int64 — what ``torch.tensor([1, 2])`` gives —, uint16/32/64) are refused as
    ambiguous, as are bool and complex tensors.
    """
    if waveform.dtype in PCM_SCALING:
        offset, scale = PCM_SCALING[waveform.dtype]
        return (waveform.to(torch.float64) - offset).div_(scale).to(torch.float32)
    if waveform.is_complex():
        raise InputError(f"{name} is complex ({waveform.dtype}); give the real-valued audio signal")
    if waveform.dtype == torch.bool:
        raise InputError(f"{name} is a bool tensor; give audio samples (float in [-1, 1] or int16/int32 PCM)")
    if not waveform.is_floating_point():
        raise InputError(
            f"{name} has dtype {waveform.dtype}, which is not a PCM sample format; give float audio in [-1, 1] "
            "or int16 / int32 / uint8 PCM (scaled automatically: int16 ÷ 32768, int32 ÷ 2^31, uint8 (x − 128) ÷ 128)"
        )
    return waveform.to(torch.float32)


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "USV":
            raise InputError(f"{name} is a numpy array of {value.dtype}, not of audio samples")
        if value.dtype.kind == "u" and value.dtype.itemsize > 1:
            raise InputError(f"{name} has dtype {value.dtype}, which is not a PCM sample format; "
                             "give float audio in [-1, 1] or int16 / int32 / uint8 PCM")
        return torch.from_numpy(np.ascontiguousarray(value))
    if not torch.is_tensor(value):
        raise InputError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    return value


def check_waveform(waveform: Any, name: str = "waveform", allow_silent: bool = False,
                   min_samples: int = 1, max_peak: Optional[float] = MAX_FLOAT_PEAK) -> Tensor:
    """Audio as a float32 (N, samples) tensor, checked.

    Accepts (samples,), (N, samples), (N, 1, samples) and soundfile's (samples, channels) layout (a
    2-D array whose last dimension is at most :data:`MAX_CHANNELS` and smaller than the first),
    which is mixed down to mono by averaging the channels; tensors or numpy arrays; float (cast to
    float32) or integer PCM (scaled to [-1, 1], see :func:`pcm_to_float`).

    Args:
        waveform: The audio.
        name (str): Its name in messages.
        allow_silent (bool): Accept all-zero clips.
        min_samples (int): Fewest samples per clip.
        max_peak (float, optional): Refuse float audio whose peak exceeds this (unscaled PCM).

    Raises:
        InputError: wrong type, dtype or number of dimensions, multi-channel (N, C, samples) input,
            empty or too short clips, NaN/inf samples, silent clips, implausibly loud float audio.
    """
    w = _as_tensor(waveform, name)
    was_float = w.is_floating_point()
    shape = tuple(w.shape)
    if w.dim() == 2 and 1 < w.shape[1] <= MAX_CHANNELS < w.shape[0]:
        w = pcm_to_float(w, name).mean(dim=1, keepdim=True).T  # (samples, channels) → (1, samples)
    elif w.dim() == 3:
        if w.shape[1] != 1:
            raise InputError(
                f"{name} has shape {shape}: expected (N, 1, samples) mono audio; mix the {w.shape[1]} channels "
                f"down first ({name}.mean(1))"
            )
        w = w[:, 0]
    elif w.dim() == 1:
        w = w.unsqueeze(0)
    elif w.dim() != 2:
        raise InputError(f"{name} has shape {shape}: expected (samples,), (N, samples), (N, 1, samples) "
                         "or (samples, channels)")
    if w.numel() == 0:
        raise InputError(f"{name} is empty (shape {shape})")
    w = pcm_to_float(w, name)
    if not torch.isfinite(w).all():
        bad = (~torch.isfinite(w)).any(dim=-1).nonzero().flatten().tolist()
        raise InputError(f"{name} contains NaN or infinite samples (clip(s) {bad[:5]})")
    if w.shape[-1] < min_samples:
        raise InputError(f"{name} has {w.shape[-1]} samples per clip (shape {shape}); at least {min_samples} are needed")
    peak = w.abs().amax(dim=-1)
    if not allow_silent:
        silent = (peak == 0).nonzero().flatten()
        if len(silent):
            raise InputError(f"{name} is silent (all zeros) for item(s) {silent.tolist()[:5]}")
    if was_float and max_peak is not None and float(peak.max()) > max_peak:
        raise InputError(
            f"{name} has peak amplitude {float(peak.max()):.4g}: float audio lies in [-1, 1]. This looks like integer "
            "PCM converted to float without scaling; divide by 32768 (16-bit) or pass the int16 array itself "
            "(integer PCM is scaled automatically)"
        )
    return w


# --- spectrograms -----------------------------------------------------------------------------------------------


def check_spectrogram(X: Any, name: str = "inputs", n_freqs: Optional[int] = None, allow_silent: bool = True,
                      allow_negative: bool = False, what: str = "the decoder was fitted on") -> Tensor:
    """A linear-magnitude batch X (N, 1, F, T) as float32, checked.

    Args:
        X: The tensor.
        name (str): Its name in messages.
        n_freqs (int, optional): The number of frequency bins F it must have.
        allow_silent (bool): Accept all-zero samples (default True; ``attribute`` refuses them:
            there is nothing to explain in silence).
        allow_negative (bool): Accept clearly negative values (default False: a magnitude is
            >= 0). Noise-level negatives, as noise-perturbed magnitudes in NoiseTunnel /
            sensitivity_max have them, are tolerated: a sample is refused when a bin is below
            −:data:`NEGATIVE_TOLERANCE` × its largest |value| or when more than
            :data:`NEGATIVE_FRACTION` of its bins are negative.
        what (str): What ``n_freqs`` comes from, for the message.

    Raises:
        InputError: not a tensor; not 4-D with one channel; empty; integer, bool or complex dtype;
            the wrong F; NaN/inf; mostly negative values (a log / dB spectrogram); all-zero samples.
    """
    if not torch.is_tensor(X):
        raise InputError(f"{name} must be a tensor (N, 1, F, T), got {type(X).__name__}")
    shape = tuple(X.shape)
    if X.dim() != 4 or X.shape[1] != 1:
        hint = "; add the batch dimension: X.unsqueeze(0)" if X.dim() == 3 and X.shape[0] == 1 else ""
        raise InputError(f"{name} must have shape (N, 1, F, T), got {shape}{hint}")
    if X.numel() == 0:
        raise InputError(f"{name} are empty (shape {shape})")
    if X.is_complex():
        raise InputError(f"{name} are complex ({X.dtype}); give the linear magnitude |X| (STFT.analyze returns it)")
    if not X.is_floating_point():
        raise InputError(
            f"{name} have dtype {X.dtype}: a magnitude spectrogram is floating point (the output of STFT.analyze); "
            f"if this really is a magnitude, cast it with X.float()"
        )
    if n_freqs is not None and X.shape[2] != n_freqs:
        raise InputError(
            f"{name} have {X.shape[2]} frequency bins (shape {shape}) but {what} {n_freqs}; "
            "use the same STFT / feature settings"
        )
    if X.dtype != torch.float32:
        X = X.float()
    finite = torch.isfinite(X)
    if not finite.all():
        bad = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        raise InputError(f"{name} contain NaN or infinite values (sample(s) {bad[:5]})")
    flat = X.detach().flatten(1)
    peak = flat.abs().amax(1)
    if not allow_negative:
        low = flat.amin(1)
        negative = (flat < 0).float().mean(1)
        bad = ((low < -NEGATIVE_TOLERANCE * peak) | (negative > NEGATIVE_FRACTION)).nonzero().flatten().tolist()
        if bad:
            i = bad[0]
            raise InputError(
                f"{name} hold negative values (sample {i}: min {float(low[i]):.4g}, max |X| {float(peak[i]):.4g}, "
                f"{100 * float(negative[i]):.0f} % of the bins < 0): the methods take the linear magnitude |X| >= 0 "
                "(STFT.analyze), not a log / dB or normalised spectrogram"
            )
    if not allow_silent:
        silent = (peak == 0).nonzero().flatten().tolist()
        if silent:
            raise InputError(f"{name} are all zeros for sample(s) {silent[:5]}: there is nothing to explain in silence")
    return X


# --- the classifier ---------------------------------------------------------------------------------------------


def nonfinite_parameters(module: Any) -> List[str]:
    """Names of the floating-point parameters and buffers of ``module`` holding NaN or inf values."""
    if not isinstance(module, nn.Module):
        return []
    try:
        state = module.state_dict()
    except Exception:  # noqa: BLE001 - exotic modules (TorchScript) may not expose a state dict
        return []
    return [k for k, t in state.items()
            if torch.is_tensor(t) and t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all())]


def check_finite_module(module: Any, name: str = "the classifier", error: Type[Exception] = InputError,
                        hint: str = "it cannot be explained (retrain it or load a good checkpoint)") -> None:
    """Refuse a model whose weights (parameters or buffers) contain NaN or inf values.

    Raises:
        ``error`` (InputError by default), naming the first few non-finite tensors.
    """
    bad = nonfinite_parameters(module)
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise error(f"{name} has NaN or infinite weights in {bad[:3]}{more}; {hint}")


def check_model_output(out: Any, name: str = "the classifier", batch_size: Optional[int] = None,
                       model: Any = None, two_d: bool = True) -> Tensor:
    """The classifier's output as a finite (N, C) tensor.

    Args:
        out: What the model returned.
        name (str): The model's name in messages.
        batch_size (int, optional): The N it must have.
        model (nn.Module, optional): Named in the message when its weights are the cause of NaN outputs.
        two_d (bool): Require a 2-D (N, C) output.

    Raises:
        InputError: not a tensor, not (N, C), the wrong N, or NaN/inf scores.
    """
    if not torch.is_tensor(out):
        raise InputError(f"{name} must return a tensor of scores (N, classes), got {type(out).__name__}")
    if two_d and out.dim() != 2:
        raise InputError(f"{name} must return scores of shape (N, classes), got shape {tuple(out.shape)}")
    if batch_size is not None and out.shape[0] != batch_size:
        raise InputError(f"{name} returned shape {tuple(out.shape)} for a batch of {batch_size} inputs")
    if not torch.isfinite(out).all():
        cause = nonfinite_parameters(model)
        why = f": its weights contain NaN or inf values ({cause[:3]})" if cause else \
            " (the input may be out of the range it was trained on)"
        raise InputError(f"{name} returned NaN or infinite scores{why}; refusing to explain them")
    return out


def _is_too_small(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(p in text for p in _TOO_SMALL)


def _probe_ok(model: Callable[..., Any], X: Tensor, frames: int) -> bool:
    reps = -(-frames // X.shape[-1])
    probe = X[:1].repeat(1, 1, 1, reps)[..., :frames].detach()
    try:
        with torch.no_grad():
            if getattr(model, "needs_phase", False) is True:
                phase = torch.zeros_like(probe)
                with model.using_phase(phase):
                    model(probe)
            else:
                model(probe)
        return True
    except Exception:  # noqa: BLE001 - any failure means "still too short" for the probe
        return False


def min_input_frames(model: Callable[..., Any], X: Tensor, max_frames: int = 1 << 14) -> Optional[int]:
    """The fewest frames T for which ``model`` runs on X (N, 1, F, T) (probed on X's first clip
    tiled in time), or None if it fails up to ``max_frames``."""
    lo = int(X.shape[-1])
    hi = lo
    while True:
        hi *= 2
        if hi > max_frames:
            return None
        if _probe_ok(model, X, hi):
            break
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _probe_ok(model, X, mid):
            hi = mid
        else:
            lo = mid
    return hi


def too_short_message(model: Callable[..., Any], X: Tensor, name: str = "the classifier",
                      hop_length: Optional[int] = None, sample_rate: Optional[int] = None) -> str:
    """The message for an input too short for ``model``'s pooling, with the minimum length probed."""
    T = int(X.shape[-1])
    need = min_input_frames(model, X)
    analysis = getattr(model, "stft", None)  # e.g. a WaveformClassifier knows its STFT
    if hop_length is None and isinstance(getattr(analysis, "hop_length", None), int):
        hop_length, sample_rate = analysis.hop_length, getattr(analysis, "sample_rate", None)

    def frames(n: int) -> str:
        if hop_length:
            samples = (n - 1) * int(hop_length)
            secs = f", {samples / sample_rate:.3g} s at {sample_rate} Hz" if sample_rate else ""
            return f"{n} frames (≈ {samples} samples{secs})"
        return f"{n} frames"

    if need is None:
        return f"the input (shape {tuple(X.shape)}) is too short for {name}'s pooling: {frames(T)}; use a longer clip"
    return (f"the input (shape {tuple(X.shape)}) is too short for {name}: it has {frames(T)} but {name} needs at "
            f"least {frames(need)}; use a longer clip or pad it")


def short_input_error(exc: BaseException, model: Callable[..., Any], X: Any, name: str = "the classifier",
                      hop_length: Optional[int] = None, sample_rate: Optional[int] = None) -> Optional[InputError]:
    """The InputError for ``exc`` if it is torch's "input smaller than the kernel" error on X
    (N, 1, F, T), else None."""
    if isinstance(exc, RuntimeError) and torch.is_tensor(X) and X.dim() == 4 and _is_too_small(exc):
        return InputError(too_short_message(model, X, name, hop_length, sample_rate))
    return None


def guarded_forward(model: Callable[..., Any], X: Tensor, *args: Any, name: str = "the classifier",
                    hop_length: Optional[int] = None, sample_rate: Optional[int] = None) -> Any:
    """``model(X, *args)``, with an input too short for its pooling / convolutions reported as an
    InputError naming the minimum length (probed only after such a failure, so the normal call
    costs nothing extra)."""
    try:
        return model(X, *args)
    except InputError:
        raise
    except RuntimeError as exc:
        err = short_input_error(exc, model, X, name, hop_length, sample_rate)
        if err is not None:
            raise err from None
        raise


def one_line(message: Any) -> str:
    """A message on one line (multi-line hints such as expected layouts joined with ' | ')."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return " | ".join(parts)


__all__ = [
    "MAX_FLOAT_PEAK", "MAX_CHANNELS", "PCM_SCALING", "NEGATIVE_TOLERANCE", "NEGATIVE_FRACTION",
    "check_int", "check_positive_int", "check_number", "check_choice",
    "pcm_to_float", "check_waveform", "check_spectrogram",
    "nonfinite_parameters", "check_finite_module", "check_model_output",
    "min_input_frames", "too_short_message", "short_input_error", "guarded_forward", "one_line",
]
