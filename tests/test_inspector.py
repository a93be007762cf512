"""Headless tests of the patch inspector (rharm_lib.study.inspector): set a control, assert
on what the view shows, and check it samples exactly as L_HCL does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rharm_lib.errors import RharmInputError
from rharm_lib.losses.config import LossConfig
from rharm_lib.losses.contrastive import (
    PatchEmbedder,
    patch_boxes,
    region_contrastive_loss,
    sample_locations,
)
from rharm_lib.seed import make_generator
from rharm_lib.study.inspector import PatchInspector, compute_view

H = W = 48


def _sample(name, rng, mask_box=(8, 32, 12, 40)):
    target = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.uint8)
    y0, y1, x0, x1 = mask_box
    mask[y0:y1, x0:x1] = 1
    comp = target.copy()
    comp[mask > 0] = (comp[mask > 0] * 0.6).astype(np.uint8)
    return {"composite": comp, "mask": mask, "target": target, "name": name, "subset": "s"}


def _harmonize_counter():
    calls = []

    def h(comp, mask):
        calls.append(1)
        out = comp.astype(np.int16)
        out[mask > 0] += 20
        return np.clip(out, 0, 255).astype(np.uint8)

    return h, calls


def _t(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture
def setup(rng):
    samples = [
        _sample("a", rng),
        _sample("b", rng, (0, 16, 0, 16)),
        _sample("empty", rng, (0, 0, 0, 0)),
    ]
    cfg = LossConfig(k=8, patch=8, patch_source="image")  # boxes of P px, centred on cells
    torch.manual_seed(0)
    mlp = PatchEmbedder(3 * 8 * 8, cfg.mlp_hidden, cfg.mlp_out).eval()
    h, calls = _harmonize_counter()
    insp = PatchInspector(samples, h, mlp, cfg, k=8, max_k=64)
    return insp, samples, mlp, cfg, calls


def _expected_boxes(mask, k, seed, cfg, patch):
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    neg, pos, valid, *_ = sample_locations(m, k, cfg.sample_scale, make_generator(seed))
    ms = (H // cfg.sample_scale, W // cfg.sample_scale)
    return (
        patch_boxes(neg, ms, patch, cfg.sample_scale, cfg.patch_source)[0].numpy(),
        patch_boxes(pos, ms, patch, cfg.sample_scale, cfg.patch_source)[0].numpy(),
        bool(valid[0]),
    )


def _drawn(ax):
    return np.array(
        [
            [
                r.get_x() + 0.5,
                r.get_y() + 0.5,
                r.get_x() + 0.5 + r.get_width(),
                r.get_y() + 0.5 + r.get_height(),
            ]
            for r in ax.patches
        ]
    )


def test_initial_view_draws_k_boxes_where_l_hcl_samples(setup):
    insp, samples, _, cfg, _ = setup
    v = insp.view
    neg, pos, valid = _expected_boxes(samples[0]["mask"], 8, 0, cfg, 8)
    assert valid and v.valid
    np.testing.assert_array_equal(v.neg_boxes, neg)
    np.testing.assert_array_equal(v.pos_boxes, pos)
    assert len(insp.figure.axes[1].patches) == 8 and len(insp.figure.axes[2].patches) == 8
    np.testing.assert_allclose(_drawn(insp.figure.axes[1]), neg)
    np.testing.assert_allclose(_drawn(insp.figure.axes[2]), pos)
    # independent check: negatives' centres in the foreground, positives' in the background
    m = samples[0]["mask"]
    cy, cx = (
        (v.neg_boxes[:, 1] + v.neg_boxes[:, 3]) // 2,
        (v.neg_boxes[:, 0] + v.neg_boxes[:, 2]) // 2,
    )
    assert m[cy, cx].all()
    cy, cx = (
        (v.pos_boxes[:, 1] + v.pos_boxes[:, 3]) // 2,
        (v.pos_boxes[:, 0] + v.pos_boxes[:, 2]) // 2,
    )
    assert not m[cy, cx].any()
    assert insp.image_out.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trained embedder" in insp.status.value


def test_k_slider(setup):
    insp, samples, _, cfg, _ = setup
    before = insp.image_out.value
    insp.k.value = 5
    assert insp.view.k == 5 and insp.view.neg_boxes.shape == (5, 4)
    assert len(insp.figure.axes[1].patches) == 5 and len(insp.figure.axes[2].patches) == 5
    assert insp.view.sim_pos.shape == (5, 5) and insp.view.loss_k.shape == (5,)
    assert insp.image_out.value != before
    neg, pos, _ = _expected_boxes(samples[0]["mask"], 5, 0, cfg, 8)
    np.testing.assert_array_equal(insp.view.neg_boxes, neg)


def test_seed_slider_moves_the_samples(setup):
    insp, samples, _, cfg, _ = setup
    first = insp.view.neg_idx.copy()
    insp.seed.value = 7
    neg, pos, _ = _expected_boxes(samples[0]["mask"], 8, 7, cfg, 8)
    np.testing.assert_array_equal(insp.view.neg_boxes, neg)
    np.testing.assert_array_equal(insp.view.pos_boxes, pos)
    assert not np.array_equal(first, insp.view.neg_idx)


def test_patch_slider_resizes_boxes_and_uses_untrained_embedder(setup):
    insp, samples, _, cfg, _ = setup
    insp.patch.value = 4
    v = insp.view
    assert (v.neg_boxes[:, 2] - v.neg_boxes[:, 0] == 4).all() and (
        v.neg_boxes[:, 3] - v.neg_boxes[:, 1] == 4
    ).all()
    assert v.neg_patches.shape == (8, 4, 4, 3)
    assert "untrained embedder" in insp.status.value
    neg, _, _ = _expected_boxes(samples[0]["mask"], 8, 0, cfg, 4)
    np.testing.assert_array_equal(v.neg_boxes, neg)


def test_image_dropdown_and_cache(setup):
    insp, samples, _, cfg, calls = setup
    assert len(calls) == 1
    insp.image.value = 1
    assert insp.view.name == "b" and len(calls) == 2
    neg, pos, _ = _expected_boxes(samples[1]["mask"], 8, 0, cfg, 8)
    np.testing.assert_array_equal(insp.view.neg_boxes, neg)
    insp.image.value = 0
    insp.image.value = 1
    assert len(calls) == 2  # harmonized outputs are cached


def test_empty_mask_is_skipped_without_nan(setup):
    insp, *_ = setup
    insp.image.value = 2
    v = insp.view
    assert not v.valid and v.loss == 0.0 and np.isfinite(v.loss_k).all()
    assert len(insp.figure.axes[1].patches) == 0
    assert "skipped" in insp.status.value


@pytest.mark.parametrize(
    "cfg",
    [
        LossConfig(k=8, negatives="pred"),
        LossConfig(k=8, negatives="composite"),
        LossConfig(k=8, patch_source="map", negatives="pred"),
        LossConfig(k=8, reading="two_query"),
        LossConfig(k=8, reading="regularisation"),
    ],
)
def test_view_loss_equals_region_contrastive_loss(rng, cfg):
    """The shown eq. 11 terms average to L_HCL computed by the loss itself (same seed)."""
    s = _sample("a", rng)
    h, _ = _harmonize_counter()
    pred = h(s["composite"], s["mask"])
    torch.manual_seed(1)
    mlp = PatchEmbedder(3 * cfg.patch**2, cfg.mlp_hidden, cfg.mlp_out).eval()
    v = compute_view(s, pred, mlp, cfg, k=cfg.k, patch=cfg.patch, seed=5)
    m = torch.from_numpy(s["mask"].astype(np.float32))[None, None]
    with torch.no_grad():
        loss, skipped = region_contrastive_loss(
            _t(pred),
            _t(s["target"]),
            m,
            mlp,
            _t(s["composite"]),
            k=cfg.k,
            patch=cfg.patch,
            scale=cfg.sample_scale,
            tau=cfg.tau,
            reading=cfg.reading_name,
            patch_source=cfg.patch_source,
            generator=make_generator(5),
        )
    assert int(skipped) == 0
    assert v.loss == pytest.approx(float(loss), rel=1e-6, abs=1e-6)
    assert v.loss == pytest.approx(float(v.loss_k[v.neg_ok].mean()), rel=1e-6)
    # the positive similarity on the diagonal is query_k . positive_k
    assert np.all(np.abs(np.diag(v.sim_pos)) <= 1 + 1e-6)


def test_bad_input(rng):
    s = _sample("a", rng)
    with pytest.raises(RharmInputError, match="one size"):
        compute_view(s, s["composite"][:10], PatchEmbedder(192), LossConfig(), 4, 8, 0)
    with pytest.raises(RharmInputError, match="ground truth"):
        compute_view(
            dict(s, target=None), s["composite"], PatchEmbedder(192), LossConfig(), 4, 8, 0
        )
    with pytest.raises(RharmInputError, match="at least one"):
        PatchInspector([], None)


def test_no_model_uses_composite(rng):
    s = _sample("a", rng)
    insp = PatchInspector([s], None, None, dataclasses.replace(LossConfig(), k=4), k=4)
    np.testing.assert_array_equal(insp.view.harmonized, s["composite"])
    assert "no model" in insp.status.value and "untrained" in insp.status.value


def test_labels_colours_and_controls(setup):
    """Issue 12 item 4: family / name labels, distinct colours with a legend, plain
    labels, render on release, and the status giving the actual reason."""
    from rharm_lib.study import inspector as ins

    insp, samples, *_ = setup
    assert [o[0] for o in insp.image.options][:2] == ["s / a", "s / b"]
    assert insp.view.label == "s / a" and "s / a" in insp.figure.axes[0].get_title()
    assert len({ins.OUTLINE_COLOR, ins.NEG_COLOR, ins.POS_COLOR}) == 3
    assert "negative patches" in insp.caption.value and "L_HCL" in insp.caption.value
    assert [t.get_text() for t in insp.figure.legends[0].get_texts()] == [
        "mask outline", "negative patches", "positive patches",
    ]  # fmt: skip
    assert insp.k.description == "K, patches per region"
    assert insp.patch.description == "patch size (px)" and insp.seed.description == "sampling seed"
    assert not any(c.continuous_update for c in (insp.k, insp.patch, insp.seed))
    insp.patch.value = 4
    assert "patch size 4 px differs" in insp.status.value
    bare = PatchInspector(samples[:1], None, None, insp.cfg, k=4)
    assert "no checkpoint" in bare.status.value and "differs" not in bare.status.value


def test_style_reading_keeps_trained_embedder_for_any_patch(rng):
    """The style reading embeds 6 statistics: one trained MLP fits every patch size."""
    s = _sample("a", rng)
    cfg = LossConfig(k=8, reading="style")
    mlp = PatchEmbedder(6, cfg.mlp_hidden, cfg.mlp_out).eval()
    insp = PatchInspector([s], None, mlp, cfg, k=8)
    insp.patch.value = 4
    assert "trained embedder" in insp.status.value and insp.view.valid
