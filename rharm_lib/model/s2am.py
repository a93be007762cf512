"""S²AM, the spatial-separated attention module (Cun & Pun 2020), used on the finest
decoder levels.

Given a decoder feature ``x`` and the soft mask ``m`` at its resolution (resized with
the project's rule, :func:`~rharm_lib.model.masks.resize_mask`, then Gaussian-blurred
so the two branches blend smoothly across the object boundary):

``out = A_bg(x) (1 - m) + (L(A_fg(x)) + A_mix(x)) m``

where each ``A`` is a channel attention ``x * sigmoid(MLP(avgpool x) + MLP(maxpool x))``
(one bottleneck MLP per branch, shared between its two pooled descriptors) and ``L`` is
the learned block of the foreground branch (two 3×3 conv, norm, ELU layers). The
pooled descriptors are global (whole feature map), as in the original.

Computation (issue 11, the training step's overhead; the same values up to float
rounding): the three attentions see the same ``x``, so its pooled descriptors are computed
once (:func:`pooled_descriptors`) and each branch's MLP takes its two descriptors as one
batch; the recombination is ``x lerp(s_bg, s_mix, m) + L(x s_fg) m`` with ``s`` the
branches' sigmoid weights, two full-size passes fewer than the literal sum of products.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import blur_mask, resize_mask

__all__ = ["ChannelAttention", "S2AM", "pooled_descriptors"]


def pooled_descriptors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global average and max pooling of ``(B,C,h,w)``: ``(avg, max)``, each ``(B,C,1,1)``.

    Looked up through this module at call time, so that tiled inference can replay the
    whole image's descriptors (:func:`rharm_lib.fullres.frozen_statistics`).
    """
    return x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)


def _round8(n: int) -> int:
    return max(8, (n + 7) // 8 * 8)


class ChannelAttention(nn.Module):
    """``x * sigmoid(MLP(avg) + MLP(max))`` with a bottleneck of ``C / reduction`` (≥ 8).

    Args:
        channels: C.
        reduction: bottleneck ratio.

    Shapes: ``(B,C,h,w) -> (B,C,h,w)``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = _round8(channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def weights(self, avg: torch.Tensor, mx: torch.Tensor) -> torch.Tensor:
        """``sigmoid(MLP(avg) + MLP(max))``, ``(B,C,1,1)``, from the pooled descriptors (the
        MLP runs once on both, stacked along the batch: it acts on each sample alone)."""
        y = self.mlp(torch.cat([avg, mx], dim=0))
        return torch.sigmoid(y[: avg.shape[0]] + y[avg.shape[0] :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(*pooled_descriptors(x))


class S2AM(nn.Module):
    """Spatial-separated attention module.

    Args:
        channels: C of the feature it attends.
        norm: a callable ``norm(C) -> nn.Module`` for the learned block.
        reduction: channel-attention bottleneck ratio.
        blur_size, blur_sigma: the Gaussian applied to the resized mask.

    ``forward(x (B,C,h,w), mask (B,1,H,W) in [0,1]) -> (B,C,h,w)``.
    """

    def __init__(
        self,
        channels: int,
        norm,
        reduction: int = 16,
        blur_size: int = 5,
        blur_sigma: float = 1.0,
    ):
        super().__init__()
        self.att_bg = ChannelAttention(channels, reduction)
        self.att_fg = ChannelAttention(channels, reduction)
        self.att_mix = ChannelAttention(channels, reduction)
        self.learn = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm(channels),
            nn.ELU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm(channels),
            nn.ELU(inplace=True),
        )
        self.blur_size, self.blur_sigma = blur_size, blur_sigma

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = resize_mask(mask, tuple(x.shape[-2:]))
        m = blur_mask(m, self.blur_size, self.blur_sigma).to(x.dtype)
        avg, mx = pooled_descriptors(x)  # one pooling for the three attentions (same x)
        s_bg, s_fg, s_mix = (a.weights(avg, mx) for a in (self.att_bg, self.att_fg, self.att_mix))
        # A_bg(x) (1 - m) + (L(A_fg(x)) + A_mix(x)) m, with A(x) = x s
        out = x * torch.lerp(s_bg, s_mix, m)
        return torch.addcmul(out, self.learn(x * s_fg), m)
