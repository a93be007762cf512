"""rharm_lib.data.augment: random resized crop + flip on batched tensors (same geometry for
images and masks, masks stay binary, boxes within the configured ranges, reproducible)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rharm_lib.data.augment import (
    CropConfig,
    augment_batch,
    crop_resize,
    random_resized_crop,
    sample_crop_boxes,
)
from rharm_lib.errors import RharmInputError
from rharm_lib.seed import make_generator


def _ramps(b, h, w):
    """Channel 0 = x coordinate, channel 1 = y coordinate, channel 2 = image index."""
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.stack([xs, ys, torch.zeros(h, w)])[None].repeat(b, 1, 1, 1) + torch.tensor(
        [0.0, 0.0, 1.0]
    ).view(1, 3, 1, 1) * torch.arange(b).float().view(b, 1, 1, 1)


def test_full_box_without_flip_is_identity():
    x = torch.rand(2, 3, 20, 20)
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0]] * 2)
    torch.testing.assert_close(crop_resize(x, boxes, 20), x)
    torch.testing.assert_close(crop_resize(x, boxes, 20, mode="nearest"), x)


def test_crop_matches_slicing_and_interpolate():
    """A box of 16 px resized to 8 equals slicing + F.interpolate(bilinear,
    align_corners=False) of the slice (an independent route)."""
    x = torch.rand(1, 3, 24, 30, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[5.0, 3.0, 16.0, 16.0]])
    ref = F.interpolate(x[:, :, 3:19, 5:21], size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(crop_resize(x, boxes, 8), ref, rtol=1e-5, atol=1e-5)
    flipped = crop_resize(x, boxes, 8, flip=torch.tensor([True]))
    torch.testing.assert_close(flipped, ref.flip(-1), rtol=1e-5, atol=1e-5)


def test_same_geometry_for_images_and_masks_and_binary_masks():
    b, h, w, s = 6, 40, 48, 24
    ramps = _ramps(b, h, w)
    mask = (ramps[:, :1] >= 20).float()  # foreground: columns x >= 20
    cfg = CropConfig(size=s, scale=(0.3, 1.0))
    (img,), (m,), boxes, flip = random_resized_crop([ramps], [mask], cfg, make_generator(0))
    assert img.shape == (b, 3, s, s) and m.shape == (b, 1, s, s)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    i = torch.arange(s).float()
    for k in range(b):
        x0, y0, bw, bh = boxes[k].tolist()
        xs = x0 + (i + 0.5) * bw / s - 0.5  # where output column i samples
        xs = xs.flip(0) if flip[k] else xs
        exp_x = xs.clamp(0, w - 1)
        torch.testing.assert_close(img[k, 0, s // 2], exp_x, atol=1e-3, rtol=0)
        exp_y = (y0 + (i + 0.5) * bh / s - 0.5).clamp(0, h - 1)
        torch.testing.assert_close(img[k, 1, :, s // 2], exp_y, atol=1e-3, rtol=0)
        assert torch.allclose(img[k, 2], torch.tensor(float(k)))  # each image keeps its own
        # the mask follows the same box: columns sampling x >= 20 (away from the edge) are fg
        far = (xs - 19.5).abs() > 0.6
        assert torch.equal(m[k, 0, s // 2][far], (xs[far] >= 20).float())


def test_boxes_respect_scale_ratio_and_image():
    b, h, w = 500, 64, 80
    scale, ratio = (0.2, 0.6), (0.5, 2.0)
    boxes = sample_crop_boxes(b, h, w, scale, ratio, make_generator(1))
    x0, y0, bw, bh = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + bw <= w).all() and (y0 + bh <= h).all()
    frac, r = bw * bh / (h * w), bw / bh
    # rounding to whole pixels moves the area and ratio a little
    assert frac.min() > scale[0] * 0.9 and frac.max() < scale[1] * 1.1
    assert r.min() > ratio[0] * 0.9 and r.max() < ratio[1] * 1.1
    assert frac.std() > 0.05 and x0.unique().numel() > 10  # really random
    # a range no box fits in falls back to the whole image
    full = sample_crop_boxes(4, 10, 10, (1.0, 1.0), (4.0, 4.0), make_generator(2))
    assert torch.equal(full, torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4))


def test_reproducible_and_flip_probability():
    x = torch.rand(8, 3, 32, 32)
    a = random_resized_crop([x], [], CropConfig(size=16), make_generator(3))
    b = random_resized_crop([x], [], CropConfig(size=16), make_generator(3))
    c = random_resized_crop([x], [], CropConfig(size=16), make_generator(4))
    assert torch.equal(a[0][0], b[0][0]) and not torch.equal(a[0][0], c[0][0])
    never = random_resized_crop([x], [], CropConfig(size=16, flip_p=0.0), make_generator(3))
    always = random_resized_crop([x], [], CropConfig(size=16, flip_p=1.0), make_generator(3))
    assert torch.equal(never[2], always[2])  # same boxes
    assert not never[3].any() and always[3].all()
    torch.testing.assert_close(always[0][0], never[0][0].flip(-1))


def test_augment_batch_keys_ranges_and_bad_input():
    g = torch.Generator().manual_seed(5)
    batch = {
        "composite": torch.rand(3, 3, 30, 30, generator=g),
        "target": torch.rand(3, 3, 30, 30, generator=g),
        "mask": (torch.rand(3, 1, 30, 30, generator=g) > 0.5).float(),
        "name": ["a", "b", "c"],
    }
    out = augment_batch(batch, CropConfig(size=20), make_generator(6))
    assert out["name"] == batch["name"] and out["composite"].shape == (3, 3, 20, 20)
    for k in ("composite", "target"):
        assert out[k].min() >= 0 and out[k].max() <= 1
    assert set(out["mask"].unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(RharmInputError, match="one batch and size"):
        random_resized_crop([torch.rand(2, 3, 8, 8)], [torch.rand(2, 1, 8, 9)])
    with pytest.raises(RharmInputError):
        CropConfig(scale=(0.0, 1.0))
    assert math.isclose(CropConfig().scale[0], 0.5)
