"""L_HCL (eqs. 8–12): sampling rules, patch geometry, a naive per-patch loop
re-computation of eq. 11, degenerate masks, gradcheck."""

import math

import numpy as np
import pytest
import torch

from rharm_lib.losses import (
    PatchEmbedder,
    extract_patches,
    patch_boxes,
    region_contrastive_loss,
    region_locations,
    sample_locations,
)
from rharm_lib.seed import make_generator


def _mask(b, h, w):
    m = torch.zeros(b, 1, h, w)
    m[0, :, 4:20, 8:28] = 1
    if b > 1:
        m[1, :, 10:30, 2:14] = 1
    return m


def test_sampled_locations_fall_in_their_regions_and_are_reproducible():
    m = _mask(2, 32, 40)
    neg, pos, valid = sample_locations(m, 16, 4, make_generator(0))
    fg, bg = region_locations(m, 4)
    assert neg.shape == pos.shape == (2, 16) and valid.all()
    assert fg.gather(1, neg).all() and bg.gather(1, pos).all()
    # enough locations: drawn without replacement
    assert all(len(set(r.tolist())) == 16 for r in neg) and all(
        len(set(r.tolist())) == 16 for r in pos
    )
    neg2, pos2, _ = sample_locations(m, 16, 4, make_generator(0))
    assert torch.equal(neg, neg2) and torch.equal(pos, pos2)


def test_fewer_locations_than_k_sample_with_replacement():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 0:8, 0:4] = 1  # 2 foreground cells of the 4x4 sampling map
    neg, pos, valid = sample_locations(m, 20, 4, make_generator(1))
    fg, bg = region_locations(m, 4)
    assert valid.all() and set(neg[0].tolist()) == {0, 4}  # 20 draws from 2 cells
    assert bg[0, pos[0]].all() and len(set(pos[0].tolist())) < 20  # 14 bg cells: repeats


def test_sampling_is_uniform_over_the_region():
    m = torch.zeros(4000, 1, 8, 8)
    m[..., 0:4, 0:8] = 1  # 4 fg cells of the 2x2 map: 0 and 1
    neg, _, _ = sample_locations(m, 1, 4, make_generator(2))
    counts = torch.bincount(neg[:, 0], minlength=4)
    assert counts[2:].sum() == 0
    assert abs(counts[0].item() - 2000) < 4 * math.sqrt(1000)  # binomial sd ~ 32


