"""L_HCL (eqs. 8–12): sampling rules, patch geometry, a naive per-patch loop
re-computation of eq. 11, degenerate masks, gradcheck."""

import math

import numpy as np
import pytest
import torch

from rharm_lib.losses import (
    READINGS,
    LossConfig,
    PatchEmbedder,
    extract_patches,
    patch_boxes,
    patch_features,
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
    neg, pos, valid, _, _ = sample_locations(m, 16, 4, make_generator(0))
    fg, bg = region_locations(m, 4)
    assert neg.shape == pos.shape == (2, 16) and valid.all()
    assert fg.gather(1, neg).all() and bg.gather(1, pos).all()
    # enough locations: drawn without replacement
    assert all(len(set(r.tolist())) == 16 for r in neg) and all(
        len(set(r.tolist())) == 16 for r in pos
    )
    neg2, pos2, *_ = sample_locations(m, 16, 4, make_generator(0))
    assert torch.equal(neg, neg2) and torch.equal(pos, pos2)


def test_fewer_locations_than_k_sample_with_replacement():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 0:8, 0:4] = 1  # 2 foreground cells of the 4x4 sampling map
    neg, pos, valid, _, _ = sample_locations(m, 20, 4, make_generator(1), "replacement")
    fg, bg = region_locations(m, 4)
    assert valid.all() and set(neg[0].tolist()) == {0, 4}  # 20 draws from 2 cells
    assert bg[0, pos[0]].all() and len(set(pos[0].tolist())) < 20  # 14 bg cells: repeats


def test_fewer_locations_than_k_capped_fills_distinct_slots():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 0:8, 0:4] = 1
    locs = sample_locations(m, 20, 4, make_generator(1))
    assert locs.neg_ok[0].sum() == 2 and locs.pos_ok[0].sum() == 14
    assert set(locs.neg_idx[0, locs.neg_ok[0]].tolist()) == {0, 4}
    pos = locs.pos_idx[0, locs.pos_ok[0]].tolist()
    assert len(set(pos)) == 14 and locs.neg_ok[0, :2].all()  # filled slots come first


def test_sampling_is_uniform_over_the_region():
    m = torch.zeros(4000, 1, 8, 8)
    m[..., 0:4, 0:8] = 1  # 4 fg cells of the 2x2 map: 0 and 1
    neg, *_ = sample_locations(m, 1, 4, make_generator(2))
    counts = torch.bincount(neg[:, 0], minlength=4)
    assert counts[2:].sum() == 0
    assert abs(counts[0].item() - 2000) < 4 * math.sqrt(1000)  # binomial sd ~ 32


def test_degenerate_masks_validity():
    h = w = 16
    empty, full, pixel = torch.zeros(1, 1, h, w), torch.ones(1, 1, h, w), torch.zeros(1, 1, h, w)
    pixel[..., 9, 6] = 1
    m = torch.cat([empty, full, pixel])
    neg, pos, valid, _, _ = sample_locations(m, 8, 4, make_generator(3))
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
    return img[:, rows][:, :, cols].reshape(img.shape[0], -1)  # (C, P*P)


def _naive_feature(img, weight, y, x, patch, scale, source, feature):
    """One patch's MLP input: masked pixels, or weighted per-channel (mean, std)."""
    p = _naive_patch(img, y, x, patch, scale, source)
    w = (
        np.ones(patch * patch)
        if weight is None
        else _naive_patch(weight, y, x, patch, scale, source)[0]
    )
    if feature == "pixels":
        return (p * w).reshape(-1)
    n = w.sum() + 1e-5
    mu = (p * w).sum(axis=1) / n
    var = (w * (p - mu[:, None]) ** 2).sum(axis=1) / n
    return np.concatenate([mu, np.sqrt(var + 1e-5)])


