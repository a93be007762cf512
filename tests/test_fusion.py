"""Fusion layers against a float64 NumPy re-computation of eqs. 4–7; masked statistics,
the mask-resizing rule, S²AM's branch mixing, gradcheck."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rharm_lib.model import (
    FUSIONS,
    S2AM,
    AdaINFusion,
    RAINFusion,
    StyleFusion,
    blur_mask,
    build_fusion,
    masked_mean_std,
    resize_mask,
)
from rharm_lib.model.resunet import make_norm

EPS = 1e-5


def _np_stats(x, w):
    """Weighted channel mean/std of one image: x (C,h,w), w (h,w), float64 loops."""
    area = w.sum()
    mu = np.array([(x[c] * w).sum() / (area + EPS) for c in range(x.shape[0])])
    var = np.array([(((x[c] - mu[c]) ** 2) * w).sum() / (area + EPS) for c in range(x.shape[0])])
    return mu[:, None, None], np.sqrt(var + EPS)[:, None, None]


def _np_fusion(kind, dec, enc, m, gfg, bfg, gbg, bbg):
    """Reference for one image: dec, enc (C,h,w), m (h,w) soft, params (C,)."""
    out = np.empty_like(dec)
    if (1 - m).sum() == 0:
        return dec.copy()
    mu_fg, sd_fg = _np_stats(dec, m)
    mu_bg, sd_bg = _np_stats(dec, 1 - m)
    if kind == "adain":
        fg = (dec - mu_fg) / sd_fg * sd_bg + mu_bg
        return m * fg + (1 - m) * dec
    ref_mu, ref_sd = _np_stats(enc, 1 - m) if kind in ("sf", "sf_literal") else (mu_bg, sd_bg)
    if kind == "sf_literal":
        f_fg = (dec - ref_mu) / ref_sd  # eq. 4 as printed
    else:
        f_fg = (dec - mu_fg) / sd_fg * ref_sd + ref_mu  # eq. 4, AdaIN form
    f_bg = (dec - mu_bg) / sd_bg  # eq. 5
    c = (slice(None), None, None)
    psi_fg = f_fg * (1 + gfg[c]) + bfg[c]  # eq. 6
    psi_bg = f_bg * (1 + gbg[c]) + bbg[c]  # eq. 7
    out = m * psi_fg + (1 - m) * psi_bg
    return out


def _random_params(layer, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


@pytest.mark.parametrize("kind", ["sf", "sf_literal", "rain", "adain"])
@pytest.mark.parametrize("mask_kind", ["soft", "binary", "empty", "full"])
def test_fusion_matches_float64_recomputation(kind, mask_kind):
    g = torch.Generator().manual_seed(1)
    b, c, h, w = 2, 5, 7, 9
    dec = torch.randn(b, c, h, w, generator=g) * 2 + 0.5
    enc = torch.randn(b, c, h, w, generator=g) * 3 - 1
    if mask_kind == "soft":
        m = resize_mask((torch.rand(b, 1, 4 * h, 4 * w, generator=g) > 0.6).float(), (h, w))
    elif mask_kind == "binary":
        m = (torch.rand(b, 1, h, w, generator=g) > 0.5).float()
    else:
        m = torch.full((b, 1, h, w), 1.0 if mask_kind == "full" else 0.0)
    layer = build_fusion(kind, c, EPS)
    _random_params(layer, 2)
    out = layer(dec, enc, m).detach().double().numpy()
    zeros = np.zeros(c)
    params = (
        [
            p.detach().double().numpy()
            for p in (layer.gamma_fg, layer.beta_fg, layer.gamma_bg, layer.beta_bg)
        ]
        if kind != "adain"
        else [zeros] * 4
    )
    for i in range(b):
        ref = _np_fusion(
            kind,
            dec[i].double().numpy(),
            enc[i].double().numpy(),
            m[i, 0].double().numpy(),
            *params,
        )
        np.testing.assert_allclose(out[i], ref, rtol=1e-4, atol=1e-4)


def test_sf_uses_encoder_statistics_and_rain_does_not():
    g = torch.Generator().manual_seed(3)
    dec, enc = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    m = torch.zeros(1, 1, 8, 8)
    m[..., 2:5, 2:6] = 1
    sf, rain = StyleFusion(4), RAINFusion(4)
    assert not torch.allclose(sf(dec, enc, m), sf(dec, enc * 3 + 1, m))
    assert torch.equal(rain(dec, enc, m), rain(dec, enc * 3 + 1, m))
    # eq. 4: with psi = identity, the fused foreground has the encoder background's mean
    mu_e, _ = masked_mean_std(enc, 1 - m)
    mu_out, _ = masked_mean_std(sf(dec, enc, m), m)
    assert torch.allclose(mu_out, mu_e, atol=1e-4)


def test_literal_eq4_standardises_with_encoder_statistics():
    """sf_literal: with ψ = identity the fused foreground is (D − μ_E^bg)/σ_E^bg, so it
    moves with the encoder's statistics, and differs from the AdaIN form."""
    g = torch.Generator().manual_seed(4)
    dec, enc = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g) * 2
    m = torch.zeros(1, 1, 8, 8)
    m[..., 2:5, 2:6] = 1
    lit = build_fusion("sf_literal", 4)
    out = lit(dec, enc, m)
    mu_e, sd_e = masked_mean_std(enc, 1 - m)
    torch.testing.assert_close(out * m, (dec - mu_e) / sd_e * m)
    assert not torch.allclose(out * m, StyleFusion(4)(dec, enc, m) * m)
    torch.testing.assert_close(out * (1 - m), StyleFusion(4)(dec, enc, m) * (1 - m))