def test_degenerate_masks_validity():
    h = w = 16
    empty, full, pixel = torch.zeros(1, 1, h, w), torch.ones(1, 1, h, w), torch.zeros(1, 1, h, w)
    pixel[..., 9, 6] = 1
    m = torch.cat([empty, full, pixel])
    neg, pos, valid = sample_locations(m, 8, 4, make_generator(3))
    assert valid.tolist() == [False, False, True]
    assert set(neg[2].tolist()) == {(9 // 4) * 4 + 6 // 4}  # the cell holding the pixel
    assert len(set(pos[2].tolist())) == 8  # 16 bg cells (the pixel's cell is 1/16 fg: also bg)


def test_extract_patches_match_boxes_and_slicing():
    g = torch.Generator().manual_seed(4)
    img = torch.rand(2, 3, 24, 32, generator=g)
    idx = torch.tensor([[0, 13, 47], [8, 30, 20]])  # map 6 x 8
    p = extract_patches(img, idx, 8, 4, "image")
    boxes = patch_boxes(idx, (6, 8), 8, 4, "image")
    assert p.shape == (2, 3, 3 * 64)
    # interior location 13 = (1, 5): rows 2..9, cols 18..25
    assert boxes[0, 1].tolist() == [18, 2, 26, 10]
    assert torch.equal(p[0, 1].view(3, 8, 8), img[0, :, 2:10, 18:26])
    # corner location 0: replicate padding outside the image
    assert boxes[0, 0].tolist() == [-2, -2, 6, 6]
    assert torch.equal(p[0, 0].view(3, 8, 8)[:, 0, 0], img[0, :, 0, 0])
    # map source: a patch of the 4x area-downsampled image, box 4x larger
    pm = extract_patches(img, idx, 2, 4, "map")
    small = torch.nn.functional.avg_pool2d(img, 4)
    assert patch_boxes(idx, (6, 8), 2, 4, "map")[1, 1].tolist() == [20, 8, 28, 16]  # (3,6)
    assert torch.allclose(pm[1, 1].view(3, 2, 2), small[1, :, 2:4, 5:7])


def _naive_patch(img, y, x, patch, scale, source):
    """img (C,H,W) float64 NumPy; replicate padding by index clipping."""
    if source == "map":
        c, h, w = img.shape
        hs, ws = h // scale, w // scale
        img = img[:, : hs * scale, : ws * scale].reshape(c, hs, scale, ws, scale).mean(axis=(2, 4))
        y0, x0 = y - patch // 2, x - patch // 2
    else:
        y0, x0 = y * scale + scale // 2 - patch // 2, x * scale + scale // 2 - patch // 2
    rows = np.clip(np.arange(y0, y0 + patch), 0, img.shape[1] - 1)
    cols = np.clip(np.arange(x0, x0 + patch), 0, img.shape[2] - 1)
    return img[:, rows][:, :, cols].reshape(-1)


def _naive_loss(pred, target, comp, neg, pos, valid, mlp, patch, scale, tau, negatives, source):
    """Eq. 11 one patch at a time, in float64 NumPy (MLP weights copied out)."""
    w1, b1 = mlp.net[0].weight.detach().double().numpy(), mlp.net[0].bias.detach().double().numpy()
    w2, b2 = mlp.net[2].weight.detach().double().numpy(), mlp.net[2].bias.detach().double().numpy()

    def emb(v):
        z = w2 @ np.maximum(w1 @ v + b1, 0) + b2
        return z / np.linalg.norm(z)

    b, _, h, w = pred.shape
    ws = w // scale
    total = 0.0
    for i in range(b):
        if not valid[i]:
            continue
        k = neg.shape[1]
        loc = [divmod(int(j), ws) for j in neg[i]]
        q = [emb(_naive_patch(pred[i], y, x, patch, scale, source)) for y, x in loc]
        src = pred[i] if negatives == "pred" else comp[i]
        n = [emb(_naive_patch(src, y, x, patch, scale, source)) for y, x in loc]
        acc = 0.0
        for kk in range(k):
            yp, xp = divmod(int(pos[i, kk]), ws)
            vp = emb(_naive_patch(target[i], yp, xp, patch, scale, source))
            s_pos = math.exp(q[kk] @ vp / tau)
            s_neg = sum(
                math.exp(q[kk] @ n[j] / tau)
                for j in range(k)
                if not (negatives == "pred" and j == kk)
            )
            acc += -math.log(s_pos / (s_pos + s_neg))
        total += acc / k
    return total / b


@pytest.mark.parametrize("negatives", ["pred", "composite"])
@pytest.mark.parametrize("source", ["image", "map"])
def test_loss_equals_naive_loop(negatives, source):
    torch.manual_seed(0)
    b, h, w, k, patch, scale, tau = 3, 32, 40, 6, 4 if source == "map" else 8, 4, 0.07
    g = torch.Generator().manual_seed(5)
    pred, target, comp = (torch.rand(b, 3, h, w, generator=g) for _ in range(3))
    m = _mask(b, h, w)  # image 2 has an empty mask: invalid
    locs = sample_locations(m, k, scale, make_generator(6))
    assert locs[2].tolist() == [True, True, False]
    mlp = PatchEmbedder(3 * patch * patch, 32, 16)
    loss, skipped = region_contrastive_loss(
        pred, target, m, mlp, comp, k=k, patch=patch, scale=scale, tau=tau,
        negatives=negatives, patch_source=source, locations=locs,
    )  # fmt: skip
    ref = _naive_loss(
        pred.double().numpy(), target.double().numpy(), comp.double().numpy(),
        *(t.numpy() for t in locs), mlp, patch, scale, tau, negatives, source,
    )  # fmt: skip
    assert skipped.item() == 1
    assert loss.item() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("kind", ["empty", "full", "pixel", "k1"])
def test_degenerate_never_nan(kind):
    torch.manual_seed(0)
    h = w = 16
    m = torch.zeros(2, 1, h, w) if kind != "full" else torch.ones(2, 1, h, w)
    if kind in ("pixel", "k1"):
        m[:, :, 3, 11] = 1
    pred = torch.rand(2, 3, h, w, requires_grad=True)
    mlp = PatchEmbedder(3 * 64, 16, 8)
    k = 1 if kind == "k1" else 8
    loss, skipped = region_contrastive_loss(pred, torch.rand(2, 3, h, w), m, mlp, k=k)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert skipped.item() == (2 if kind in ("empty", "full") else 0)
    if kind in ("empty", "full"):
        assert loss.item() == 0.0
    else:
        assert loss.item() > 0 or kind == "k1"


def test_gradcheck_double():
    torch.manual_seed(0)
    h, w, k, patch = 8, 12, 3, 4
    g = torch.Generator().manual_seed(7)
    pred = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64)
    comp = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.zeros(2, 1, h, w, dtype=torch.float64)
    m[0, :, :4, :8] = 1
    m[1, :, 4:, 4:] = 1
    mlp = PatchEmbedder(3 * patch * patch, 8, 8).double()
    locs = sample_locations(m, k, 4, make_generator(8))
    for negatives in ("pred", "composite"):

        def f(p, c, negatives=negatives):
            return region_contrastive_loss(
                p, target, m, mlp, c, k=k, patch=patch, tau=0.5, negatives=negatives, locations=locs
            )[0]

        assert torch.autograd.gradcheck(f, (pred, comp), fast_mode=True)