def _naive_loss(images, m, locs, mlp, patch, scale, tau, reading, source, region_mask):
    """Eqs. 10–11 one patch at a time, in float64 NumPy (MLP weights copied out), from the
    reading's definition: query, positive, negatives and anchor patch sets."""
    spec = READINGS[reading]
    w1, b1 = mlp.net[0].weight.detach().double().numpy(), mlp.net[0].bias.detach().double().numpy()
    w2, b2 = mlp.net[2].weight.detach().double().numpy(), mlp.net[2].bias.detach().double().numpy()

    def emb(v):
        z = w2 @ np.maximum(w1 @ v + b1, 0) + b2
        return z / np.linalg.norm(z)

    neg, pos, valid, neg_ok, pos_ok = (t.numpy() for t in locs)
    b, _, h, w = m.shape
    ws = w // scale
    total = 0.0
    for i in range(b):
        fg_slots = [kk for kk in range(neg.shape[1]) if neg_ok[i, kk]]
        bg_slots = [kk for kk in range(pos.shape[1]) if pos_ok[i, kk]]
        slots = {"fg": (neg[i], fg_slots, m[i]), "bg": (pos[i], bg_slots, 1 - m[i])}

        def vec(pset, kk, i=i, slots=slots):
            src, reg = pset
            idx, _, weight = slots[reg]
            y, x = divmod(int(idx[kk]), ws)
            wt = weight if region_mask else None
            return emb(_naive_feature(images[src][i], wt, y, x, patch, scale, source, spec.feature))

        pairs = [
            kk
            for kk in slots[spec.query[1]][1]
            if kk in slots[spec.positive[1]][1]
            and (spec.anchor is None or kk in slots[spec.anchor[1]][1])
        ]
        if not valid[i] or not pairs:
            continue
        acc = 0.0
        for kk in pairs:
            q = vec(spec.query, kk)
            a = q if spec.anchor is None else vec(spec.anchor, kk)
            s_pos = math.exp(a @ vec(spec.positive, kk) / tau)
            s_neg = sum(
                math.exp(q @ vec(spec.negative, j) / tau)
                for j in slots[spec.negative[1]][1]
                if not (spec.exclude_self and j == kk)
            )
            acc += -math.log(s_pos / (s_pos + s_neg))
        total += acc / len(pairs)
    return total / b


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize(
    "source,region_mask,sampling",
    [("image", True, "capped"), ("map", False, "capped"), ("image", False, "replacement")],
)
def test_loss_equals_naive_loop(reading, source, region_mask, sampling):
    torch.manual_seed(0)
    b, h, w, k, patch, scale, tau = 4, 32, 40, 6, 4 if source == "map" else 8, 4, 0.07
    g = torch.Generator().manual_seed(5)
    pred, target, comp = (torch.rand(b, 3, h, w, generator=g) for _ in range(3))
    m = _mask(b, h, w)  # image 2 has an empty mask: invalid
    m[3, :, 0:8, 0:8] = 1  # image 3: 4 foreground cells < K = 6
    locs = sample_locations(m, k, scale, make_generator(6), sampling)
    assert locs.valid.tolist() == [True, True, False, True]
    assert locs.neg_ok[3].sum().item() == (4 if sampling == "capped" else k)
    spec = READINGS[reading]
    mlp = PatchEmbedder(spec.in_dim(patch), 32, 16)
    loss, skipped = region_contrastive_loss(
        pred, target, m, mlp, comp, k=k, patch=patch, scale=scale, tau=tau, reading=reading,
        patch_source=source, region_mask=region_mask, locations=locs,
    )  # fmt: skip
    images = {
        n: t.double().numpy() for n, t in (("pred", pred), ("target", target), ("composite", comp))
    }
    ref = _naive_loss(
        images, m.double().numpy(), locs, mlp, patch, scale, tau, reading, source, region_mask
    )
    assert skipped.item() == 1
    assert loss.item() == pytest.approx(ref, rel=1e-5)


def test_legacy_negatives_switch_selects_readings():
    g = torch.Generator().manual_seed(9)
    pred, target, comp = (torch.rand(2, 3, 32, 40, generator=g) for _ in range(3))
    m = _mask(2, 32, 40)
    mlp = PatchEmbedder(3 * 64, 16, 8)
    for neg, reading in (("pred", "pred_negatives"), ("composite", "composite_negatives")):
        a = region_contrastive_loss(pred, target, m, mlp, comp, k=8, negatives=neg,
                                    generator=make_generator(1))[0]  # fmt: skip
        b = region_contrastive_loss(pred, target, m, mlp, comp, k=8, reading=reading,
                                    generator=make_generator(1))[0]  # fmt: skip
        assert torch.equal(a, b)
    assert LossConfig(negatives="composite").reading_name == "composite_negatives"
    assert LossConfig(negatives="composite", reading="style").reading_name == "style"


def test_capped_first_slots_do_not_depend_on_k():
    m = _mask(2, 32, 40)
    a = sample_locations(m, 4, 4, make_generator(3))
    b = sample_locations(m, 12, 4, make_generator(3))
    assert torch.equal(a.neg_idx, b.neg_idx[:, :4]) and torch.equal(a.pos_idx, b.pos_idx[:, :4])
    assert a.neg_ok.all() and a.pos_ok.all()


