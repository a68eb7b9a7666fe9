"""GradCAM++ as a Captum layer attribution (Captum itself ships GradCAM but not GradCAM++)."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from captum.attr import GradientAttribution, LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from .._utils import TargetType, additional_args, as_tuple, format_target
from ..errors import InputError

def select_targets(output: Tensor, target: TargetType) -> Tensor:
    """Pick one scalar per example from a model output, following Captum's ``target`` rules.

    Args:
        output (Tensor): Model output (N,) or (N, C, ...).
        target: ``None`` (the output must be one value per example; for a multi-class (N, C)
            output the arg-max class of each example is used), an ``int`` or a one-element tensor
            (same class for every example), a list or 1-D tensor of N class indices (one per
            example), a tuple of indices for outputs with more than two dimensions, or a list of N
            such tuples.

    Returns:
        Tensor: (N,) selected outputs, differentiable.

    Raises:
        InputError: if the target does not fit the output's shape.
    """
    n = output.shape[0]
    if output.dim() == 1:
        if target is not None:
            raise InputError("the model returns one value per example, so target must be None")
        return output
    if target is None:
        if output.dim() == 2 and output.shape[1] == 1:
            return output[:, 0]
        if output.dim() != 2:
            raise InputError(f"target=None is ambiguous for a model output of shape {tuple(output.shape)}")
        target = output.detach().argmax(dim=1)
    if isinstance(target, tuple):
        if len(target) != output.dim() - 1:
            raise InputError(
                f"target tuple {target} must have {output.dim() - 1} entries for output {tuple(output.shape)}"
            )
        return output[(slice(None),) + tuple(int(t) for t in target)]
    if isinstance(target, list) and target and all(isinstance(t, tuple) for t in target):
        if len(target) != n:
            raise InputError(f"target list has {len(target)} entries for {n} examples")
        return torch.stack([output[(i,) + tuple(int(v) for v in t)] for i, t in enumerate(target)])
    if output.dim() != 2:
        raise InputError(f"class-index targets need a (N, C) output, got shape {tuple(output.shape)}; pass a tuple")
    idx = format_target(target, n, output.shape[1]).to(output.device)
    return output.gather(1, idx.view(-1, 1))[:, 0]


def _sum_spatial(x: Tensor) -> Tensor:
    """Sum over all dimensions after the channel dimension (keepdim); identity for (N, K)."""
    if x.dim() <= 2:
        return x
    return x.sum(dim=tuple(range(2, x.dim())), keepdim=True)


def gradcam_pp_map(
    activations: Tensor,
    gradients: Tensor,
    scores: Optional[Tensor] = None,
    relu_attributions: bool = True,
) -> Tensor:
    r"""The GradCAM++ map from a layer's activations A and the gradients ∂S/∂A of the class score S.

    With Y = exp(S) the higher derivatives of Y are powers of the first one (paper eq. 17-18), which
    gives the closed form

    .. math::
        \alpha^{k}_{ij} = \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{ab} A^k_{ab}\, g_{ij}^3},\qquad
        w_k = \sum_{ij} \alpha^{k}_{ij}\, \mathrm{ReLU}(g_{ij}),\qquad
        L = \sum_k w_k A^k

    with g = ∂S/∂A^k (α := 0 where the denominator is 0). If ``scores`` is given, w is multiplied by
    exp(S) (eq. 19 uses ∂Y/∂A = exp(S)·∂S/∂A, as the authors' code does); this is one positive
    factor per example, so it never changes the shape of a map.

    Args:
        activations (Tensor): A, (N, K, ...) layer activations.
        gradients (Tensor): ∂S/∂A, same shape.
        scores (Tensor, optional): S, (N,) class scores for the exp(S) factor.
        relu_attributions (bool): Apply ReLU to the final map.

    Returns:
        Tensor: (N, 1, ...) map (channels summed).
    """
    A, g = activations, gradients
    g2 = g * g
    denom = 2 * g2 + _sum_spatial(A) * g2 * g
    nonzero = denom != 0
    alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), torch.zeros_like(denom))
    weights = _sum_spatial(alpha * F.relu(g))
    if scores is not None:
        weights = weights * torch.exp(scores.detach()).view(-1, *([1] * (weights.dim() - 1)))
    cam = (weights * A).sum(dim=1, keepdim=True)
    return F.relu(cam) if relu_attributions else cam


class LayerGradCamPlusPlus(LayerAttribution, GradientAttribution):
    r"""GradCAM++ for a chosen layer (Chattopadhay et al., 2018, https://arxiv.org/abs/1710.11063).

    GradCAM weights every channel of the layer by its mean gradient. GradCAM++ instead weights each
    channel by a positively-weighted sum of its *positive* gradients, with per-position weights
    α derived in closed form by taking the class score through exp (see :func:`gradcam_pp_map`),
    which localises several instances of a class (e.g. repeated sound events) better.

    Modelled on ``captum.attr.LayerGradCam``: the result has the layer's shape with the channel
    dimension summed to 1, e.g. (N, 1, h, w) for a conv layer; upsample it to the input with
    ``captum.attr.LayerAttribution.interpolate`` (or use
    :func:`captum_lmac.attr.baselines.to_mask` with ``kind="cam"``). Unlike LayerGradCam, ReLU is
    applied by default, as in the paper.

    Args:
        forward_func (Callable): The model (or any function) mapping inputs to outputs, e.g. a
            :class:`~captum_lmac.SpectrogramClassifier` mapping X to logits.
        layer (torch.nn.Module): The layer whose activations are explained; it must be called
            exactly once per forward (e.g. ``model.net.block4``).
        device_ids (list[int], optional): Accepted for signature compatibility with Captum's layer
            methods. The layer hook runs on ``layer`` itself, so ``DataParallel`` replicas are not
            gathered: run on one device.

    Examples::

        >>> model = build_classifier(n_classes=3).eval()
        >>> gcpp = LayerGradCamPlusPlus(model, model.net.block4)
        >>> cam = gcpp.attribute(X, target=0)            # (N, 1, h, w), non-negative
        >>> up = LayerAttribution.interpolate(cam, X.shape[-2:], "bilinear")
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: nn.Module,
        device_ids: Union[None, List[int]] = None,
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise InputError(f"layer must be a torch.nn.Module inside the model, got {type(layer).__name__}")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = True,
        scale_by_exp_score: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""Compute GradCAM++ maps of ``layer`` for the target output.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Model input(s); dimension 0 indexes examples.
            target (int, tuple, Tensor or list, optional): Output indices to explain, as in Captum:
                one int (or one-element tensor) for all examples, or a list / 1-D tensor with one
                index per example. ``None`` explains a model returning one value per example, or
                — for a (N, C) output — each example's arg-max class.
                Default: None
            additional_forward_args (Any, optional): Extra arguments passed to ``forward_func``
                after the inputs (no attribution is computed for them).
            attribute_to_layer_input (bool): Explain the layer's input instead of its output.
                Default: False
            relu_attributions (bool): Apply ReLU to the map, as in the paper. Default: True
            scale_by_exp_score (bool): Multiply the channel weights by exp(S) as in eq. 19 and the
                authors' code. It is one positive factor per example (the normalised map is
                unchanged) and overflows float32 for scores above ~88, hence off by default.
                Default: False

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: maps with the layer's shape except dimension 1, which
            is 1; a tuple if the layer input/output is a tuple of tensors.

        Examples::

            >>> gcpp = LayerGradCamPlusPlus(model, model.net.block4)
            >>> cam = gcpp.attribute(X, target=[0, 2])      # one class per example
        """
        inputs = as_tuple(inputs)
        extra = additional_args(additional_forward_args)
        captured: List[Tuple[Tensor, ...]] = []

        def _grab(tensors: Tuple[Any, ...]) -> Tuple[Any, ...]:
            # Detach from the graph below the layer and make the layer tensors leaves that require
            # grad: the gradient is then taken w.r.t. exactly these tensors, and it works even when
            # the model's parameters and the inputs are frozen.
            new = tuple(
                t.detach().clone().requires_grad_(True) if torch.is_tensor(t) and t.is_floating_point() else t
                for t in tensors
            )
            captured.append(tuple(t for t in new if torch.is_tensor(t) and t.requires_grad))
            return new

        if attribute_to_layer_input:

            def pre_hook(module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
                return _grab(args)

            handle = self.layer.register_forward_pre_hook(pre_hook)
        else:

            def hook(module: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
                new = _grab(as_tuple(output))
                return new if isinstance(output, tuple) else new[0]

            handle = self.layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                output = self.forward_func(*inputs, *extra)
                if len(captured) != 1:
                    raise InputError(
                        f"the layer ran {len(captured)} times in one forward pass; GradCAM++ needs a layer "
                        "that is called exactly once"
                    )
                layer_tensors = captured[0]
                if not layer_tensors:
                    raise InputError("the layer produced no floating-point tensor to explain")
                scores = select_targets(output, target)
                grads = torch.autograd.grad(scores.sum(), layer_tensors, allow_unused=True)
        finally:
            handle.remove()
        maps = []
        for act, grad in zip(layer_tensors, grads):
            if grad is None:
                grad = torch.zeros_like(act)
            maps.append(
                gradcam_pp_map(
                    act.detach(),
                    grad.detach(),
                    scores=scores.detach() if scale_by_exp_score else None,
                    relu_attributions=relu_attributions,
                )
            )
        return tuple(maps) if len(maps) > 1 else maps[0]


__all__: Sequence[str] = ["LayerGradCamPlusPlus", "gradcam_pp_map", "select_targets"]
