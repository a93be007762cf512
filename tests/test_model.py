"""HarmonizationNet: configs, parameter counts, shapes at several sizes, the output rule
(residual + copied background), degenerate masks, features, bf16/channels_last, compile."""

import dataclasses
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rharm_lib.errors import RharmInputError
from rharm_lib.model import (
    CONFIGS,
    FUSIONS,
    ModelConfig,
    NoFusion,
    StyleFusion,
    build_model,
    count_params,
    forward_flops,
)

PAPER_PARAMS = 28.37e6


def _inputs(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    comp = torch.rand(b, 3, h, w, generator=g)
    mask = torch.zeros(b, 1, h, w)
    mask[..., h // 4 : h // 2 + 1, w // 3 : w // 2 + 1] = 1
    return comp, mask


def _randomize_head(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=g) * 0.1)
        net.head.bias.copy_(torch.randn(net.head.bias.shape, generator=g) * 0.1)
    return net


def test_paper_param_count_within_10_percent_of_paper():
    net = build_model(CONFIGS["paper"])
    n = count_params(net)
    assert n == 29_563_171
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.10
    assert all(w % 8 == 0 for w in net.cfg.widths)


def test_ci_config_is_small():
    n = count_params(build_model(CONFIGS["ci"]))
    assert 100_000 < n < 500_000


def test_plain_variant_has_no_fusion_nor_s2am():
    cfg = dataclasses.replace(CONFIGS["paper"], fusion="none", use_s2am=False)
    net = build_model(cfg)
    assert len(net.s2am) == 0
    assert all(isinstance(f, NoFusion) for f in net.fusion)
    full = build_model(CONFIGS["paper"])
    assert all(isinstance(f, StyleFusion) for f in full.fusion)
    assert count_params(full) - count_params(net) == 29_563_171 - 27_974_019


def test_fusion_registry_names():
    assert set(FUSIONS) == {"none", "adain", "rain", "sf", "sf_literal"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"widths": (8, 12, 16)},
        {"widths": (8, 16), "blocks": (1,)},
        {"norm": "layer"},
        {"fusion": "spade"},
        {"widths": (8, 16, 24), "blocks": (1, 1, 1), "s2am_levels": (2,)},
        {"output": "delta"},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(RharmInputError):
        ModelConfig(**kwargs)


def test_forward_flops_scale_with_area():
    net = build_model(CONFIGS["tiny"])
    f64, f128 = forward_flops(net, 64), forward_flops(net, 128)
    assert f64 > 1e7
    # convolutions scale with the area; only the attention MLPs on pooled 1x1 maps do not
    assert 3.99 < f128 / f64 <= 4.0


@pytest.mark.parametrize(
    "name,h,w",
    [("ci", 256, 256), ("ci", 512, 512), ("ci", 37, 61), ("ci", 5, 3), ("tiny", 1024, 1024)],
)
def test_output_shape_any_size(name, h, w):
    net = _randomize_head(build_model(CONFIGS[name]).eval())
    comp, mask = _inputs(1, h, w)
    with torch.no_grad():
        pred = net(comp, mask)
    assert pred.shape == comp.shape
    assert torch.isfinite(pred).all()
    assert not torch.equal(pred, comp)


def test_reflect_padding_and_non_square_batch():
    cfg = dataclasses.replace(CONFIGS["tiny"], pad_mode="reflect")
    net = _randomize_head(build_model(cfg).eval())
    for h, w in [(40, 24), (3, 70)]:
        comp, mask = _inputs(2, h, w)
        with torch.no_grad():
            assert net(comp, mask).shape == (2, 3, h, w)


def test_untrained_residual_net_returns_composite():
    net = build_model(CONFIGS["ci"]).eval()  # residual output, zero-initialised head
    comp, mask = _inputs(2, 48, 40)
    with torch.no_grad():
        assert torch.equal(net(comp, mask), comp)


@pytest.mark.parametrize("copy", [True, False])
def test_background_copied_from_composite(copy):
    cfg = dataclasses.replace(CONFIGS["tiny"], copy_background=copy)
    net = _randomize_head(build_model(cfg).eval())
    comp, mask = _inputs(2, 32, 48)
    with torch.no_grad():
        pred = net(comp, mask)
    bg = mask.expand_as(comp) == 0
    assert torch.equal(pred[bg], comp[bg]) == copy
    assert not torch.equal(pred[~bg], comp[~bg])  # the foreground is changed


def test_image_output_mode_does_not_add_composite():
    cfg = dataclasses.replace(CONFIGS["tiny"], output="image", copy_background=False)
    net = build_model(cfg).eval()
    comp, mask = _inputs(1, 32, 32)
    with torch.no_grad():
        a = net(comp, mask)
        net_res = build_model(dataclasses.replace(cfg, output="residual"))
        net_res.load_state_dict(net.state_dict())
        r = net_res.eval()(comp, mask)
    assert torch.allclose(r - comp, a, atol=1e-6)  # same weights: residual = composite + image head


def test_return_features_names_and_shapes():
    net = build_model(CONFIGS["ci"]).eval()
    comp, mask = _inputs(1, 60, 50)  # padded to 64 x 64
    with torch.no_grad():
        pred, feats = net(comp, mask, return_features=True)
    w = CONFIGS["ci"].widths
    for i in range(5):
        assert feats[f"enc{i}"].shape == (1, w[i], 64 >> i, 64 >> i)
    for i in range(4):
        assert feats[f"dec{i}"].shape == feats[f"dec{i}_pre"].shape == feats[f"enc{i}"].shape
    assert {f"att{i}" for i in CONFIGS["ci"].s2am_levels} <= set(feats)
    assert feats["mask_pad"].shape == (1, 1, 64, 64)
    assert not torch.equal(feats["dec1"], feats["dec1_pre"])  # SF changes the features


def test_bad_input_shapes_raise():
    net = build_model(CONFIGS["tiny"])
    with pytest.raises(RharmInputError, match="mask"):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 8))
    with pytest.raises(RharmInputError, match="composite"):
        net(torch.rand(1, 4, 16, 16), torch.rand(1, 1, 16, 16))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["empty", "full", "pixel"]),
    h=st.integers(8, 40),
    w=st.integers(8, 40),
    fusion=st.sampled_from(sorted(FUSIONS)),
    data=st.data(),
)
def test_degenerate_masks_finite_outputs_and_grads(kind, h, w, fusion, data):
    cfg = dataclasses.replace(CONFIGS["tiny"], fusion=fusion)
    torch.manual_seed(0)
    net = _randomize_head(build_model(cfg).train())
    comp = torch.rand(2, 3, h, w)
    mask = torch.zeros(2, 1, h, w) if kind != "full" else torch.ones(2, 1, h, w)
    if kind == "pixel":
        y, x = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
        mask[:, :, y, x] = 1
    pred = net(comp, mask)
    assert torch.isfinite(pred).all()
    pred.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_bf16_autocast_and_channels_last():
    torch.manual_seed(0)
    net = _randomize_head(build_model(CONFIGS["ci"]).eval())
    comp, mask = _inputs(2, 64, 48)
    with torch.no_grad():
        ref = net(comp, mask)
        net_cl = net.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net_cl(comp.to(memory_format=torch.channels_last), mask)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1  # bf16 has ~3 significant digits


