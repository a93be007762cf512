"""The harmonization network (Section III-A of Liang & Pun).

Public API: :class:`ModelConfig`, :data:`CONFIGS` (``paper``, ``ci``, ``tiny``),
:func:`build_model` -> :class:`HarmonizationNet` (``net(composite, mask,
return_features=False)``), the fusion registry :data:`FUSIONS` (``none``, ``adain``,
``rain``, ``sf``), :func:`resize_mask` (the one mask-resizing rule),
:func:`count_params` and :func:`forward_flops`.
"""

from .config import CONFIGS, NORMS, ModelConfig
from .flops import count_params, forward_flops
from .fusion import FUSIONS, AdaINFusion, NoFusion, RAINFusion, StyleFusion, build_fusion
from .masks import blur_mask, masked_mean_std, resize_mask
from .resunet import HarmonizationNet, build_model
from .s2am import S2AM, ChannelAttention

__all__ = [
    "ModelConfig",
    "CONFIGS",
    "NORMS",
    "HarmonizationNet",
    "build_model",
    "FUSIONS",
    "build_fusion",
    "NoFusion",
    "AdaINFusion",
    "RAINFusion",
    "StyleFusion",
    "S2AM",
    "ChannelAttention",
    "resize_mask",
    "masked_mean_std",
    "blur_mask",
    "count_params",
    "forward_flops",
]