def test_k_sweep_has_no_duplicate_floor():
    """A region with r = 2 cells and K = 64 slots: with replacement every query has ~31
    copies of itself among its negatives (similarity 1 ≥ the positive's), so each term is
    ≥ log(1 + copies) whatever the embedder: a floor of about log(K/r). Capped sampling
    uses the r distinct cells: the loss is the same for every K ≥ r and stays below it."""
    torch.manual_seed(0)
    h = w = 32
    m = torch.zeros(1, 1, h, w)
    m[..., 0:4, 0:8] = 1  # 2 foreground cells of the 8x8 map
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
    mlp = PatchEmbedder(3 * 64, 16, 8)
    kw = {"tau": 1.0, "reading": "pred_negatives"}
    capped = [
        region_contrastive_loss(pred, target, m, mlp, k=k, generator=make_generator(4), **kw)[0]
        for k in (2, 8, 64)
    ]
    assert torch.allclose(capped[0], capped[1]) and torch.allclose(capped[0], capped[2])
    locs = sample_locations(m, 64, 4, make_generator(4), "replacement")
    old = region_contrastive_loss(pred, target, m, mlp, k=64, locations=locs, **kw)[0]
    idx = locs.neg_idx[0].tolist()
    floor = np.mean([math.log(1 + idx.count(c) - 1) for c in idx])
    assert floor > math.log(64 / 2) - 0.5  # the floor grows with K/r
    assert old.item() >= floor - 1e-6
    # capped: one negative of similarity ≤ 1 at tau = 1 -> each term ≤ log(1 + e^2)
    assert capped[0].item() <= math.log(1 + math.e**2) < floor


def test_region_mask_zeroes_out_of_region_pixels():
    img = torch.rand(1, 3, 16, 16)
    m = torch.zeros(1, 1, 16, 16)
    m[..., :, :8] = 1
    idx = torch.tensor([[5]])  # cell (1, 1): image rows/cols 2..9 straddle column 8
    f = patch_features(img, m, idx, 8, 4, "image", "pixels").view(3, 8, 8)
    assert (f[:, :, 6:] == 0).all() and torch.equal(f[:, :, :6], img[0, :, 2:10, 2:8])
    s = patch_features(img, m, idx, 8, 4, "image", "style")[0, 0]
    assert torch.allclose(s[:3], img[0, :, 2:10, 2:8].mean(dim=(1, 2)), atol=1e-5)


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
        # one foreground cell: with the output's own patches as negatives (and no
        # duplicates) a query has no negative left, so its term is exactly 0
        assert loss.item() == 0.0
        comp = torch.rand(2, 3, h, w)
        other = region_contrastive_loss(
            pred, torch.rand(2, 3, h, w), m, mlp, comp, k=k, reading="composite_negatives"
        )[0]
        assert other.item() > 0


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
    locs = sample_locations(m, k, 4, make_generator(8))
    for reading, spec in READINGS.items():
        mlp = PatchEmbedder(spec.in_dim(patch), 8, 8).double()

        def f(p, c, reading=reading, mlp=mlp):
            return region_contrastive_loss(
                p, target, m, mlp, c, k=k, patch=patch, tau=0.5, reading=reading, locations=locs
            )[0]

        assert torch.autograd.gradcheck(f, (pred, comp), fast_mode=True)


def test_mlp_on_filled_slots_only_changes_nothing(monkeypatch):
    """Issue 11: the MLP runs on the filled slots (and slot 0) only. Embeddings of every
    slot, the loss and its gradients equal the all-slots computation (float64 to 1e-12),
    and the loss equals the naive float64 loop."""
    from rharm_lib.losses import contrastive

    torch.manual_seed(0)
    b, h, w, k, patch, scale, tau = 4, 32, 40, 12, 8, 4, 0.07
    g = torch.Generator().manual_seed(11)
    pred0, target, comp = (torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
                           for _ in range(3))  # fmt: skip
    m = _mask(b, h, w).double()  # image 2 invalid
    m[3, :, 0:8, 0:8] = 1  # 4 foreground cells < K: 8 unfilled slots
    locs = sample_locations(m, k, scale, make_generator(3))
    assert (~locs.neg_ok[3]).sum() == 8 and not locs.neg_ok[2].any()
    mlp = PatchEmbedder(3 * patch * patch, 32, 16).double()
    feats = patch_features(pred0, m, locs.neg_idx, patch, scale, "map")
    v_all = contrastive.embed(mlp, feats)
    v_new = contrastive.embed_filled(mlp, feats, locs.neg_ok)
    torch.testing.assert_close(v_new, v_all, rtol=1e-12, atol=1e-12)  # every slot, exactly
    assert contrastive.embed_filled(mlp, feats, torch.ones_like(locs.neg_ok)) is not None

    def run():
        mlp.zero_grad()
        pred = pred0.clone().requires_grad_(True)
        loss, _ = region_contrastive_loss(pred, target, m, mlp, comp, k=k, patch=patch,
                                          scale=scale, tau=tau, locations=locs)  # fmt: skip
        loss.backward()
        return [loss.detach(), pred.grad] + [p.grad.clone() for p in mlp.parameters()]

    new = run()
    monkeypatch.setattr(contrastive, "embed_filled", lambda mlp, f, ok: contrastive.embed(mlp, f))
    old = run()
    for a, c in zip(new, old, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    images = {n: t.numpy() for n, t in (("pred", pred0), ("target", target), ("composite", comp))}
    ref = _naive_loss(images, m.numpy(), locs, mlp, patch, scale, tau, "pred_negatives", "map",
                      True)  # fmt: skip
    assert new[0].item() == pytest.approx(ref, rel=1e-10)
