r"""Captum's attribution methods as *mask* baselines: ``.attribute(X, target) -> mask``.

Every baseline in the benchmark turns its raw attribution into a mask in [0, 1] with the shape
of the input ``X`` (N, 1, F, T) by **one rule** (:func:`to_mask`), so masks from gradient
methods, CAM methods and the learned-decoder methods can be scored by the same metrics and
listened to with ``STFT.listen``:

- ``kind="gradient"`` (input-space maps: Saliency, SmoothGrad, IG, Guided Backprop, Guided
  GradCAM, SHAP, any Captum input attribution): ``|a|`` divided by its per-sample maximum.
- ``kind="cam"`` (layer maps: GradCAM, GradCAM++, any Captum layer attribution):
  ``ReLU(a)`` (channels summed first if there are several), upsampled to (F, T) with
  ``captum.attr.LayerAttribution.interpolate(..., "bilinear")``, divided by its per-sample maximum.
- ``kind="positive"`` (optional, for user methods): ``ReLU(a)`` divided by its per-sample maximum.

A sample whose map is all zero stays all zero (never NaN).

Built-in names (see :data:`BASELINES`): ``saliency``, ``smoothgrad``, ``ig``, ``gradcam``,
``gradcam++``, ``guided_backprop``, ``guided_gradcam``, ``gradient_shap``, ``kernel_shap``.
Any other ``captum.attr`` class can be used by its class name (``make_baseline("InputXGradient",
model)``), and :func:`register_baseline` adds a method under a new name.

The model these wrappers see maps X → logits (a :class:`~captum_lmac.SpectrogramClassifier`); the
CAM layer is a module inside it, e.g. ``model.net.block4`` (default: the last block of
``model.net.blocks`` when the net has one). Attribution always runs with every module in eval
mode (BatchNorm/Dropout would otherwise make the explanation depend on the batch and on chance);
the previous train/eval flags are restored afterwards. A waveform classifier explained on the STFT magnitude
(:class:`~captum_lmac.nn.adapters.WaveformClassifier`) needs the clips' phase: pass
``attribute(X, additional_forward_args=(phase,))``, or call ``attribute(X)`` inside
``with model.using_phase(phase):``; each chunk gets its rows of the phase, which Captum expands with
the inputs. Random methods (SmoothGrad, SHAP) are seeded
without touching the global RNG state.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import captum.attr
import numpy as np
import torch
from captum.attr import (
    Attribution,
    GradientShap,
    GuidedBackprop,
    IntegratedGradients,
    KernelShap,
    LayerAttribution,
    LayerGradCam,
    NeuronAttribution,
    NoiseTunnel,
    Saliency,
)
from torch import Tensor, nn

from .._utils import eval_mode, format_target
from .._validate import (check_finite_module, check_model_output, check_positive_int, check_spectrogram, guarded_forward,
                         short_input_error)
from ..errors import InputError
from ..nn.adapters import bound_forward_args
from .grad_cam_pp import LayerGradCamPlusPlus

MASK_RULES: Dict[str, str] = {
    "gradient": "|a| / per-sample max",
    "cam": "ReLU(a), bilinear upsampling to (F, T) (LayerAttribution.interpolate), / per-sample max",
    "positive": "ReLU(a) / per-sample max",
}
"""The mask rule of each attribution kind, by name (reports print these)."""

_KIND_ALIASES = {"abs": "gradient", "grad": "gradient", "gradient": "gradient", "cam": "cam", "layer": "cam",
                 "positive": "positive", "relu": "positive"}


def _kind(kind: str) -> str:
    try:
        return _KIND_ALIASES[kind]
    except KeyError:
        raise InputError(f"unknown mask kind {kind!r}; choose one of {sorted(MASK_RULES)}") from None


def _per_sample_max_normalise(a: Tensor) -> Tensor:
    """Divide each sample by its maximum; samples whose maximum is 0 stay 0."""
    peak = a.flatten(1).amax(dim=1).view(-1, *([1] * (a.dim() - 1)))
    safe = torch.where(peak > 0, peak, torch.ones_like(peak))
    return torch.where(peak > 0, a / safe, torch.zeros_like(a)).clamp_(0.0, 1.0)


def to_mask(attr: Tensor, input_shape: Sequence[int], kind: str = "gradient") -> Tensor:
    r"""Turn any attribution into a mask in [0, 1] with the input's shape (the one documented rule).

    Args:
        attr (Tensor): The raw attribution: the input's shape for ``kind="gradient"`` and
            ``"positive"``; a layer map (N, C, h, w) or (N, h, w) for ``kind="cam"``.
        input_shape (sequence of int): Shape of the explained input X, (N, 1, F, T).
        kind (str): ``"gradient"`` (|a| / per-sample max), ``"cam"`` (ReLU, channel sum, bilinear
            upsampling to (F, T) with ``LayerAttribution.interpolate``, / per-sample max) or
            ``"positive"`` (ReLU / per-sample max). See :data:`MASK_RULES`.

    Returns:
        Tensor: detached float mask of shape ``input_shape`` in [0, 1]; all-zero maps stay zero.

    Raises:
        InputError: on a shape that does not fit the input, or NaN/inf values.

    Examples::

        >>> cam = LayerGradCam(model, model.net.block4).attribute(X, target=0)
        >>> mask = to_mask(cam, X.shape, kind="cam")          # (N, 1, F, T)
    """
    kind = _kind(kind)
    if isinstance(attr, tuple):
        if len(attr) != 1:
            raise InputError(f"expected one attribution tensor, got a tuple of {len(attr)}")
        attr = attr[0]
    if not torch.is_tensor(attr):
        raise InputError(f"attribution must be a tensor, got {type(attr).__name__}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 3:
        raise InputError(f"input_shape must be (N, C, ...) with spatial dims, got {shape}")
    a = attr.detach().float()
    if a.numel() == 0:
        raise InputError("the attribution is empty (Captum could not compute it for this input/layer)")
    if not torch.isfinite(a).all():
        raise InputError("the attribution contains NaN or infinite values")
    if a.shape[0] != shape[0]:
        raise InputError(f"attribution has {a.shape[0]} samples but the input has {shape[0]}")
    if kind == "cam":
        a = upsample_cam(a, shape, relu=True).expand(shape)
    else:
        if tuple(a.shape) != shape:
            squeezed = [d for d in a.shape[1:] if d != 1]
            if squeezed == [d for d in shape[1:] if d != 1]:  # only singleton dims differ, e.g. (N, F, T)
                a = a.reshape(shape)
            else:
                raise InputError(f"attribution shape {tuple(attr.shape)} differs from input shape {shape}")
        a = a.abs() if kind == "gradient" else a.clamp_min(0)
    return _per_sample_max_normalise(a.contiguous())


def upsample_cam(cam: Tensor, input_shape: Sequence[int], relu: bool = True, mode: Optional[str] = None) -> Tensor:
    """A layer map (N, C, h, w), (N, h, w) or — from a 1-D layer — (N, C, t) as (N, 1, F, T): channels
    summed (ReLU first with ``relu``), interpolated to the input's (F, T) (``mode`` default
    bilinear; a map with one frequency row is constant along frequency)."""
    shape = tuple(int(s) for s in input_shape)
    a = cam
    if a.dim() == len(shape) - 1:
        a = a.unsqueeze(1)
    if a.dim() != len(shape):
        raise InputError(f"a CAM map of shape {tuple(cam.shape)} does not fit input shape {shape}")
    a = a.sum(dim=1, keepdim=True)
    a = a.clamp_min(0) if relu else a
    if tuple(a.shape[2:]) != shape[2:]:
        mode = mode or {3: "linear", 4: "bilinear", 5: "trilinear"}[a.dim()]
        a = LayerAttribution.interpolate(a, shape[2:], interpolate_mode=mode)
        a = a.clamp_min(0) if relu else a
    return a


# --- helpers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: Optional[int], device: torch.device) -> Iterator[None]:
    """Seed torch and numpy inside the block without changing the caller's RNG states.

    numpy too: Captum's GradientShap draws its interpolation points with ``np.random``."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2**32)
            yield
    finally:
        np.random.set_state(np_state)


