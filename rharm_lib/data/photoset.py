"""The photo set: real photographs with one object mask each, as uint8 tensors.

A :class:`PhotoSet` is what composite synthesis consumes, on the fly in training or once for
the fixed test benchmark (:mod:`rharm_lib.data.benchmark`). Readers that produce one:
:mod:`rharm_lib.data.photos` (lalonde layout, and the dispatch by source),
:mod:`rharm_lib.data.builtin`, :mod:`rharm_lib.data.pack`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import RharmInputError

__all__ = ["PhotoSet", "stack_photos"]


@dataclass(frozen=True)
class PhotoSet:
    """Photographs and their foreground masks.

    Attributes:
        images: ``(N,3,S,S)`` uint8 sRGB.
        masks: ``(N,1,S,S)`` uint8 in ``{0,1}`` (1 = the object).
        names: ``N`` unique names (file stems of the source).
    """

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise RharmInputError(
                f"PhotoSet images must be uint8 (N,3,S,S), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.masks.dtype != torch.uint8 or tuple(self.masks.shape) != (
            n,
            1,
            *self.images.shape[2:],
        ):
            raise RharmInputError(
                f"PhotoSet masks must be uint8 (N,1,S,S) matching images "
                f"{tuple(self.images.shape)}, got {self.masks.dtype} {tuple(self.masks.shape)}"
            )
        if self.images.shape[0] != n:
            raise RharmInputError(f"PhotoSet has {self.images.shape[0]} images but {n} names")
        if len(set(self.names)) != n:
            raise RharmInputError("PhotoSet names must be unique")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> int:
        """The side ``S`` of the square images."""
        return int(self.images.shape[-1])

    def to(self, device: str | torch.device) -> PhotoSet:
        """The same set with its tensors on ``device`` (GPU-resident training data)."""
        return PhotoSet(self.images.to(device), self.masks.to(device), list(self.names))

    def float_batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """``(target (B,3,S,S) float32 [0,1], mask (B,1,S,S) float32 {0,1})`` for ``index``."""
        return self.images[index].float() / 255.0, self.masks[index].float()


def stack_photos(
    images: list[np.ndarray], masks: list[np.ndarray], names: list[str], size: int
) -> PhotoSet:
    """A :class:`PhotoSet` from ``(S,S,3)`` uint8 images and ``(S,S)`` uint8 ``{0,1}`` masks.

    An empty list gives an empty set of side ``size``.
    """
    if not names:
        return PhotoSet(
            torch.zeros(0, 3, size, size, dtype=torch.uint8),
            torch.zeros(0, 1, size, size, dtype=torch.uint8),
            [],
        )
    ims = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    ms = torch.from_numpy(np.stack(masks))[:, None].contiguous()
    return PhotoSet(ims, ms, names)
