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
from ..nn.auto_layers import AutoLayers, auto_layers
from ..nn.hooks import Hook
from .grad_cam_pp import LayerGradCamPlusPlus
from ._learned import FitPlan, LearnedAttribution
from .l2i import L2I
from .lmac import LMAC, apply_mask
from .lmac_zs import LMACZS

__all__ = [
    "Hook",
    "auto_layers",
    "AutoLayers",
    "LMACZS",
    "L2I",
    "LearnedAttribution",
    "FitPlan",
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