def slice_forward_args(args: Optional[Tuple[Any, ...]], start: int, stop: int, n: int) -> Optional[Tuple[Any, ...]]:
    """Rows ``start:stop`` of every tensor in ``args`` whose first dimension is the batch size ``n``
    (other arguments unchanged) — Captum ``additional_forward_args`` for one chunk of a batch."""
    if args is None:
        return None
    return tuple(a[start:stop] if torch.is_tensor(a) and a.dim() and a.shape[0] == n else a for a in args)


def _forward_args(model: Any, X: Tensor, additional_forward_args: Any) -> Optional[Tuple[Any, ...]]:
    """Explicit ``additional_forward_args`` as a tuple, else the model's bound phase (waveform models)."""
    if additional_forward_args is not None:
        return additional_forward_args if isinstance(additional_forward_args, tuple) else (additional_forward_args,)
    args = bound_forward_args(model)
    if args is not None and args[0].shape[0] != X.shape[0]:
        return None  # a one-clip phase broadcasts inside the model; other mismatches are reported there
    return args


def resolve_targets(model: Callable[..., Tensor], X: Tensor, target: Any, batch_size: int = 32,
                    additional_forward_args: Optional[Tuple[Any, ...]] = None) -> Tensor:
    """Targets as a (N,) long tensor: ``None`` → arg-max of ``model(X)`` (the model's decision);
    an int (or one-element tensor) → the same class for all; a list / 1-D tensor → one per sample.

    ``additional_forward_args`` (a tuple whose batch-sized tensors are sliced with X) follow X into
    the model."""
    n = X.shape[0]
    if target is None:
        with torch.no_grad():
            logits = torch.cat([
                guarded_forward(model, X[s : s + batch_size],
                                *(slice_forward_args(additional_forward_args, s, s + batch_size, n) or ()))
                for s in range(0, n, batch_size)
            ])
        if logits.dim() != 2:
            raise InputError(f"target=None needs (N, C) model outputs, got shape {tuple(logits.shape)}")
        check_model_output(logits, "the model", n, model)
        return logits.argmax(dim=1)
    return format_target(target, n).to(X.device)


