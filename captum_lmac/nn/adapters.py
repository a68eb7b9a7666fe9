r"""Adapters that turn the classifiers people have into the X → logits module every method explains.

Every attribution method, metric and the benchmark harness of captum_lmac explains a model whose
input is the linear STFT magnitude ``X`` (N, 1, F, T) and whose output is logits (N, C). Two
adapters bring other classifiers to that shape without changing them:

- :class:`WaveformClassifier` — for models that take waveforms (N, samples) and compute their own
  features (PANNs CNN14 with its torchlibrosa front end, HF ``AutoModelForAudioClassification``
  behind a differentiable front end, any wav2vec2-style model): the module computes
  ``model(ISTFT(X · e^{jP}))`` with ``P`` the phase of the clip being explained, so gradients flow
  through the inverse STFT and every mask on ``X`` is listenable with
  :meth:`captum_lmac.STFT.listen`.
- :class:`PickLogits` / :func:`select_logits` — for models whose output is a tuple, a dict or an
  HF ``ModelOutput``: pick the logits (by key, attribute, index or a callable) and check they are
  (N, classes).

The phase protocol (how ``P`` reaches :meth:`WaveformClassifier.forward`):

1. **Captum-native**: pass it as ``additional_forward_args=(phase,)``. Captum expands additional
   forward arguments exactly like the inputs (Integrated Gradients repeats them per step,
   NoiseTunnel and ``captum.metrics.infidelity`` repeat-interleave them per sample), so Saliency,
   IG, NoiseTunnel, GradientShap, KernelShap, LayerGradCam, GuidedBackprop and
   ``captum.metrics.infidelity`` work unchanged.
2. **Bound phase**: code that calls ``model(X)`` with one argument (our metrics, the learned
   methods, the harness) runs inside ``with wf.using_phase(P):``. The bound phase must have X's
   batch size, or batch size 1 (one clip, broadcast over any batch — e.g. a single clip expanded by
   NoiseTunnel). Contexts nest and restore the previous phase on exit. The binding is plain
   per-instance state: it is **not thread-safe** (do not share one WaveformClassifier between
   threads that bind different phases).

A phase passed explicitly always wins over the bound one.

:class:`KaldiFbank` reproduces the HF ``ASTFeatureExtractor`` (Kaldi fbank, pad/crop, AudioSet
normalisation) as a differentiable torch module, and :class:`FrontEndClassifier` chains such a
front end with a feature-input model into a waveform model. HF feature extractors themselves work
on numpy arrays and are not differentiable, so they cannot sit inside ``forward``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

import torch
import torchaudio
from torch import Tensor, nn

from ..audio import STFT
from ..errors import InputError

OutputSpec = Union[None, str, int, Callable[[Any], Tensor]]
"""How to find the logits in a model output: None (automatic), a key/attribute name, an index or a callable."""


# --- picking the logits -----------------------------------------------------------------------------


def _describe(obj: Any) -> str:
    """A short description of a model output for error messages."""
    if torch.is_tensor(obj):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, Mapping):
        return f"a {type(obj).__name__} with keys {list(obj.keys())}"
    if isinstance(obj, (tuple, list)):
        inner = ", ".join(str(tuple(o.shape)) if torch.is_tensor(o) else type(o).__name__ for o in obj)
        return f"a {type(obj).__name__} of {len(obj)} ({inner})"
    if dataclasses.is_dataclass(obj):
        return f"a {type(obj).__name__} with fields {[f.name for f in dataclasses.fields(obj)]}"
    return f"a {type(obj).__name__}"


def _pick(out: Any, output: OutputSpec, where: str) -> Any:
    if callable(output):
        try:
            return output(out)
        except Exception as exc:
            raise InputError(f"{where}: the output picker {output!r} failed on {_describe(out)}: {exc}") from None
    if isinstance(output, bool):
        raise InputError(f"{where}: output must be a key, an attribute name, an index or a callable, not a bool")
    if isinstance(output, int):
        seq = list(v for v in out.values() if v is not None) if isinstance(out, Mapping) else out
        if not isinstance(seq, (tuple, list)):
            raise InputError(f"{where}: output={output} indexes a tuple, but the model returned {_describe(out)}")
        if not -len(seq) <= output < len(seq):
            raise InputError(f"{where}: output={output} is out of range for {_describe(out)}")
        return seq[output]
    if isinstance(output, str):
        if isinstance(out, Mapping):
            if output in out:
                return out[output]
            raise InputError(f"{where}: the model output has no {output!r}; it is {_describe(out)}")
        if hasattr(out, output):
            return getattr(out, output)
        raise InputError(f"{where}: the model output has no attribute {output!r}; it is {_describe(out)}")
    raise InputError(f"{where}: output must be None, a key/attribute name, an index or a callable, got {output!r}")


def _auto_logits(out: Any, where: str) -> Any:
    if torch.is_tensor(out):
        return out
    if isinstance(out, Mapping):  # dicts and HF ModelOutput
        if "logits" in out:
            return out["logits"]
        raise InputError(
            f"{where}: the model returned {_describe(out)} and none is called 'logits'; pass output=<key> "
            "(e.g. output='clipwise_output' for PANNs, with from_probabilities=True) or output=<callable>"
        )
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]  # (logits, ...) as HF models with return_dict=False
    raise InputError(f"{where}: cannot find logits in {_describe(out)}; pass output=<key, index or callable>")


def select_logits(
    out: Any,
    output: OutputSpec = None,
    batch_size: Optional[int] = None,
    from_probabilities: bool = False,
    where: str = "the model",
) -> Tensor:
    r"""Find the logits (N, C) in a model output and check their shape.

    Args:
        out: What the model returned: a tensor, a tuple/list, a dict or an HF ``ModelOutput``.
        output: How to find the logits. ``None`` (default): a tensor is used as is, a dict /
            ``ModelOutput`` gives its ``"logits"`` entry, an object its ``.logits`` attribute, a
            tuple its first element. A ``str`` is a key (dicts) or an attribute name, an ``int`` an
            index, a callable is applied to the output and must return the logits tensor.
        batch_size (int, optional): N of the input; the logits must have it.
        from_probabilities (bool): The picked tensor holds probabilities in [0, 1] (e.g. PANNs'
            sigmoid ``clipwise_output``): return ``logit(p)`` so softmax-based metrics see scores.
        where (str): Name of the model in error messages.

    Returns:
        Tensor: the logits, (N, C).

    Raises:
        InputError: when the logits cannot be found, or are not a (N, C) tensor with the input's N.

    Examples::

        >>> select_logits({"logits": torch.zeros(2, 5)}).shape
        torch.Size([2, 5])
        >>> select_logits((torch.zeros(2, 5), torch.zeros(2, 7)), output=1).shape
        torch.Size([2, 7])
    """
    logits = _auto_logits(out, where) if output is None else _pick(out, output, where)
    if not torch.is_tensor(logits):
        raise InputError(f"{where}: the picked output is {_describe(logits)}, not a tensor of logits")
    if logits.dim() != 2:
        hint = ""
        if logits.dim() == 1:
            hint = "; a classifier must return one score per class, (N, classes), even for one class"
        elif logits.dim() == 3:
            hint = "; frame-wise scores (N, classes, frames) need pooling: pass output=lambda o: o.amax(-1) or similar"
        raise InputError(f"{where} must return logits of shape (N, classes), got shape {tuple(logits.shape)}{hint}")
    if batch_size is not None and logits.shape[0] != batch_size:
        raise InputError(
            f"{where} returned logits of shape {tuple(logits.shape)} for a batch of {batch_size} inputs; "
            "the first dimension must be the batch"
        )
    if from_probabilities:
        logits = torch.logit(logits.clamp(1e-7, 1 - 1e-7))
    return logits


class PickLogits(nn.Module):
    r"""Wrap a model whose output is a tuple / dict / ``ModelOutput`` so that it returns logits (N, C).

    Args:
        model (nn.Module): The model.
        output: See :func:`select_logits` (default: automatic).
        from_probabilities (bool): The picked tensor holds probabilities; return ``logit(p)``.

    Examples::

        >>> net = PickLogits(hf_like_net, output="logits")
        >>> model = SpectrogramClassifier(LogMel(stft, n_mels=64), net)
    """

    def __init__(self, model: nn.Module, output: OutputSpec = None, from_probabilities: bool = False) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.from_probabilities = bool(from_probabilities)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        n = args[0].shape[0] if args and torch.is_tensor(args[0]) else None
        return select_logits(self.model(*args, **kwargs), self.output, n, self.from_probabilities,
                             where=type(self.model).__name__)


# --- waveform models -----------------------------------------------------------------------------------


def model_sample_rate(model: Any) -> Optional[int]:
    """The sample rate a model declares (``sample_rate`` or ``sampling_rate`` attribute, or its HF
    ``config.sampling_rate``), or None."""
    for obj in (model, getattr(model, "config", None)):
        for name in ("sample_rate", "sampling_rate"):
            value = getattr(obj, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return int(value)
    return None


@dataclasses.dataclass
class _Binding:
    phase: Tensor
    length: Optional[int]


class WaveformClassifier(nn.Module):
    r"""Explain a waveform-input classifier on the STFT magnitude: ``X ↦ model(ISTFT(X · e^{jP}))``.

    ``P`` is the phase of the clip being explained (from ``stft.analyze``), so an all-ones mask
    gives back the clip itself and any mask ``M`` on ``X`` is what the classifier hears of
    ``stft.listen(X, P, M)``. Gradients flow through the inverse STFT, so gradient methods work
    unchanged. See the module docstring for the two ways the phase reaches ``forward``
    (``additional_forward_args`` for Captum, :meth:`using_phase` for one-argument calls).

    Args:
        model (nn.Module or callable): The waveform classifier, (N, samples) → logits (or an output
            holding them, see ``output``). Its own front end (mel filterbank, normalisation) stays
            inside it.
        stft (STFT): The analysis that defines X; its sample rate must be the model's.
        sample_rate (int, optional): Sample rate the model expects. Default: the model's
            ``sample_rate`` / ``sampling_rate`` attribute if it has one. A mismatch with
            ``stft.sample_rate`` raises :class:`~captum_lmac.InputError`.
        length (int, optional): Clip length in samples returned by the ISTFT when no length is
            bound (default: what the ISTFT gives for T frames, ``(T − 1) · hop``).
        output: How to find the logits in the model's output (see :func:`select_logits`).
        from_probabilities (bool): The model returns probabilities (PANNs): explain ``logit(p)``.

    Attributes:
        needs_phase (bool): Always True: tells the library that calls need the clip's phase.
        n_freqs (int): F of the X this module takes.
        sample_rate (int): Sample rate of the clips.

    Examples::

        >>> stft = STFT(sample_rate=16000)
        >>> wf = WaveformClassifier(waveform_net, stft)
        >>> X, P = stft.analyze(waveform)
        >>> Saliency(wf).attribute(X, target=0, additional_forward_args=(P,))   # Captum-native
        >>> with wf.using_phase(P, length=waveform.shape[-1]):                  # one-argument calls
        ...     mask = lmac.attribute(X)
    """

    needs_phase = True

    def __init__(
        self,
        model: Callable[[Tensor], Any],
        stft: STFT,
        sample_rate: Optional[int] = None,
        length: Optional[int] = None,
        output: OutputSpec = None,
        from_probabilities: bool = False,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise InputError(f"model must be a callable waveform classifier, got {type(model).__name__}")
        if not isinstance(stft, STFT):
            raise InputError(f"stft must be a captum_lmac.STFT, got {type(stft).__name__}")
        expected = int(sample_rate) if sample_rate is not None else model_sample_rate(model)
        if expected is not None and expected != stft.sample_rate:
            raise InputError(
                f"the waveform model expects {expected} Hz audio but the STFT is set for {stft.sample_rate} Hz; "
                f"build the STFT with sample_rate={expected} and resample the clips to it (captum_lmac.resample)"
            )
        if length is not None and int(length) < 1:
            raise InputError(f"length must be a positive number of samples, got {length}")
        self.model = model
        self.stft = stft
        self.sample_rate = stft.sample_rate
        self.length = int(length) if length is not None else None
        self.output = output
        self.from_probabilities = bool(from_probabilities)
        self._bindings: List[_Binding] = []

    # ------------------------------------------------------------------ phase binding
    @property
    def n_freqs(self) -> int:
        """Frequency bins F of the magnitude X this module takes."""
        return self.stft.n_freqs

    @property
    def bound_phase(self) -> Optional[Tensor]:
        """The phase bound by the innermost :meth:`using_phase` block, or None."""
        return self._bindings[-1].phase if self._bindings else None

    @property
    def bound_length(self) -> Optional[int]:
        """The clip length bound by the innermost :meth:`using_phase` block, else ``length``."""
        if self._bindings and self._bindings[-1].length is not None:
            return self._bindings[-1].length
        return self.length

    def _check_phase(self, phase: Any, what: str) -> Tensor:
        if not torch.is_tensor(phase):
            raise InputError(f"{what} must be a tensor (N, 1, F, T) from stft.analyze, got {type(phase).__name__}")
        if phase.dim() == 3:
            phase = phase.unsqueeze(1)
        if phase.dim() != 4 or phase.shape[1] != 1 or phase.shape[2] != self.n_freqs:
            raise InputError(
                f"{what} has shape {tuple(phase.shape)}; expected (N, 1, {self.n_freqs}, T) from the same STFT as X"
            )
        if not torch.isfinite(phase).all():
            raise InputError(f"{what} contains NaN or infinite values")
        return phase

    @contextlib.contextmanager
    def using_phase(self, phase: Tensor, length: Optional[int] = None) -> Iterator["WaveformClassifier"]:
        r"""Bind the phase (and clip length) used by calls that pass only X, inside a ``with`` block.

        Blocks nest; leaving one restores the previous binding. Not thread-safe.

        Args:
            phase (Tensor): (N, 1, F, T) from ``stft.analyze``; N must be the batch size of the
                calls made inside the block, or 1 (broadcast to any batch size).
            length (int, optional): Samples of the original clip (ISTFT output length).
        """
        phase = self._check_phase(phase, "the bound phase")
        self._bindings.append(_Binding(phase.detach(), int(length) if length is not None else None))
        depth = len(self._bindings)
        try:
            yield self
        finally:
            del self._bindings[depth - 1 :]

    def analyze(self, waveform: Any, sample_rate: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """``stft.analyze`` with the sample-rate check: waveform → (X, phase)."""
        return self.stft.analyze(waveform, sample_rate=sample_rate)

    @contextlib.contextmanager
    def clip(self, waveform: Any, sample_rate: Optional[int] = None) -> Iterator[Tuple[Tensor, Tensor]]:
        """Analyse ``waveform`` and bind its phase and length for the block; yields ``(X, phase)``.

        Examples::

            >>> with wf.clip(waveform, sample_rate=16000) as (X, P):
            ...     mask = make_baseline("gradcam", wf, layer=wf.model.block4).attribute(X)
            ...     audio = wf.stft.listen(X, P, mask, length=waveform.shape[-1])
        """
        X, phase = self.analyze(waveform, sample_rate)
        with self.using_phase(phase, length=int(torch.as_tensor(waveform).shape[-1])):
            yield X, phase

    # ------------------------------------------------------------------ forward
    def waveform(self, X: Tensor, phase: Optional[Tensor] = None, length: Optional[int] = None) -> Tensor:
        """The waveform (N, samples) the model hears for magnitude X: ISTFT(X · e^{jP})."""
        if not torch.is_tensor(X) or X.dim() != 4 or X.shape[1] != 1 or X.shape[2] != self.n_freqs:
            shape = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
            raise InputError(f"WaveformClassifier expects X of shape (N, 1, {self.n_freqs}, T), got {shape}")
        n = X.shape[0]
        if phase is None:
            if not self._bindings:
                raise InputError(
                    "WaveformClassifier needs the phase of the clip being explained: pass it as "
                    "additional_forward_args=(phase,) to Captum methods, or call inside "
                    "`with model.using_phase(phase):`"
                )
            phase = self._bindings[-1].phase
            if phase.shape[0] != n:
                if phase.shape[0] != 1:
                    raise InputError(
                        f"X has shape {tuple(X.shape)} but the bound phase has shape {tuple(phase.shape)}: "
                        "their batch sizes differ. Bind the phase of exactly this batch (or of one clip), or pass "
                        "the phase via additional_forward_args=(phase,) for Captum methods that expand the batch"
                    )
                phase = phase.expand(n, -1, -1, -1)
        else:
            phase = self._check_phase(phase, "the phase")
            if phase.shape[0] != n:
                raise InputError(
                    f"X has shape {tuple(X.shape)} but the phase passed with it has shape {tuple(phase.shape)}: "
                    "their batch sizes differ"
                )
        if phase.shape[-1] != X.shape[-1]:
            raise InputError(
                f"X has {X.shape[-1]} frames but the phase has {phase.shape[-1]} "
                f"(X {tuple(X.shape)}, phase {tuple(phase.shape)}): use the phase of the clip being explained"
            )
        if length is None:
            length = self.bound_length
        return self.stft.synthesize(X, phase.to(device=X.device), length)

    def forward(self, X: Tensor, phase: Optional[Tensor] = None, length: Optional[int] = None) -> Tensor:
        """Logits (N, C) of the waveform model on ISTFT(X · e^{jP}).

        Args:
            X (Tensor): Linear magnitude (N, 1, F, T).
            phase (Tensor, optional): Phase (N, 1, F, T) of the clip(s); default: the bound phase.
            length (int, optional): Output length of the ISTFT in samples; default: the bound length.
        """
        wav = self.waveform(X, phase, length)
        return select_logits(self.model(wav), self.output, X.shape[0], self.from_probabilities,
                             where=f"the waveform model {type(self.model).__name__}")

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_freqs={self.n_freqs}, length={self.length}"


# --- generic helpers the rest of the library uses ---------------------------------------------------------


def needs_phase(model: Any) -> bool:
    """True for models that must be told the clip's phase (e.g. :class:`WaveformClassifier`)."""
    return getattr(model, "needs_phase", False) is True


