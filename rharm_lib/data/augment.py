"""Training augmentation on batched tensors: random resized crop (scale jitter) and
horizontal flip, the same geometry for every tensor of one image.

The paper: "All the images are resized to 256×256, random cropped and flipped". Our photos
and training crops are both 256², so a plain random crop would be a no-op; this module
gives the crop its effect as torchvision's ``RandomResizedCrop`` does: a box of a random
area fraction (``scale``) and aspect ratio (``ratio``) is cut and resized to ``size``.

- Images (``composite``, ``target``, photos): bilinear, ``align_corners=False``, border
  padding (a box never leaves the image, so padding only enters through the last half
  pixel of an up-scaled box); float sRGB stays in its range (bilinear is a convex mix).
- Masks: nearest neighbour, so ``{0,1}`` stays ``{0,1}``; same box and flip as the images.
- Boxes are drawn per image, all randomness from one ``torch.Generator`` (reproducible);
  the generator must live on the tensors' device.

Box rule (torchvision's): up to 10 candidates per image with area ``U(scale)·H·W`` and
log-uniform aspect ratio in ``ratio``; the first that fits inside the image is used, else
the whole image. The top-left corner is uniform over the positions where the box fits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import RharmInputError

__all__ = ["CropConfig", "sample_crop_boxes", "crop_resize", "random_resized_crop", "augment_batch"]

_TRIES = 10


@dataclass(frozen=True)
class CropConfig:
    """Random resized crop settings.

    Attributes:
        size: output side S (square output ``S × S``).
        scale: range of the box's area as a fraction of the image's (torchvision default
            ``(0.08, 1)``; ours ``(0.5, 1)`` keeps most objects inside the crop).
        ratio: range of the box's width / height (sampled log-uniformly).
        flip_p: probability of a horizontal flip.
    """

    size: int = 256
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if self.size < 1 or not 0 < lo <= hi <= 1:
            raise RharmInputError(
                f"crop needs size >= 1 and 0 < scale[0] <= scale[1] <= 1, got {self.size}, {self.scale}"
            )
        if not 0 < self.ratio[0] <= self.ratio[1] or not 0 <= self.flip_p <= 1:
            raise RharmInputError(f"bad crop ratio {self.ratio} or flip_p {self.flip_p}")


def sample_crop_boxes(
    b: int,
    h: int,
    w: int,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """One crop box per image (the box rule of the module docstring).

    Args:
        b: batch size. h, w: image height and width in pixels.
        scale, ratio: see :class:`CropConfig`. generator: RNG on ``device``.

    Returns:
        ``(B,4)`` float ``(x0, y0, bw, bh)`` in pixels (continuous; the box covers
        ``[x0, x0 + bw) × [y0, y0 + bh)``), inside the image.
    """
    area = h * w
    u = torch.rand(b, _TRIES, 2, generator=generator, device=device)
    s = scale[0] + (scale[1] - scale[0]) * u[..., 0]
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1]
    r = torch.exp(logr)
    bw = torch.sqrt(s * area * r).round()
    bh = torch.sqrt(s * area / r).round()
    fits = (bw >= 1) & (bh >= 1) & (bw <= w) & (bh <= h)
    first = torch.where(fits.any(dim=1), fits.float().argmax(dim=1), -1)  # (B,)
    pick = first.clamp_min(0)[:, None]
    bw = torch.where(first >= 0, bw.gather(1, pick)[:, 0], torch.full_like(bw[:, 0], w))
    bh = torch.where(first >= 0, bh.gather(1, pick)[:, 0], torch.full_like(bh[:, 0], h))
    pos = torch.rand(b, 2, generator=generator, device=device)
    x0 = torch.floor(pos[:, 0] * (w - bw + 1)).clamp(max=w - bw)
    y0 = torch.floor(pos[:, 1] * (h - bh + 1)).clamp(max=h - bh)
    return torch.stack([x0, y0, bw, bh], dim=1)


def crop_resize(
    x: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    flip: torch.Tensor | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Cut ``boxes`` out of ``x`` and resize them to ``size × size`` (one ``grid_sample``).

    Args:
        x: ``(B,C,H,W)`` float. boxes: ``(B,4)`` ``(x0, y0, bw, bh)`` pixels.
        size: output side. flip: ``(B,)`` bool, mirror the crop horizontally.
        mode: ``bilinear`` (images) or ``nearest`` (masks).

    Returns:
        ``(B,C,size,size)``, ``x``'s dtype. Output pixel ``i`` samples input
        ``x0 + (i + 0.5)·bw/size − 0.5`` (pixel centres, ``align_corners=False``).
    """
    b, _, h, w = x.shape
    x0, y0, bw, bh = boxes.to(x.dtype).unbind(dim=1)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    sx = bw / w
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * x0 + bw) / w - 1  # box centre, normalised
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * y0 + bh) / h - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def random_resized_crop(
    images: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor] = (),
    cfg: CropConfig = CropConfig(),
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Random resized crop + flip with one geometry per image shared by all tensors.

    Args:
        images: tensors ``(B,C,H,W)`` float (e.g. sRGB in [0,1]); bilinear.
        masks: tensors ``(B,1,H,W)`` float in ``{0,1}``; nearest (stay binary).
        cfg: the crop settings. generator: RNG on the tensors' device.

    Returns:
        ``(images, masks, boxes, flip)``: the crops ``(B,C,S,S)`` in the input order, the
        ``(B,4)`` boxes ``(x0, y0, bw, bh)`` and ``(B,)`` bool flips used.

    Raises:
        RharmInputError: no tensor, or tensors of different batch/height/width.
    """
    tensors = list(images) + list(masks)
    if not tensors:
        raise RharmInputError("random_resized_crop needs at least one tensor")
    ref = tensors[0]
    for t in tensors:
        if t.ndim != 4 or (t.shape[0], *t.shape[2:]) != (ref.shape[0], *ref.shape[2:]):
            raise RharmInputError(
                f"expected (B,C,H,W) tensors of one batch and size, got "
                f"{[tuple(t.shape) for t in tensors]}"
            )
    b, _, h, w = ref.shape
    boxes = sample_crop_boxes(b, h, w, cfg.scale, cfg.ratio, generator, ref.device)
    flip = torch.rand(b, generator=generator, device=ref.device) < cfg.flip_p
    out_i = [crop_resize(t, boxes, cfg.size, flip, "bilinear") for t in images]
    out_m = [crop_resize(t, boxes, cfg.size, flip, "nearest") for t in masks]
    return out_i, out_m, boxes, flip


def augment_batch(
    batch: dict[str, torch.Tensor],
    cfg: CropConfig = CropConfig(),
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`random_resized_crop` of a batch dict (``composite``, ``target``, ``mask``; any
    of them may be absent, other keys are passed through). Images ``(B,3,H,W)`` float sRGB
    in [0,1], mask ``(B,1,H,W)`` {0,1}; returns the same keys at ``cfg.size``."""
    img_keys = [k for k in ("composite", "target") if k in batch]
    mask_keys = [k for k in ("mask",) if k in batch]
    imgs, masks, _, _ = random_resized_crop(
        [batch[k] for k in img_keys], [batch[k] for k in mask_keys], cfg, generator
    )
    out = dict(batch)
    out.update(zip(img_keys, imgs, strict=True))
    out.update(zip(mask_keys, masks, strict=True))
    return out
