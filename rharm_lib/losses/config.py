"""The loss configuration (eq. 13 weights, L_HCL reading, sampling and embedding)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RharmInputError
from .readings import DEFAULT_READING, NEGATIVES_READING, READINGS, Reading

__all__ = [
    "LossConfig",
    "LEGACY_LOSS",
    "DEFAULT_READING",
    "NEGATIVES",
    "PATCH_SOURCES",
    "SAMPLINGS",
]


#: the legacy negatives switch (``pred`` = reading ``pred_negatives``, ``composite`` =
#: ``composite_negatives``); ``LossConfig.reading`` overrides it
NEGATIVES = tuple(NEGATIVES_READING)
#: where L_HCL's patches are cut from
PATCH_SOURCES = ("image", "map")
#: how K locations are drawn from a region with fewer than K cells
SAMPLINGS = ("capped", "replacement")


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of :class:`~rharm_lib.losses.total.HarmonizationLoss`.

    Attributes:
        w_l1, w_pixel, w_hcl: eq. 13 weights (0.4, 0.5, 0.1 in the paper).
        k: locations sampled per region and image (K of eqs. 8–12).
        patch: patch side P (8).
        tau: temperature of eq. 11 (0.07).
        sample_scale: the sampling map is ``H/scale × W/scale`` (4).
        negatives: legacy switch, used when ``reading`` is ``None``: ``pred`` (reading
            ``pred_negatives``) or ``composite`` (``composite_negatives``); ``None``: the
            default reading.
        reading: a key of :data:`~rharm_lib.losses.readings.READINGS` (which patches are the
            query, positive and negatives of eqs. 10–11); ``None``: from ``negatives``, else
            :data:`DEFAULT_READING`. Decision: ``style`` by default, chosen on ``rharm diagnose loss``'s evidence
            (docs/model.md, "Which reading is the default"): under eq. 13 the paper-literal
            ``pred_negatives`` pulled the pixels *away* from the ground truth (fMSE 271.7 ->
            654.7) while ``style`` stayed near reconstruction (25.6) and had the best
            step-0 alignment of the eq. 13 total (+0.73). The paper's literal reading is one
            value away: ``reading="pred_negatives"``.
        patch_source: ``map`` (the paper's "crop 8×8 patches around the negative locations
            in S^fg": 8×8 patches of the image area-downsampled to the sampling map, each
            covering ``8·scale`` pixels) or ``image`` (8×8 patches of the full-resolution
            image centred on the sampling-map cell; the default before issue #16).
        region_mask: cut patches from ``H·M`` (foreground patches) and ``Ĥ·(1−M)``
            (background patches), as the paper's ``H^fg``/``Ĥ^bg`` (eqs. 8–9), so that a
            patch sees only its own region; ``False``: from the unmasked images.
        sampling: ``capped`` (a region with r < K cells gives r distinct locations, the
            other slots are masked out of eq. 11) or ``replacement`` (K draws with
            replacement: duplicated samples, the pre-fix rule).
        mlp_hidden, mlp_out: the shared two-layer MLP's widths.

    The loss before issue #16 is
    ``LossConfig(patch_source="image", region_mask=False, sampling="replacement")``
    (:data:`LEGACY_LOSS`, with the reading ``pred_negatives`` that was the default then).
    """

    w_l1: float = 0.4
    w_pixel: float = 0.5
    w_hcl: float = 0.1
    k: int = 256
    patch: int = 8
    tau: float = 0.07
    sample_scale: int = 4
    negatives: str | None = None
    reading: str | None = None
    patch_source: str = "map"
    region_mask: bool = True
    sampling: str = "capped"
    mlp_hidden: int = 256
    mlp_out: int = 256

    def __post_init__(self) -> None:
        if self.negatives is not None and self.negatives not in NEGATIVES:
            raise RharmInputError(f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if self.reading is not None and self.reading not in READINGS:
            raise RharmInputError(
                f"reading must be one of {sorted(READINGS)}, got {self.reading!r}"
            )
        if self.patch_source not in PATCH_SOURCES:
            raise RharmInputError(
                f"patch_source must be one of {PATCH_SOURCES}, got {self.patch_source!r}"
            )
        if self.sampling not in SAMPLINGS:
            raise RharmInputError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        for name in ("k", "patch", "sample_scale", "mlp_hidden", "mlp_out"):
            if getattr(self, name) < 1:
                raise RharmInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.tau <= 0:
            raise RharmInputError(f"tau must be > 0, got {self.tau}")

    @property
    def reading_name(self) -> str:
        """The effective reading: ``reading``, else the one ``negatives`` selects, else
        :data:`DEFAULT_READING`."""
        if self.reading is not None:
            return self.reading
        if self.negatives is not None:
            return NEGATIVES_READING[self.negatives]
        return DEFAULT_READING

    @property
    def reading_spec(self) -> Reading:
        """The :class:`~rharm_lib.losses.readings.Reading` in effect."""
        return READINGS[self.reading_name]


#: the loss as it was before issue #16 (image patches, unmasked, sampling with replacement)
LEGACY_LOSS = LossConfig(
    patch_source="image", region_mask=False, sampling="replacement", reading="pred_negatives"
)
