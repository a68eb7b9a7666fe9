"""Attribution methods (Captum ``Attribution`` subclasses) and Captum baselines as masks."""

from .baselines import (
    BASELINES,
    MASK_RULES,
    CaptumBaseline,
    MaskBaseline,
    make_baseline,
    patch_feature_mask,
    register_baseline,
    to_mask,
)
from .grad_cam_pp import LayerGradCamPlusPlus
from .lmac import LMAC, apply_mask

__all__ = [
    "LMAC",
    "apply_mask",
    "LayerGradCamPlusPlus",
    "BASELINES",
    "MASK_RULES",
    "CaptumBaseline",
    "MaskBaseline",
    "make_baseline",
    "patch_feature_mask",
    "register_baseline",
    "to_mask",
]
