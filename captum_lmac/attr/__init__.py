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

__all__ = [
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