def test_none_is_identity_and_registry_classes():
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(FUSIONS["none"](8)(x, x * 2, torch.ones(1, 1, 4, 4)), x)
    assert FUSIONS["adain"] is AdaINFusion and FUSIONS["sf"] is StyleFusion
    assert sum(p.numel() for p in FUSIONS["sf"](8).parameters()) == 4 * 8


def test_masked_mean_std_matches_numpy_weighted():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 5, 7, generator=g, dtype=torch.float64)
    w = torch.rand(3, 1, 5, 7, generator=g, dtype=torch.float64)
    mu, sd = masked_mean_std(x, w, EPS)
    for i in range(3):
        rmu, rsd = _np_stats(x[i].numpy(), w[i, 0].numpy())
        np.testing.assert_allclose(mu[i].numpy(), rmu, rtol=1e-12)
        np.testing.assert_allclose(sd[i].numpy(), rsd, rtol=1e-12)
    mu0, sd0 = masked_mean_std(x, torch.zeros_like(w), EPS)  # empty region: finite
    assert torch.all(mu0 == 0) and torch.allclose(sd0, torch.full_like(sd0, EPS**0.5))


def test_resize_mask_is_area_fraction():
    m = torch.zeros(1, 1, 16, 16)
    m[0, 0, 5, 9] = 1  # one pixel
    for s in (2, 4, 8, 16):
        r = resize_mask(m, (16 // s, 16 // s))
        assert torch.allclose(r, F.avg_pool2d(m, s))
        assert r.max() == pytest.approx(1 / s**2) and r.sum() == pytest.approx(1 / s**2)
    odd = resize_mask((torch.rand(1, 1, 13, 11) > 0.5).float(), (3, 5))
    assert odd.shape == (1, 1, 3, 5) and odd.min() >= 0 and odd.max() <= 1
    assert resize_mask(m, (16, 16)) is m


def test_blur_mask_keeps_constants_and_complement():
    m = torch.zeros(1, 1, 9, 9)
    m[..., 3:6, 2:7] = 1
    assert torch.allclose(blur_mask(torch.ones(1, 1, 3, 2)), torch.ones(1, 1, 3, 2))
    assert torch.allclose(blur_mask(1 - m), 1 - blur_mask(m), atol=1e-6)
    assert blur_mask(m).shape == m.shape and 0 < blur_mask(m)[0, 0, 3, 1] < 1


def test_s2am_branch_mixing():
    torch.manual_seed(0)
    att = S2AM(8, make_norm("batch")).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        bg_only = att(x, torch.zeros(2, 1, 12, 12))
        fg_only = att(x, torch.ones(2, 1, 12, 12))
        assert torch.allclose(bg_only, att.att_bg(x), atol=1e-6)
        assert torch.allclose(fg_only, att.learn(att.att_fg(x)) + att.att_mix(x), atol=1e-6)


@pytest.mark.parametrize("kind", ["sf", "sf_literal", "rain", "adain"])
def test_fusion_gradcheck_double(kind):
    g = torch.Generator().manual_seed(5)
    dec = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    enc = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64)
    layer = build_fusion(kind, 3).double()
    _random_params(layer, 6)
    params = tuple(layer.parameters())

    assert torch.autograd.gradcheck(lambda d, e: layer(d, e, m), (dec, enc), fast_mode=True)
    if params:  # gradient w.r.t. gamma/beta through a functional call
        from torch.func import functional_call

        names = [n for n, _ in layer.named_parameters()]
        ps = tuple(p.detach().clone().requires_grad_(True) for p in params)
        assert torch.autograd.gradcheck(
            lambda *v: functional_call(layer, dict(zip(names, v, strict=True)), (dec, enc, m)),
            ps,
            fast_mode=True,
        )


def _literal_fusion(layer, kind, dec, enc, m):
    """Eqs. 4–7 transcribed step by step in torch (the pre-issue-11 chain of full-size
    operations), differentiable: the reference of the folded per-channel form."""

    def stats(x, w):
        area = w.sum(dim=(2, 3), keepdim=True)
        mu = (x * w).sum(dim=(2, 3), keepdim=True) / (area + EPS)
        var = ((x - mu) ** 2 * w).sum(dim=(2, 3), keepdim=True) / (area + EPS)
        return mu, torch.sqrt(var + EPS)

    ref = enc if kind in ("sf", "sf_literal") else dec
    mu_ref, sd_ref = stats(ref, 1 - m)
    mu_fg, sd_fg = stats(dec, m)
    mu_bg, sd_bg = stats(dec, 1 - m)
    if kind == "sf_literal":
        f_fg = (dec - mu_ref) / sd_ref
    else:
        f_fg = (dec - mu_fg) / sd_fg * sd_ref + mu_ref
    f_bg = (dec - mu_bg) / sd_bg
    c = (None, slice(None), None, None)
    out = m * (f_fg * (1 + layer.gamma_fg[c]) + layer.beta_fg[c]) + (1 - m) * (
        f_bg * (1 + layer.gamma_bg[c]) + layer.beta_bg[c]
    )
    has_bg = (1 - m).sum(dim=(2, 3), keepdim=True) > 0
    return torch.where(has_bg, out, dec)


@pytest.mark.parametrize("kind", ["sf", "sf_literal", "rain"])
def test_folded_fusion_equals_the_literal_chain_with_gradients(kind):
    """The per-channel folding of eqs. 4–7 (issue 11) computes the same values and the same
    gradients as the literal chain: float64 to 1e-10, float32 to float rounding."""
    g = torch.Generator().manual_seed(7)
    b, c, h, w = 3, 6, 9, 11
    m = resize_mask((torch.rand(b, 1, 2 * h, 2 * w, generator=g) > 0.5).double(), (h, w))
    m[2] = 1.0  # an image without background: passed through
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        layer = build_fusion(kind, c).to(dtype)
        _random_params(layer, 8)
        dec0 = torch.randn(b, c, h, w, generator=g, dtype=dtype) * 2 + 0.5
        enc0 = torch.randn(b, c, h, w, generator=g, dtype=dtype) * 3 - 1
        upstream = torch.randn(b, c, h, w, generator=g, dtype=dtype)
        grads = []
        for fn in (lambda d, e: layer(d, e, m.to(dtype)),
                   lambda d, e: _literal_fusion(layer, kind, d, e, m.to(dtype))):  # fmt: skip
            layer.zero_grad()
            dec, enc = dec0.clone().requires_grad_(True), enc0.clone().requires_grad_(True)
            out = fn(dec, enc)
            (out * upstream).sum().backward()
            grads.append([out.detach(), dec.grad, enc.grad]
                         + [p.grad.clone() for p in layer.parameters()])  # fmt: skip
        for new, old in zip(*grads, strict=True):
            torch.testing.assert_close(new, old, rtol=tol, atol=tol)
        assert torch.equal(grads[0][0][2], dec0[2])  # full mask: D unchanged


def test_s2am_equals_the_literal_branch_sum_with_gradients():
    """S²AM pools once and folds its recombination (issue 11); the literal
    ``A_bg(x)(1-m) + (L(A_fg(x)) + A_mix(x)) m`` with each attention
    ``x sigmoid(MLP(avg x) + MLP(max x))`` gives the same values and gradients."""

    def attention(a, x):
        avg, mx = x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(a.mlp(avg) + a.mlp(mx))

    def literal(s, x, mask):
        m = blur_mask(resize_mask(mask, tuple(x.shape[-2:])), s.blur_size, s.blur_sigma)
        bg, fg, mix = (attention(a, x) for a in (s.att_bg, s.att_fg, s.att_mix))
        return bg * (1 - m) + (s.learn(fg) + mix) * m

    g = torch.Generator().manual_seed(9)
    mask = (torch.rand(2, 1, 16, 20, generator=g) > 0.5).double()
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        torch.manual_seed(0)
        s2am = S2AM(16, make_norm("batch")).to(dtype)  # train mode: batch statistics
        x0 = torch.randn(2, 16, 8, 10, generator=g, dtype=dtype)
        upstream = torch.randn(2, 16, 8, 10, generator=g, dtype=dtype)
        grads = []
        for fn in (lambda x: s2am(x, mask.to(dtype)), lambda x: literal(s2am, x, mask.to(dtype))):
            s2am.zero_grad()
            x = x0.clone().requires_grad_(True)
            out = fn(x)
            (out * upstream).sum().backward()
            grads.append([out.detach(), x.grad] + [p.grad.clone() for p in s2am.parameters()])
        for new, old in zip(*grads, strict=True):
            torch.testing.assert_close(new, old, rtol=tol, atol=tol)
