"""The loss configuration (eq. 13 weights, L_HCL sampling and embedding)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RharmInputError

__all__ = ["LossConfig", "NEGATIVES", "PATCH_SOURCES"]

#: where L_HCL's negatives come from (see :mod:`rharm_lib.losses.contrastive`)
NEGATIVES = ("pred", "composite")
#: where L_HCL's patches are cut from
PATCH_SOURCES = ("image", "map")


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of :class:`~rharm_lib.losses.total.HarmonizationLoss`.

    Attributes:
        w_l1, w_pixel, w_hcl: eq. 13 weights (0.4, 0.5, 0.1 in the paper).
        k: locations sampled per region and image (K of eqs. 8–12).
        patch: patch side P (8).
        tau: temperature of eq. 11 (0.07).
        sample_scale: the sampling map is ``H/scale × W/scale`` (4).
        negatives: ``pred`` (the paper's reading: the harmonized output's foreground) or
            ``composite`` (the composite's foreground, the alternative reading).
        patch_source: ``image`` (8×8 patches of the full-resolution image centred on the
            sampling-map cell) or ``map`` (8×8 patches of the image area-downsampled to the
            sampling map, each covering ``8·scale`` pixels).
        mlp_hidden, mlp_out: the shared two-layer MLP's widths (input ``3·patch²``).
    """

    w_l1: float = 0.4
    w_pixel: float = 0.5
    w_hcl: float = 0.1
    k: int = 256
    patch: int = 8
    tau: float = 0.07
    sample_scale: int = 4
    negatives: str = "pred"
    patch_source: str = "image"
    mlp_hidden: int = 256
    mlp_out: int = 256

    def __post_init__(self) -> None:
        if self.negatives not in NEGATIVES:
            raise RharmInputError(f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if self.patch_source not in PATCH_SOURCES:
            raise RharmInputError(
                f"patch_source must be one of {PATCH_SOURCES}, got {self.patch_source!r}"
            )
        for name in ("k", "patch", "sample_scale", "mlp_hidden", "mlp_out"):
            if getattr(self, name) < 1:
                raise RharmInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.tau <= 0:
            raise RharmInputError(f"tau must be > 0, got {self.tau}")