@pytest.mark.slow
def test_torch_compile_smoke():
    """Dynamo captures the whole forward without graph breaks (``fullgraph``); the
    ``eager`` backend keeps it cheap on CPU (inductor's C++ build takes minutes here)."""
    net = _randomize_head(build_model(CONFIGS["tiny"]).eval())
    comp, mask = _inputs(1, 40, 24)
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(comp, mask), net(comp, mask))


def test_rharm_info_json(capsys):
    from rharm_lib.cli import main

    assert main(["info", "--config", "ci", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == count_params(build_model(CONFIGS["ci"]))
    assert info["gflops_256"] == pytest.approx(
        forward_flops(build_model(CONFIGS["ci"])) / 1e9, abs=1e-3
    )
    assert info["model"]["fusion"] == "sf" and sum(info["modules"].values()) == info["params"]
    assert main(["info", "--config", "nope"]) == 2
    assert "unknown config" in capsys.readouterr().err


def test_config_round_trips_through_dict():
    cfg = dataclasses.replace(CONFIGS["ci"], fusion="rain", s2am_levels=(0,))
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples become lists
    back = ModelConfig.from_dict(d)
    assert back == cfg and hash(back) == hash(cfg)
    with pytest.raises(RharmInputError, match="unknown"):
        ModelConfig.from_dict({**d, "depth": 4})
