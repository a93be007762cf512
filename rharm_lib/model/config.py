"""Model configurations: a frozen dataclass and the named presets in :data:`CONFIGS`."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import RharmInputError
from .fusion import FUSIONS

__all__ = ["ModelConfig", "CONFIGS", "NORMS"]

#: accepted ``ModelConfig.norm`` values
NORMS = ("batch", "instance", "group", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`~rharm_lib.model.resunet.HarmonizationNet`.

    Attributes:
        widths: channels of encoder levels 0 (full resolution) … L-1 (bottleneck);
            multiples of 8. The network pads inputs to a multiple of ``2**(L-1)``.
        blocks: residual blocks per level (encoder level i and decoder level i).
        norm: ``batch`` (Hertz et al.'s ResUNet), ``instance``, ``group`` (8 groups) or ``none``.
        fusion: a key of :data:`~rharm_lib.model.fusion.FUSIONS` (``sf`` = the paper's).
        fusion_levels: decoder levels (0 = finest) that apply the fusion layer.
        use_s2am: apply S²AM after the fusion on ``s2am_levels``.
        s2am_levels: decoder levels with S²AM (the finest ones, as in Cun & Pun).
        s2am_reduction: channel-attention bottleneck ratio.
        output: ``residual`` (``out = composite + head(x)``) or ``image`` (``out = head(x)``).
        copy_background: ``pred = m out + (1 - m) composite`` with the full-resolution mask.
        pad_mode: ``replicate`` or ``reflect`` padding up to the network's multiple
            (``reflect`` falls back to ``replicate`` when the image is too small).
        eps: epsilon of the masked statistics.
    """

    widths: tuple[int, ...] = (64, 128, 256, 512, 896)
    blocks: tuple[int, ...] = (1, 1, 1, 1, 1)
    norm: str = "batch"
    fusion: str = "sf"
    fusion_levels: tuple[int, ...] = (0, 1, 2, 3)
    use_s2am: bool = True
    s2am_levels: tuple[int, ...] = (0, 1, 2)
    s2am_reduction: int = 16
    output: str = "residual"
    copy_background: bool = True
    pad_mode: str = "replicate"
    eps: float = 1e-5

    def __post_init__(self) -> None:
        # lists (from JSON, e.g. a checkpoint's dataclasses.asdict) become tuples: hashable
        for attr in ("widths", "blocks", "fusion_levels", "s2am_levels"):
            object.__setattr__(self, attr, tuple(int(v) for v in getattr(self, attr)))
        n = len(self.widths)
        if n < 2:
            raise RharmInputError(f"need at least 2 levels, got widths={self.widths}")
        if any(w <= 0 or w % 8 for w in self.widths):
            raise RharmInputError(f"widths must be positive multiples of 8, got {self.widths}")
        if len(self.blocks) != n or any(b < 0 for b in self.blocks):
            raise RharmInputError(f"blocks {self.blocks} must give one count >= 0 per level ({n})")
        if self.norm not in NORMS:
            raise RharmInputError(f"unknown norm {self.norm!r}; expected one of {NORMS}")
        if self.fusion not in FUSIONS:
            raise RharmInputError(
                f"unknown fusion {self.fusion!r}; expected one of {sorted(FUSIONS)}"
            )
        for attr in ("fusion_levels", "s2am_levels"):
            bad = [i for i in getattr(self, attr) if not 0 <= i < n - 1]
            if bad:
                raise RharmInputError(
                    f"{attr} {getattr(self, attr)}: decoder levels are 0..{n - 2}"
                )
        if self.output not in ("residual", "image"):
            raise RharmInputError(f"output must be 'residual' or 'image', got {self.output!r}")
        if self.pad_mode not in ("replicate", "reflect"):
            raise RharmInputError(
                f"pad_mode must be 'replicate' or 'reflect', got {self.pad_mode!r}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Rebuild from ``dataclasses.asdict(cfg)`` (e.g. stored in a checkpoint)."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise RharmInputError(f"unknown ModelConfig fields {sorted(unknown)}")
        return cls(**d)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this (``2**(levels-1)``)."""
        return 2 ** (len(self.widths) - 1)


#: named presets; the plain ResUNet is ``dataclasses.replace(cfg, fusion="none", use_s2am=False)``
#: ``paper``: 5 levels of 64…512 channels doubling, then 896 at the bottleneck (not 1024) so
#: that the count, 29.56 M, is within 5 % of the paper's 28.37 M (1024 gives 32.6 M, +15 %).
#: ``ci``: trains in a minute on 2 CPU cores (~0.27 M parameters).
#: ``cpu``: every component of the paper's network (style fusion on the same four levels,
#: S²AM on the three finest) at 1/4 of its width up to 192 at the bottleneck (1.68 M
#: parameters): the widest that trains in well under 45 minutes per seed on 2 CPU cores
#: (``docs/training.md``, "The cpu config").
#: ``tiny``: 8 channels everywhere, for cheap shape tests at large sizes.
CONFIGS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "ci": ModelConfig(widths=(8, 16, 32, 48, 64)),
    "cpu": ModelConfig(widths=(16, 32, 64, 128, 192)),
    "tiny": ModelConfig(widths=(8, 8, 8, 8, 8), s2am_levels=(1, 2)),
}
