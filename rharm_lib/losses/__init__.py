"""Training losses (Section III-B of Liang & Pun): eq. 13's L1, L_pixel and the
region-wise contrastive loss L_HCL.

Public API: :class:`LossConfig`, :class:`HarmonizationLoss` (the total, holding the
shared MLP), the pure functions :func:`l1_loss`, :func:`pixel_loss`,
:func:`region_contrastive_loss`, and the sampling pieces for the patch inspector:
:func:`sample_locations`, :func:`extract_patches`, :func:`patch_boxes`, :func:`embed`.
"""

from .config import NEGATIVES, PATCH_SOURCES, LossConfig
from .contrastive import (
    PatchEmbedder,
    embed,
    extract_patches,
    info_nce,
    patch_boxes,
    patch_starts,
    region_contrastive_loss,
    region_locations,
    sample_locations,
    sampling_map,
)
from .pixel import l1_loss, pixel_loss
from .total import HarmonizationLoss

__all__ = [
    "LossConfig",
    "NEGATIVES",
    "PATCH_SOURCES",
    "HarmonizationLoss",
    "l1_loss",
    "pixel_loss",
    "region_contrastive_loss",
    "PatchEmbedder",
    "embed",
    "info_nce",
    "sample_locations",
    "region_locations",
    "sampling_map",
    "extract_patches",
    "patch_starts",
    "patch_boxes",
]