def using_phase(model: Any, phase: Optional[Tensor], length: Optional[int] = None) -> contextlib.AbstractContextManager:
    """``model.using_phase(phase, length)`` for models that need the phase; a no-op context otherwise.

    Lets generic code (metrics, fit loops, the harness) bind the phase of each batch without
    knowing what kind of model it runs::

        >>> for s in range(0, N, bs):
        ...     with using_phase(model, P[s:s + bs]):
        ...         logits = model(X[s:s + bs])

    Raises:
        InputError: if the model needs the phase and ``phase`` is None.
    """
    if not needs_phase(model):
        return contextlib.nullcontext(model)
    if phase is None:
        raise InputError(f"{type(model).__name__} explains a waveform model and needs the clips' phase (got None)")
    return model.using_phase(phase, length)


def bound_slice(model: Any, start: int, stop: int) -> contextlib.AbstractContextManager:
    """Bind rows ``start:stop`` of the model's bound phase (a no-op for models without one).

    For code that splits a bound batch into chunks (metrics, learned methods): inside the block the
    model takes ``X[start:stop]`` with the matching phase. A phase bound for one clip (batch 1)
    broadcasts and is left as it is.
    """
    phase = getattr(model, "bound_phase", None) if needs_phase(model) else None
    if phase is None or phase.shape[0] == 1:
        return contextlib.nullcontext(model)
    return model.using_phase(phase[start:stop], model.bound_length)


