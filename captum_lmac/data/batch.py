"""One training batch as the fit loop of the learned methods sees it (:class:`Batch`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, List, Optional, Union

import torch
from torch import Tensor


@dataclass
class Batch:
    """One training batch as the fit loop sees it.

    Attributes:
        X: Inputs (B, 1, F, T).
        clean: The clean part of a mixture (L-MAC fine-tuning pairs), or None.
        phase: The clips' phase (B, 1, F, T) for classifiers that need it (waveform models), or None.
        length: The clips' length in samples (ISTFT output length), or None.
        extra: Method-specific precomputed data (e.g. cached classifier outputs), or None.
        valid: (B, T) bool, False on frames that are zero padding of a shorter clip (streaming
            data), or None (every frame is real).
        labels: (B,) data-set labels where known (the methods explain the classifier's decisions
            and do not need them), or None.
        captions: One list of captions per clip (LMAC-ZS), or None.
        index: (B,) positions of the clips in their data set, or None.
        global_size: Clips in the global batch this one is a rank's part of (distributed fits), or None.
    """

    X: Tensor
    clean: Optional[Tensor] = None
    phase: Optional[Tensor] = None
    length: Optional[int] = None
    extra: Any = None
    valid: Optional[Tensor] = None
    labels: Optional[Tensor] = None
    captions: Optional[List[List[str]]] = None
    index: Optional[Tensor] = None
    global_size: Optional[int] = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def to(self, device: Union[str, torch.device]) -> "Batch":
        """The batch with every tensor (also inside ``extra``) on ``device``."""
        return Batch(**{f.name: _to(getattr(self, f.name), device) for f in fields(self)})


def _to(value: Any, device: Union[str, torch.device]) -> Any:
    if torch.is_tensor(value):
        return value.to(device, non_blocking=True)
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


__all__ = ["Batch"]
