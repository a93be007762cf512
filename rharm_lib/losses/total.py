"""The total training loss of eq. 13 as one module holding L_HCL's shared MLP."""

from __future__ import annotations

import torch
from torch import nn

from ..batch import check_images
from ..errors import RharmInputError
from .config import LossConfig
from .contrastive import PatchEmbedder, region_contrastive_loss
from .pixel import l1_loss, pixel_loss

__all__ = ["HarmonizationLoss"]


def _up(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class HarmonizationLoss(nn.Module):
    """``w_l1·L1 + w_pixel·L_pixel + w_hcl·L_HCL`` (eq. 13; 0.4, 0.5, 0.1 by default).

    Holds the shared two-layer MLP of L_HCL (``self.mlp``); the training engine adds
    this module's parameters to the optimiser. Computed in float32 with autocast off
    (float64 inputs stay float64, for gradcheck), whatever the caller's precision.

    ``forward(pred, target, mask, composite, generator=None)``:

    Args:
        pred: ``(B,3,H,W)`` harmonized output (sRGB, unclamped).
        target: ``(B,3,H,W)`` ground truth, sRGB in [0,1].
        mask: ``(B,1,H,W)`` float in ``{0,1}``.
        composite: ``(B,3,H,W)`` the input composite (cut by the readings that use it).
        generator: ``torch.Generator`` on the inputs' device for L_HCL's sampling.

    Returns:
        dict with scalar tensors ``total``, ``l1``, ``pixel``, ``hcl`` and
        ``hcl_skipped`` (long: images with no foreground or no background location).
    """

    def __init__(self, cfg: LossConfig | None = None):
        super().__init__()
        self.cfg = cfg or LossConfig()
        in_dim = self.cfg.reading_spec.in_dim(self.cfg.patch)
        self.mlp = PatchEmbedder(in_dim, self.cfg.mlp_hidden, self.cfg.mlp_out)

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        composite: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        check_images(composite, mask, target)
        if tuple(pred.shape) != tuple(target.shape):
            raise RharmInputError(
                f"expected pred of shape {tuple(target.shape)}, got {tuple(pred.shape)}"
            )
        cfg = self.cfg
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target, composite = _up(pred), _up(target).to(_up(pred).dtype), _up(composite)
            m = mask.to(pred.dtype)
            l1 = l1_loss(pred, target)
            pix = pixel_loss(pred, target, m)
            if cfg.w_hcl != 0:
                hcl, skipped = region_contrastive_loss(
                    pred, target, m, self.mlp, composite.to(pred.dtype),
                    k=cfg.k, patch=cfg.patch, scale=cfg.sample_scale, tau=cfg.tau,
                    reading=cfg.reading_name, patch_source=cfg.patch_source,
                    region_mask=cfg.region_mask, sampling=cfg.sampling, generator=generator,
                )  # fmt: skip
            else:
                hcl = pred.new_zeros(())
                skipped = torch.zeros((), dtype=torch.long, device=pred.device)
            total = cfg.w_l1 * l1 + cfg.w_pixel * pix + cfg.w_hcl * hcl  # eq. 13
        return {"total": total, "l1": l1, "pixel": pix, "hcl": hcl, "hcl_skipped": skipped}