def bound_forward_args(model: Any) -> Optional[Tuple[Tensor]]:
    """``(phase,)`` — the bound phase as Captum ``additional_forward_args`` — or None.

    Baselines that split a batch into chunks use it to pass each chunk its own slice of the
    phase, which Captum then expands with the inputs.
    """
    if needs_phase(model) and getattr(model, "bound_phase", None) is not None:
        return (model.bound_phase,)
    return None


# --- differentiable front ends for HF-style feature-input models ----------------------------------------


class KaldiFbank(nn.Module):
    r"""The HF ``ASTFeatureExtractor`` as a differentiable torch module: waveform → (N, frames, mels).

    Per clip: ``torchaudio.compliance.kaldi.fbank`` (25 ms Hanning windows every 10 ms, no dither),
    zero-padded or cropped to ``max_length`` frames, then ``(fbank − mean) / (2 · std)`` (AudioSet
    statistics by default), exactly as the HF extractor does in numpy. Use it inside the ``forward``
    of a waveform model so gradients reach the waveform (and through :class:`WaveformClassifier`
    the STFT magnitude).

    Args:
        sample_rate (int): Sample rate of the waveforms (16 kHz for the released AST checkpoints).
        num_mel_bins (int): Mel bands (128 for AST).
        max_length (int): Frames after padding/cropping (1024 for AST).
        mean, std (float): Normalisation statistics; ``normalize=False`` skips it.
    """

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 128, max_length: int = 1024,
                 mean: float = -4.2677393, std: float = 4.5689974, normalize: bool = True) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.max_length = int(max_length)
        self.mean, self.std, self.normalize = float(mean), float(std), bool(normalize)

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.dim() != 2:
            raise InputError(f"KaldiFbank expects waveforms (N, samples), got shape {tuple(waveform.shape)}")
        feats = []
        for w in waveform:
            fb = torchaudio.compliance.kaldi.fbank(
                w.unsqueeze(0), sample_frequency=self.sample_rate, window_type="hanning",
                num_mel_bins=self.num_mel_bins, dither=0.0,
            )
            pad = self.max_length - fb.shape[0]
            fb = nn.functional.pad(fb, (0, 0, 0, pad)) if pad > 0 else fb[: self.max_length]
            feats.append(fb)
        out = torch.stack(feats)
        return (out - self.mean) / (2 * self.std) if self.normalize else out


