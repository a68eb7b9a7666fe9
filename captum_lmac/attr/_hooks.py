"""Capture the outputs of user-named classifier layers with temporary forward hooks."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Sequence, Union

import torch
from torch import Tensor, nn

from ..errors import InputError

LayerSpec = Union[nn.Module, str]


def resolve_layers(model: nn.Module, layers: Sequence[LayerSpec]) -> tuple:
    """Resolve modules or dotted names inside ``model`` to ``(modules, names)``.

    Raises:
        InputError: for an empty list, an unknown name, or a module that is not part of ``model``.
    """
    if isinstance(layers, (nn.Module, str)):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise InputError("give at least one classifier layer whose output feeds the decoder")
    by_module = {id(m): n for n, m in model.named_modules()}
    modules, names = [], []
    for spec in layers:
        if isinstance(spec, str):
            try:
                mod = model.get_submodule(spec)
            except AttributeError:
                raise InputError(f"the classifier has no layer named {spec!r}") from None
            modules.append(mod)
            names.append(spec)
        elif isinstance(spec, nn.Module):
            if id(spec) not in by_module:
                raise InputError(f"layer {type(spec).__name__} is not a submodule of the given classifier")
            modules.append(spec)
            names.append(by_module[id(spec)])
        else:
            raise InputError(f"layers must be nn.Module or str, got {type(spec).__name__}")
    return modules, names


class LayerRecorder:
    """Record the outputs of ``modules`` during forward passes run inside :meth:`capture`.

    Hooks exist only inside the ``with`` block, so the model behaves normally elsewhere (other
    Captum methods, the user's own code).

    Examples::

        >>> rec = LayerRecorder([net.block3, net.block4])
        >>> with rec.capture() as feats:
        ...     logits = model(X)
        >>> [f.shape for f in feats]
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list(modules)

    @contextmanager
    def capture(self) -> Iterator[List[Tensor]]:
        outputs: List[Tensor] = [None] * len(self.modules)  # type: ignore[list-item]

        def make_hook(i: int):
            def hook(_module: nn.Module, _inp, out) -> None:
                if isinstance(out, (tuple, list)):  # e.g. nn.GRU returns (output, h_n)
                    out = out[0]
                if not torch.is_tensor(out):
                    raise InputError(f"hooked layer {i} returned {type(out).__name__}, not a tensor")
                outputs[i] = out

            return hook

        handles = [m.register_forward_hook(make_hook(i)) for i, m in enumerate(self.modules)]
        try:
            yield outputs
        finally:
            for h in handles:
                h.remove()
        missing = [i for i, o in enumerate(outputs) if o is None]
        if missing:
            raise InputError(f"hooked layer(s) {missing} did not run in the classifier's forward pass")
