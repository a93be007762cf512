"""The batch vocabulary shared by data, model, losses, metrics and notebooks.

A batch is a ``dict`` with these keys (tensors on one device):

- ``composite``: ``(B,3,H,W)`` float32 sRGB in ``[0,1]``, the input image;
- ``mask``: ``(B,1,H,W)`` float32 in ``{0,1}``, 1 = the pasted foreground;
- ``target``: ``(B,3,H,W)`` float32 sRGB in ``[0,1]``, the real image (ground truth), when known;
- ``pred``: ``(B,3,H,W)`` float32 sRGB, the harmonized output (clamped to ``[0,1]`` only for metrics);
- ``name``: ``list[str]`` of length B; ``subset``: ``list[str]`` of length B.

Samples from the readers use the same keys with NumPy arrays: ``composite`` and
``target`` ``(H,W,3)`` uint8, ``mask`` ``(H,W)`` uint8 in ``{0,1}``.
"""

from __future__ import annotations

import torch

from .errors import RharmInputError

__all__ = ["COMPOSITE", "MASK", "TARGET", "PRED", "NAME", "SUBSET", "check_images"]

COMPOSITE = "composite"
MASK = "mask"
TARGET = "target"
PRED = "pred"
NAME = "name"
SUBSET = "subset"


def check_images(
    composite: torch.Tensor, mask: torch.Tensor, target: torch.Tensor | None = None
) -> None:
    """Check shapes at a public boundary; raise :class:`RharmInputError` quoting them.

    Args:
        composite: ``(B,3,H,W)`` float tensor.
        mask: ``(B,1,H,W)`` float tensor matching ``composite``'s B, H, W.
        target: optional ``(B,3,H,W)`` tensor with ``composite``'s shape.
    """
    if composite.ndim != 4 or composite.shape[1] != 3:
        raise RharmInputError(
            f"expected composite of shape (B,3,H,W), got {tuple(composite.shape)}"
        )
    b, _, h, w = composite.shape
    if tuple(mask.shape) != (b, 1, h, w):
        raise RharmInputError(
            f"expected mask of shape (B,1,H,W) matching composite {tuple(composite.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    if target is not None and tuple(target.shape) != tuple(composite.shape):
        raise RharmInputError(
            f"expected target of shape {tuple(composite.shape)} like composite, got {tuple(target.shape)}"
        )
