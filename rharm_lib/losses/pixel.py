"""Reconstruction losses of eq. 13: L1 over the image and L_pixel over the foreground."""

from __future__ import annotations

import torch

__all__ = ["l1_loss", "pixel_loss"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all pixels and channels (the whole-image L1 of eq. 13).

    Args:
        pred: ``(B,3,H,W)`` float sRGB.
        target: ``(B,3,H,W)`` float sRGB in ``[0,1]``.

    Returns:
        Scalar, ``mean |pred - target|``.
    """
    return (pred - target).abs().mean()


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Foreground L1 normalised by the foreground area (L_pixel of eq. 13).

    Per image ``sum(M |pred - target|) / (3 max(sum M, 1))`` (the mean absolute error
    over the foreground's pixels and channels), then the mean over the batch. Each
    image weighs the same whatever its object's size (per-image normalisation, as
    fMSE does); an empty mask contributes 0.

    Args:
        pred: ``(B,3,H,W)`` float sRGB.
        target: ``(B,3,H,W)`` float sRGB in ``[0,1]``.
        mask: ``(B,1,H,W)`` float in ``{0,1}`` (1 = foreground).

    Returns:
        Scalar.
    """
    m = mask.to(pred.dtype)
    num = ((pred - target).abs() * m).sum(dim=(1, 2, 3))
    area = m.sum(dim=(1, 2, 3)).clamp_min(1.0) * pred.shape[1]
    return (num / area).mean()