def default_cam_layer(model: Any) -> nn.Module:
    """The last block of ``model.net.blocks`` (CompactCNN / CNN14), the usual GradCAM layer; for a
    zero-shot classifier, that of its audio encoder (``model.audio_encoder.net.blocks``)."""
    blocks = getattr(getattr(model, "net", None), "blocks", None)
    if not blocks:
        blocks = getattr(getattr(getattr(model, "audio_encoder", None), "net", None), "blocks", None)
    if blocks:
        return blocks[-1]
    raise InputError(
        "this method needs a layer: pass layer=<a conv module inside the model>, e.g. model.net.block4"
    )


def _check_relus(model: Any, name: str) -> None:
    """GuidedBackprop only overrides nn.ReLU modules (not F.relu, not in-place ReLUs)."""
    if not isinstance(model, nn.Module):
        return
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        warnings.warn(
            f"{name}: the model has no nn.ReLU modules, so guided backpropagation equals the plain "
            "gradient (Captum only overrides nn.ReLU modules, not F.relu)",
            stacklevel=3,
        )
    if any(m.inplace for m in relus):
        raise InputError(
            f"{name}: the model uses in-place nn.ReLU modules; Captum's guided backpropagation needs "
            "nn.ReLU(inplace=False), one module per use"
        )


