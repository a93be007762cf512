"""``rharm bench``: the reported figures are consistent with each other and with the model."""

import pytest

from rharm_lib.model import build_model, forward_flops
from rharm_lib.train.bench import PEAK_TFLOPS, bench_train, plain_variant
from rharm_lib.train.config import get_config


def test_plain_variant_removes_the_papers_additions():
    cfg = get_config("ci")
    p = plain_variant(cfg)
    assert p.model.fusion == "none" and not p.model.use_s2am and p.loss.w_hcl == 0
    assert p.model.widths == cfg.model.widths and p.batch_size == cfg.batch_size
    assert forward_flops(build_model(p.model), 64) < forward_flops(build_model(cfg.model), 64)


def test_bench_train_figures(monkeypatch):
    res = bench_train("ci", batch=2, device="cpu", steps=1, warmup=1, windows=2, size=32)
    for key in ("model", "plain"):
        r = res[key]
        assert r["img_per_s"] > 0 and r["batch"] == 2 and r["size"] == 32
        assert len(r["img_per_s_windows"]) == 2
        fwd = forward_flops(
            build_model(
                get_config("ci").model if key == "model" else plain_variant(get_config("ci")).model
            ),
            32,
        )
        assert r["fwd_gflops_per_img"] == pytest.approx(fwd / 1e9, rel=1e-3)
        assert r["achieved_tflops"] == pytest.approx(
            3 * fwd * r["img_per_s"] / 1e12, rel=1e-2, abs=1e-4
        )
        assert r["mfu"] == pytest.approx(r["achieved_tflops"] / PEAK_TFLOPS, rel=1e-2, abs=1e-5)
        assert r["epochs60_ihd_hours"] == pytest.approx(
            60 * 65742 / r["img_per_s"] / 3600, rel=1e-2
        )
    assert res["cost_ratio"] == pytest.approx(
        res["plain"]["img_per_s"] / res["model"]["img_per_s"], rel=1e-2
    )
    assert res["model"]["precision"] == "fp32"  # CPU "auto" = fp32
