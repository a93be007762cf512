"""L1, L_pixel and the total of eq. 13 (HarmonizationLoss): reference values, weights,
options, degenerate masks (hypothesis), bad input, autocast, gradcheck."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rharm_lib.errors import RharmInputError
from rharm_lib.losses import HarmonizationLoss, LossConfig, l1_loss, pixel_loss
from rharm_lib.seed import make_generator


def _batch(b=2, h=24, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred, target, comp = (torch.rand(b, 3, h, w, generator=g) for _ in range(3))
    mask = torch.zeros(b, 1, h, w)
    mask[0, :, 2:14, 3:11] = 1
    mask[1:, :, 10:, 5:] = 1
    return pred, target, mask, comp


def test_l1_and_pixel_match_numpy():
    pred, target, mask, _ = _batch()
    p, t, m = pred.double().numpy(), target.double().numpy(), mask.double().numpy()
    assert l1_loss(pred, target).item() == pytest.approx(np.abs(p - t).mean(), rel=1e-6)
    per = [np.abs(p[i] - t[i])[:, m[i, 0] > 0].mean() for i in range(len(p))]
    assert pixel_loss(pred, target, mask).item() == pytest.approx(np.mean(per), rel=1e-6)


def test_pixel_loss_empty_mask_is_zero_and_area_normalised():
    pred, target, _, _ = _batch()
    assert pixel_loss(pred, target, torch.zeros(2, 1, 24, 20)).item() == 0.0
    # a constant error of 0.3 on the foreground gives 0.3 whatever the area
    for area in (1, 40):
        m = torch.zeros(1, 1, 10, 10)
        m.view(-1)[:area] = 1
        assert pixel_loss(
            torch.full((1, 3, 10, 10), 0.3), torch.zeros(1, 3, 10, 10), m
        ).item() == pytest.approx(0.3)


def test_total_is_weighted_sum_and_keys():
    pred, target, mask, comp = _batch()
    cfg = LossConfig(k=16, negatives="pred")  # the pixel-patch reading (MLP input 3·8·8)
    loss = HarmonizationLoss(cfg)
    out = loss(pred, target, mask, comp, generator=make_generator(0))
    assert set(out) == {"total", "l1", "pixel", "hcl", "hcl_skipped"}
    expect = 0.4 * out["l1"] + 0.5 * out["pixel"] + 0.1 * out["hcl"]
    assert torch.allclose(out["total"], expect)
    assert out["hcl"] > 0 and out["hcl_skipped"].item() == 0
    assert {n for n, _ in loss.named_parameters()} == {
        "mlp.net.0.weight",
        "mlp.net.0.bias",
        "mlp.net.2.weight",
        "mlp.net.2.bias",
    }
    assert loss.mlp.net[0].in_features == 3 * 8 * 8
    # same generator seed: same sampling, same value
    again = loss(pred, target, mask, comp, generator=make_generator(0))
    assert torch.equal(out["total"], again["total"])


def test_options_change_the_loss():
    pred, target, mask, comp = _batch()
    torch.manual_seed(0)
    base = HarmonizationLoss(LossConfig(k=16, negatives="pred"))
    vals = {}
    for name, cfg in {
        "pred": base.cfg,
        "composite": dataclasses.replace(base.cfg, negatives="composite"),
        "map": dataclasses.replace(base.cfg, patch_source="map", patch=2),
    }.items():
        loss = HarmonizationLoss(cfg)
        if cfg.patch == base.cfg.patch:
            loss.load_state_dict(base.state_dict())
        vals[name] = loss(pred, target, mask, comp, generator=make_generator(1))["hcl"].item()
    assert len(set(vals.values())) == 3
    no_hcl = HarmonizationLoss(dataclasses.replace(base.cfg, w_hcl=0.0))
    out = no_hcl(pred, target, mask, comp)
    assert out["hcl"].item() == 0.0 and torch.allclose(
        out["total"], 0.4 * out["l1"] + 0.5 * out["pixel"]
    )


@pytest.mark.parametrize(
    "kwargs", [{"negatives": "target"}, {"patch_source": "grid"}, {"k": 0}, {"tau": 0.0}]
)
def test_bad_config_raises(kwargs):
    with pytest.raises(RharmInputError):
        LossConfig(**kwargs)


def test_bad_shapes_raise():
    pred, target, mask, comp = _batch()
    loss = HarmonizationLoss(LossConfig(k=4))
    with pytest.raises(RharmInputError, match="pred"):
        loss(pred[:, :, :20], target, mask, comp)
    with pytest.raises(RharmInputError, match="target"):
        loss(pred, target[:1], mask, comp)


def test_bf16_pred_under_autocast_gives_float32_loss():
    pred, target, mask, comp = _batch()
    loss = HarmonizationLoss(LossConfig(k=8))
    ref = loss(pred, target, mask, comp, generator=make_generator(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(pred.bfloat16(), target, mask, comp, generator=make_generator(2))
    assert out["total"].dtype == torch.float32
    assert out["total"].item() == pytest.approx(ref["total"].item(), rel=2e-2)


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(["empty", "full", "pixel"]),
    h=st.integers(4, 24),
    w=st.integers(4, 24),
    negatives=st.sampled_from(["pred", "composite"]),
    y=st.integers(0, 23),
    x=st.integers(0, 23),
)
def test_degenerate_masks_finite_losses_and_grads(kind, h, w, negatives, y, x):
    torch.manual_seed(0)
    pred, target, _, comp = _batch(2, h, w)
    pred.requires_grad_(True)
    mask = torch.ones(2, 1, h, w) if kind == "full" else torch.zeros(2, 1, h, w)
    if kind == "pixel":
        mask[:, :, y % h, x % w] = 1
    loss = HarmonizationLoss(LossConfig(k=8, negatives=negatives))
    out = loss(pred, target, mask, comp, generator=make_generator(0))
    out["total"].backward()
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.isfinite(pred.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in loss.parameters() if p.grad is not None)
    if kind != "pixel":
        assert out["hcl_skipped"].item() == 2 and out["hcl"].item() == 0.0


def test_total_gradcheck_double():
    pred, target, mask, comp = (t.double() for t in _batch(2, 8, 8))
    pred.requires_grad_(True)
    loss = HarmonizationLoss(LossConfig(k=3, patch=4, tau=0.5)).double()

    def f(p):
        return loss(p, target, mask, comp, generator=make_generator(3))["total"]

    assert torch.autograd.gradcheck(f, (pred,), fast_mode=True)


def test_hcl_trains_the_shared_mlp_and_reaches_pred():
    pred, target, mask, comp = _batch()
    pred.requires_grad_(True)
    loss = HarmonizationLoss(LossConfig(k=8, w_l1=0.0, w_pixel=0.0, w_hcl=1.0))
    loss(pred, target, mask, comp, generator=make_generator(4))["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())
    fg = mask.expand_as(pred) > 0
    assert pred.grad[fg].abs().sum() > 0  # queries come from the output's foreground
