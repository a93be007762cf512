"""The one mask-resizing rule, and masked channel statistics.

Every place that needs the mask at another resolution (style fusion, S²AM, the
contrastive loss's sampling map) calls :func:`resize_mask`, so they all agree.

Rule (our decision; the paper does not state one): **area resampling to a soft
fraction**. A cell of the resized mask holds the fraction of its source pixels that
are foreground (``F.interpolate(mode="area")``, i.e. average pooling when the size
divides exactly). It is *not* re-binarised, so a one-pixel object keeps a small
non-zero weight at every level instead of vanishing, and masked statistics weight
each cell by how much of it is foreground. Code that needs a hard decision
(the contrastive sampler) thresholds this soft map itself and says how.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_mask", "masked_mean_std", "blur_mask"]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a mask to ``size`` by area resampling (the project's one rule).

    Args:
        mask: ``(B,1,H,W)`` float in ``[0,1]`` (normally ``{0,1}``), 1 = foreground.
        size: ``(h, w)`` target size.

    Returns:
        ``(B,1,h,w)`` float in ``[0,1]``: the foreground fraction of each cell. Returned
        unchanged when ``size`` equals the input size.
    """
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="area")


def masked_mean_std(
    x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation over a (soft) region.

    ``mu = sum(w x) / (sum(w) + eps)``, ``var = sum(w (x - mu)^2) / (sum(w) + eps)``,
    ``std = sqrt(var + eps)`` — statistics of the region only, not means of a
    zero-padded map. An empty region gives ``mu = 0``, ``std = sqrt(eps)`` (finite).

    Args:
        x: ``(B,C,h,w)`` features (any float dtype; computed in ``x``'s dtype).
        weight: ``(B,1,h,w)`` region weights in ``[0,1]``.
        eps: added to the weight sum and to the variance.

    Returns:
        ``(mean, std)``, each ``(B,C,1,1)``.
    """
    area = weight.sum(dim=(2, 3), keepdim=True)
    mean = (x * weight).sum(dim=(2, 3), keepdim=True) / (area + eps)
    var = ((x - mean) ** 2 * weight).sum(dim=(2, 3), keepdim=True) / (area + eps)
    return mean, torch.sqrt(var + eps)


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def blur_mask(mask: torch.Tensor, size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of a ``(B,1,h,w)`` mask with replicate padding (S²AM's soft mask).

    Replicate padding keeps a constant mask constant, so ``blur(1 - m) == 1 - blur(m)``.
    """
    k = _gaussian_kernel(size, sigma).to(device=mask.device, dtype=mask.dtype)
    p = size // 2
    return F.conv2d(F.pad(mask, (p, p, p, p), mode="replicate"), k)