@contextlib.contextmanager
def _quiet_relu_hooks() -> Iterator[None]:
    """Silence Captum's per-call notice that it sets backward hooks on ReLU modules."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        yield


def _check_x(X: Any) -> Tensor:
    if not torch.is_tensor(X) or X.dim() == 4:  # a magnitude batch (N, 1, F, T): the full contract
        return check_spectrogram(X, "X", allow_silent=False)
    if X.dim() < 3:
        shape = tuple(X.shape) if torch.is_tensor(X) else type(X).__name__
        raise InputError(f"X must be a (N, 1, F, T) tensor, got {shape}")
    if X.shape[0] == 0:
        raise InputError("X is an empty batch")
    if not X.is_floating_point():
        raise InputError(f"X must be a floating-point tensor, got {X.dtype}")
    if not torch.isfinite(X).all():
        raise InputError("X contains NaN or infinite values")
    return X


# --- the wrappers ---------------------------------------------------------------------------------


class MaskBaseline:
    r"""Base class: a Captum method plus the mask rule, with ``.attribute(X, target) -> mask``.

    Subclasses implement :meth:`raw` (the Captum attribution of one chunk). :meth:`attribute`
    resolves the target, puts the model in eval mode, seeds, runs :meth:`raw` on chunks of
    ``batch_size`` samples and applies :func:`to_mask`.

    Extra model arguments (``additional_forward_args``, e.g. the phase of a
    :class:`~captum_lmac.nn.adapters.WaveformClassifier`; by default its bound phase) are sliced
    with each chunk and passed to :meth:`raw` as a third argument — only when there are any, so a
    ``raw(X, target)`` of a user subclass keeps working for models that take X alone.

    Attributes:
        name (str): Registry name of the method (for reports).
        kind (str): ``"gradient"``, ``"cam"`` or ``"positive"``.
        mask_rule (str): Human-readable mask rule (from :data:`MASK_RULES`).
    """

    name = "baseline"
    kind = "gradient"

    def __init__(self, model: Callable[..., Tensor], batch_size: int = 16, seed: Optional[int] = 0) -> None:
        if not callable(model):
            raise InputError(f"model must be callable (X -> logits), got {type(model).__name__}")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        check_finite_module(model, "the model")
        self.model = model
        self.seed = seed

    @property
    def mask_rule(self) -> str:
        return MASK_RULES[_kind(self.kind)]

    def describe(self) -> Dict[str, Any]:
        """Name, kind and mask rule (JSON-serialisable) for reports."""
        return {"name": self.name, "kind": self.kind, "mask_rule": self.mask_rule}

    def raw(self, X: Tensor, target: Tensor, additional_forward_args: Optional[Tuple[Any, ...]] = None) -> Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def attribute(self, X: Tensor, target: Any = None, additional_forward_args: Any = None) -> Tensor:
        """Mask (N, 1, F, T) in [0, 1] explaining ``target`` (default: the model's arg-max class).

        Args:
            X (Tensor): Inputs (N, 1, F, T).
            target: Class per sample (None: the model's decision).
            additional_forward_args: Extra model arguments with the batch first (Captum's
                convention), e.g. ``(phase,)`` for a waveform model; default: the phase bound with
                ``model.using_phase`` if the model needs one.
        """
        X = _check_x(X)
        n = X.shape[0]
        args = _forward_args(self.model, X, additional_forward_args)
        with eval_mode(self.model):
            t = resolve_targets(self.model, X, target, self.batch_size, args)
            out = []
            with _seeded(self.seed, X.device):
                for s in range(0, n, self.batch_size):
                    # A fresh leaf that requires grad (Captum would otherwise flip requires_grad on the
                    # caller's tensor and warn about it).
                    xb = X[s : s + self.batch_size].detach().clone().requires_grad_(True)
                    extra = () if args is None else (slice_forward_args(args, s, s + self.batch_size, n),)
                    try:
                        raw = self.raw(xb, t[s : s + self.batch_size], *extra)
                    except RuntimeError as exc:
                        err = short_input_error(exc, self.model, xb.detach())
                        if err is not None:
                            raise err from None
                        raise
                    out.append(to_mask(raw, xb.shape, self.kind))
        return torch.cat(out)

    __call__ = attribute

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, mask_rule={self.mask_rule!r})"


class SaliencyBaseline(MaskBaseline):
    """Saliency (Simonyan et al., 2014, https://arxiv.org/abs/1312.6034): |∂logit_c/∂X|."""

    name = "saliency"

    def __init__(self, model, layer=None, **kw) -> None:
        super().__init__(model, **kw)
        self.method = Saliency(model)

    def raw(self, X, target, additional_forward_args=None):
        return self.method.attribute(X, target=target, abs=True, additional_forward_args=additional_forward_args)


class SmoothGradBaseline(MaskBaseline):
    r"""SmoothGrad (Smilkov et al., 2017, https://arxiv.org/abs/1706.03825) via ``NoiseTunnel(Saliency)``.

    The signed gradient is averaged over ``nt_samples`` noisy copies (the paper's definition);
    the mask rule then takes |·|. Noise is scaled to each sample:
    ``stdev_i = noise_level · (max X_i − min X_i)`` (the paper's 10–20 % of the input range),
    so every sample runs through NoiseTunnel on its own.

    Args:
        noise_level (float): Noise stdev as a fraction of each sample's value range. Default 0.15.
        nt_samples (int): Noisy copies per sample. Default 10.
        nt_samples_batch_size (int, optional): Copies per forward pass.
    """

    name = "smoothgrad"

    def __init__(self, model, layer=None, noise_level: float = 0.15, nt_samples: int = 10,
                 nt_samples_batch_size: Optional[int] = None, **kw) -> None:
        super().__init__(model, **kw)
        if noise_level < 0 or nt_samples < 1:
            raise InputError("noise_level must be >= 0 and nt_samples >= 1")
        self.noise_level = float(noise_level)
        self.nt_samples = int(nt_samples)
        self.nt_samples_batch_size = nt_samples_batch_size
        self.method = NoiseTunnel(Saliency(model))

    def raw(self, X, target, additional_forward_args=None):
        out = []
        for i in range(X.shape[0]):
            xi = X[i : i + 1]
            sd = self.noise_level * float((xi.max() - xi.min()).detach())
            out.append(
                self.method.attribute(
                    xi, nt_type="smoothgrad", nt_samples=self.nt_samples,
                    nt_samples_batch_size=self.nt_samples_batch_size, stdevs=sd,
                    target=int(target[i]), abs=False,
                    additional_forward_args=slice_forward_args(additional_forward_args, i, i + 1, X.shape[0]),
                )
            )
        return torch.cat(out)


class IntegratedGradientsBaseline(MaskBaseline):
    """Integrated Gradients (Sundararajan et al., 2017, https://arxiv.org/abs/1703.01365) from the
    all-zero (silent) spectrogram, ``n_steps`` Gauss–Legendre steps (default 32)."""

    name = "ig"

    def __init__(self, model, layer=None, n_steps: int = 32, internal_batch_size: Optional[int] = 64, **kw) -> None:
        super().__init__(model, **kw)
        self.n_steps = int(n_steps)
        self.internal_batch_size = internal_batch_size
        self.method = IntegratedGradients(model)

    def raw(self, X, target, additional_forward_args=None):
        return self.method.attribute(X, baselines=torch.zeros_like(X), target=target, n_steps=self.n_steps,
                                     internal_batch_size=self.internal_batch_size,
                                     additional_forward_args=additional_forward_args)


class GradCamBaseline(MaskBaseline):
    """GradCAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391): ``LayerGradCam`` with
    ReLU, upsampled bilinearly to (F, T)."""

    name = "gradcam"
    kind = "cam"

    def __init__(self, model, layer: Optional[nn.Module] = None, **kw) -> None:
        super().__init__(model, **kw)
        self.layer = layer if layer is not None else default_cam_layer(model)
        self.method = LayerGradCam(model, self.layer)

    def raw(self, X, target, additional_forward_args=None):
        return self.method.attribute(X, target=target, relu_attributions=True,
                                     additional_forward_args=additional_forward_args)


class GradCamPlusPlusBaseline(GradCamBaseline):
    """GradCAM++ (Chattopadhay et al., 2018, https://arxiv.org/abs/1710.11063): our
    :class:`LayerGradCamPlusPlus`, upsampled bilinearly to (F, T)."""

    name = "gradcam++"

    def __init__(self, model, layer: Optional[nn.Module] = None, **kw) -> None:
        MaskBaseline.__init__(self, model, **kw)
        self.layer = layer if layer is not None else default_cam_layer(model)
        self.method = LayerGradCamPlusPlus(model, self.layer)


class GuidedBackpropBaseline(MaskBaseline):
    """Guided Backpropagation (Springenberg et al., 2015, https://arxiv.org/abs/1412.6806).

    Captum only overrides ``nn.ReLU`` modules: a model without them gets a warning (the result is
    then the plain gradient) and in-place ReLUs raise :class:`InputError`."""

    name = "guided_backprop"

    def __init__(self, model, layer=None, **kw) -> None:
        super().__init__(model, **kw)
        _check_relus(model, self.name)
        self.method = GuidedBackprop(model)

    def raw(self, X, target, additional_forward_args=None):
        with _quiet_relu_hooks():
            return self.method.attribute(X, target=target, additional_forward_args=additional_forward_args)


class GuidedGradCamBaseline(MaskBaseline):
    """Guided GradCAM (Selvaraju et al., 2017): guided backprop × GradCAM (``LayerGradCam`` with
    ReLU) upsampled to (F, T) (``interpolate_mode`` default ``"bilinear"``, like the CAM mask rule;
    maps of 1-D layers too); an input-space map."""

    name = "guided_gradcam"

    def __init__(self, model, layer: Optional[nn.Module] = None, interpolate_mode: str = "bilinear", **kw) -> None:
        super().__init__(model, **kw)
        _check_relus(model, self.name)
        self.layer = layer if layer is not None else default_cam_layer(model)
        self.interpolate_mode = interpolate_mode
        self.cam = LayerGradCam(model, self.layer)
        self.guided = GuidedBackprop(model)

    def raw(self, X, target, additional_forward_args=None):
        # Captum's GuidedGradCam computes the same product but cannot upsample the map of a 1-D layer
        # (N, 1, t) to (F, T); the CAM here is upsampled by the mask rule's own interpolation.
        cam = self.cam.attribute(X, target=target, relu_attributions=True,
                                 additional_forward_args=additional_forward_args)
        with _quiet_relu_hooks():
            guided = self.guided.attribute(X, target=target, additional_forward_args=additional_forward_args)
        return guided * upsample_cam(cam, X.shape, relu=False, mode=self.interpolate_mode)


class GradientShapBaseline(MaskBaseline):
    r"""GradientSHAP (Lundberg & Lee, 2017, https://arxiv.org/abs/1705.07874) via ``GradientShap``.

    The baseline distribution of sample i is the silent spectrogram and quieter copies of the
    sample itself, ``{s · X_i : s in scales}`` (default ``scales=(0, 0.25, 0.5)``), so every
    sample runs on its own with ``n_samples`` random points (default 16).

    Args:
        n_samples (int): Random baseline/interpolation draws per sample. Default 16.
        scales (sequence of float): Scale factors of the baseline copies. Default (0, 0.25, 0.5).
        stdevs (float): Gaussian noise added to the inputs (Captum's ``stdevs``). Default 0.
    """

    name = "gradient_shap"

    def __init__(self, model, layer=None, n_samples: int = 16, scales: Sequence[float] = (0.0, 0.25, 0.5),
                 stdevs: float = 0.0, **kw) -> None:
        super().__init__(model, **kw)
        if not scales:
            raise InputError("scales must name at least one baseline scale")
        self.n_samples = int(n_samples)
        self.scales = tuple(float(s) for s in scales)
        self.stdevs = float(stdevs)
        self.method = GradientShap(model)

    def raw(self, X, target, additional_forward_args=None):
        out = []
        for i in range(X.shape[0]):
            xi = X[i : i + 1]
            baselines = torch.cat([xi.detach() * s for s in self.scales])
            out.append(self.method.attribute(
                xi, baselines=baselines, n_samples=self.n_samples, stdevs=self.stdevs, target=int(target[i]),
                additional_forward_args=slice_forward_args(additional_forward_args, i, i + 1, X.shape[0]),
            ))
        return torch.cat(out)


def patch_feature_mask(shape: Sequence[int], grid: Tuple[int, int] = (8, 8)) -> Tensor:
    """Patch ids (1, 1, F, T) of a ``grid[0] × grid[1]`` tiling of the (F, T) plane (ids 0…K−1).

    The grid is clipped to (F, T), so every id is used."""
    F_, T_ = int(shape[-2]), int(shape[-1])
    gf, gt = min(int(grid[0]), F_), min(int(grid[1]), T_)
    if gf < 1 or gt < 1:
        raise InputError(f"grid must be positive, got {grid}")
    fi = torch.arange(F_) * gf // F_
    ti = torch.arange(T_) * gt // T_
    return (fi.view(-1, 1) * gt + ti.view(1, -1)).view(1, 1, F_, T_)


class KernelShapBaseline(MaskBaseline):
    r"""KernelSHAP (Lundberg & Lee, 2017) on time-frequency patches via ``KernelShap``.

    Features are the ``grid`` patches of (F, T) (default 8×8 = 64, :func:`patch_feature_mask`);
    a removed patch is set to 0 (silence). ``n_samples`` coalitions per sample (default 64).

    Args:
        grid (tuple of int): Patches along frequency and time. Default (8, 8).
        n_samples (int): Sampled coalitions per sample. Default 64.
        perturbations_per_eval (int): Coalitions per forward pass. Default 16.
    """

    name = "kernel_shap"

    def __init__(self, model, layer=None, grid: Tuple[int, int] = (8, 8), n_samples: int = 64,
                 perturbations_per_eval: int = 16, **kw) -> None:
        super().__init__(model, **kw)
        self.grid = (int(grid[0]), int(grid[1]))
        self.n_samples = int(n_samples)
        self.perturbations_per_eval = int(perturbations_per_eval)
        self.method = KernelShap(model)

    def raw(self, X, target, additional_forward_args=None):
        fm = patch_feature_mask(X.shape, self.grid).to(X.device)
        X = X.detach()
        # One sample at a time (one interpretable model per sample, as Captum would do anyway).
        return torch.cat([
            self.method.attribute(X[i : i + 1], baselines=0.0, target=int(target[i]), feature_mask=fm,
                                  n_samples=self.n_samples, perturbations_per_eval=self.perturbations_per_eval,
                                  additional_forward_args=slice_forward_args(additional_forward_args, i, i + 1,
                                                                             X.shape[0]))
            for i in range(X.shape[0])
        ])


class CaptumBaseline(MaskBaseline):
    r"""Any Captum attribution instance plus the mask rule.

    Layer attributions (``LayerAttribution`` subclasses) use the ``"cam"`` rule, all others the
    ``"gradient"`` rule, unless ``kind`` is given. Extra keyword arguments go to the method's
    ``attribute`` call (e.g. ``sliding_window_shapes`` for ``Occlusion``).

    Args:
        method (captum.attr.Attribution): The constructed Captum method.
        name (str): Name for reports (default: the class name).
        kind (str, optional): Mask rule kind (see :func:`to_mask`).
        **attribute_kwargs: Passed to ``method.attribute``.
    """

    def __init__(self, method: Attribution, model: Callable[..., Tensor], name: Optional[str] = None,
                 kind: Optional[str] = None, batch_size: int = 16, seed: Optional[int] = 0,
                 **attribute_kwargs: Any) -> None:
        super().__init__(model, batch_size=batch_size, seed=seed)
        if isinstance(method, NeuronAttribution):
            raise InputError(f"{type(method).__name__} explains one neuron, not a class: it cannot be a mask baseline")
        self.method = method
        self.name = name or type(method).__name__
        self.kind = _kind(kind) if kind is not None else ("cam" if isinstance(method, LayerAttribution) else "gradient")
        self.attribute_kwargs = attribute_kwargs

    def raw(self, X, target, additional_forward_args=None):
        kw = dict(self.attribute_kwargs)
        if additional_forward_args is not None:
            kw["additional_forward_args"] = additional_forward_args
        with _quiet_relu_hooks():
            return self.method.attribute(X, target=target, **kw)


def _captum_class_factory(cls: type) -> Callable[..., MaskBaseline]:
    """Factory for a ``captum.attr`` class: builds it on the model (and layer) and wraps it."""

    def factory(model, layer: Optional[nn.Module] = None, init_kwargs: Optional[Dict[str, Any]] = None,
                name: Optional[str] = None, kind: Optional[str] = None, batch_size: int = 16,
                seed: Optional[int] = 0, **attribute_kwargs):
        init_kwargs = dict(init_kwargs or {})
        if issubclass(cls, NeuronAttribution):
            raise InputError(f"{cls.__name__} explains one neuron, not a class: it cannot be a mask baseline")
        if issubclass(cls, NoiseTunnel):
            raise InputError("NoiseTunnel wraps another method: build it yourself and register_baseline a factory")
        if issubclass(cls, LayerAttribution):
            method = cls(model, layer if layer is not None else default_cam_layer(model), **init_kwargs)
        else:
            method = cls(model, **init_kwargs)
        return CaptumBaseline(method, model, name=name or cls.__name__, kind=kind, batch_size=batch_size,
                              seed=seed, **attribute_kwargs)

    return factory


BaselineFactory = Callable[..., Any]

BASELINES: Dict[str, BaselineFactory] = {
    "saliency": SaliencyBaseline,
    "smoothgrad": SmoothGradBaseline,
    "ig": IntegratedGradientsBaseline,
    "gradcam": GradCamBaseline,
    "gradcam++": GradCamPlusPlusBaseline,
    "guided_backprop": GuidedBackpropBaseline,
    "guided_gradcam": GuidedGradCamBaseline,
    "gradient_shap": GradientShapBaseline,
    "kernel_shap": KernelShapBaseline,
}
"""Registered baselines: name → factory ``(model, layer=None, **kw) -> object with .attribute``."""


def register_baseline(name: str, factory: Union[BaselineFactory, type], overwrite: bool = False) -> None:
    """Add a baseline under ``name`` so :func:`make_baseline` (and the harness) can build it.

    Args:
        name (str): The registry name.
        factory: Either a ``captum.attr.Attribution`` subclass (wrapped with the mask rule like
            :func:`make_baseline` does for Captum class names), or a callable
            ``factory(model, layer=None, **kw)`` returning an object with
            ``.attribute(X, target) -> mask`` — or returning a Captum ``Attribution`` instance, which
            is then wrapped by :class:`CaptumBaseline`.
        overwrite (bool): Allow replacing an existing name. Default False.

    Examples::

        >>> register_baseline("ixg", captum.attr.InputXGradient)
        >>> register_baseline("occlusion", lambda model, layer=None, **kw: CaptumBaseline(
        ...     captum.attr.Occlusion(model), model, sliding_window_shapes=(1, 8, 8), **kw))
    """
    if not isinstance(name, str) or not name:
        raise InputError("a baseline name must be a non-empty string")
    if name in BASELINES and not overwrite:
        raise InputError(f"baseline {name!r} is already registered; pass overwrite=True to replace it")
    if isinstance(factory, type) and issubclass(factory, Attribution):
        factory = _captum_class_factory(factory)
    if not callable(factory):
        raise InputError(f"factory must be callable or a captum.attr class, got {type(factory).__name__}")
    BASELINES[name] = factory


def make_baseline(name: str, model: Callable[..., Tensor], layer: Optional[nn.Module] = None, **kw: Any) -> Any:
    """Build the baseline ``name`` on ``model``: ``.attribute(X, target=None) -> mask``.

    Lookup order: the registry (:data:`BASELINES`, exact then lower-case name), then any class of
    ``captum.attr`` by name (e.g. ``"InputXGradient"``, ``"Deconvolution"``, ``"Occlusion"``).
    For a Captum class name, ``init_kwargs`` go to its constructor, ``kind``, ``batch_size``,
    ``seed`` and ``name`` to the wrapper, and all other keywords to its ``attribute`` call.

    Args:
        name (str): Baseline name.
        model: X (N, 1, F, T) → logits, e.g. a :class:`~captum_lmac.SpectrogramClassifier`.
        layer (nn.Module, optional): Layer for CAM-type methods (default: ``model.net.blocks[-1]``).
        **kw: Method options (e.g. ``n_steps=16`` for ``"ig"``, ``batch_size``, ``seed``).

    Returns:
        An object with ``.attribute(X, target=None) -> mask`` (N, 1, F, T) in [0, 1], ``.name`` and
        ``.mask_rule``.

    Examples::

        >>> sal = make_baseline("saliency", model)
        >>> mask = sal.attribute(X)                       # explains the arg-max class
        >>> gc = make_baseline("gradcam", model, layer=model.net.block4)
        >>> ixg = make_baseline("InputXGradient", model)
    """
    key = name
    factory = BASELINES.get(name)
    if factory is None and isinstance(name, str) and name.lower() in BASELINES:
        key = name.lower()
        factory = BASELINES[key]
    if factory is None:
        cls = getattr(captum.attr, name, None) if isinstance(name, str) else None
        if isinstance(cls, type) and issubclass(cls, Attribution):
            factory = _captum_class_factory(cls)
        else:
            raise InputError(
                f"unknown baseline {name!r}: use one of {sorted(BASELINES)}, a captum.attr class name, "
                "or register_baseline() your own"
            )
    obj = factory(model, layer=layer, **kw)
    if isinstance(obj, Attribution):
        obj = CaptumBaseline(obj, model, name=key)
    if not hasattr(obj, "attribute"):
        raise InputError(f"the factory of baseline {name!r} returned {type(obj).__name__}, which has no .attribute")
    if isinstance(obj, MaskBaseline) and "name" not in kw:
        obj.name = key  # the name it was requested by, for reports
    return obj


__all__ = [
    "MASK_RULES", "to_mask", "upsample_cam", "eval_mode", "resolve_targets", "slice_forward_args", "default_cam_layer",
    "patch_feature_mask",
    "MaskBaseline", "CaptumBaseline", "SaliencyBaseline", "SmoothGradBaseline", "IntegratedGradientsBaseline",
    "GradCamBaseline", "GradCamPlusPlusBaseline", "GuidedBackpropBaseline", "GuidedGradCamBaseline",
    "GradientShapBaseline", "KernelShapBaseline", "BASELINES", "register_baseline", "make_baseline",
]
