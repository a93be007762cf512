"""Training losses (Section III-B of Liang & Pun): eq. 13's L1, L_pixel and the
region-wise contrastive loss L_HCL.

Public API: :class:`LossConfig`, :class:`HarmonizationLoss` (the total, holding the
shared MLP), the pure functions :func:`l1_loss`, :func:`pixel_loss`,
:func:`region_contrastive_loss` (under the readings of eqs. 10–11 in :data:`READINGS`), and the sampling pieces for the patch inspector:
:func:`sample_locations`, :func:`extract_patches`, :func:`patch_boxes`, :func:`embed`.
"""

from .config import LEGACY_LOSS, NEGATIVES, PATCH_SOURCES, SAMPLINGS, LossConfig
from .contrastive import (
    HCLTerms,
    Locations,
    PatchEmbedder,
    embed,
    extract_patches,
    info_nce,
    patch_boxes,
    patch_features,
    patch_starts,
    region_contrastive_loss,
    region_locations,
    sample_locations,
    sampling_map,
)
from .pixel import l1_loss, pixel_loss
from .readings import DEFAULT_READING, READINGS, Reading
from .total import HarmonizationLoss

__all__ = [
    "LossConfig",
    "LEGACY_LOSS",
    "NEGATIVES",
    "PATCH_SOURCES",
    "SAMPLINGS",
    "READINGS",
    "DEFAULT_READING",
    "Reading",
    "HCLTerms",
    "Locations",
    "patch_features",
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