class FrontEndClassifier(nn.Module):
    r"""A waveform classifier made of a differentiable front end and a feature-input model.

    ``forward(waveform) = model(front_end(waveform))`` (with ``input_name``: ``model(**{input_name:
    features})``, e.g. ``input_values`` for HF models). Wrap the result in
    :class:`WaveformClassifier` to explain it on the STFT magnitude.

    Args:
        front_end (nn.Module): Waveform (N, samples) → the model's input features, differentiable
            (e.g. :class:`KaldiFbank` for AST, ``torchaudio.transforms.MelSpectrogram``).
        model (nn.Module): The feature-input classifier.
        sample_rate (int, optional): Sample rate the front end expects (default: the front end's
            ``sample_rate`` attribute).
        input_name (str, optional): Keyword under which the features are passed.

    Examples::

        >>> hf = ASTForAudioClassification.from_pretrained(...)      # any AutoModelForAudioClassification
        >>> net = FrontEndClassifier(KaldiFbank(16000, 128, 1024), hf, input_name="input_values")
        >>> wf = WaveformClassifier(net, STFT(sample_rate=16000), output="logits")
    """

    def __init__(self, front_end: nn.Module, model: nn.Module, sample_rate: Optional[int] = None,
                 input_name: Optional[str] = None) -> None:
        super().__init__()
        self.front_end = front_end
        self.model = model
        sr = sample_rate if sample_rate is not None else model_sample_rate(front_end)
        self.sample_rate = int(sr) if sr is not None else None
        self.input_name = input_name

    def forward(self, waveform: Tensor) -> Any:
        feats = self.front_end(waveform)
        return self.model(**{self.input_name: feats}) if self.input_name else self.model(feats)


__all__ = [
    "OutputSpec", "select_logits", "PickLogits", "model_sample_rate", "WaveformClassifier", "needs_phase",
    "using_phase", "bound_slice", "bound_forward_args", "KaldiFbank", "FrontEndClassifier",
]
