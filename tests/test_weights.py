"""The shipped weights (rharm_lib.weights): export, metadata, and the CLI defaults."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rharm_lib import weights
from rharm_lib.checkpoint import load_checkpoint, save_checkpoint
from rharm_lib.errors import RharmInputError
from rharm_lib.inference import Harmonizer
from rharm_lib.model import CONFIGS, build_model
from rharm_lib.train.config import config_to_dict, get_config

REPO = Path(__file__).resolve().parent.parent


def _train_like_checkpoint(path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(CONFIGS["tiny"])
    with torch.no_grad():  # non-zero head: the output must differ from the composite
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    cfg = get_config("ci", model=CONFIGS["tiny"])
    save_checkpoint(
        path,
        {
            "train_config": config_to_dict(cfg),
            "step": 7,
            "model": net.state_dict(),
            "optimizer": {"state": {}, "param_groups": []},
            "provenance": {"git_commit": "abc123"},
        },
    )
    return net


def test_export_keeps_weights_and_metrics_and_drops_the_optimiser(tmp_path):
    net = _train_like_checkpoint(tmp_path / "last.pt")
    out = weights.export_weights(
        tmp_path / "last.pt", tmp_path / "w.pt", {"mse": 12.5, "psnr": 37.0}, "bench v3"
    )
    ck = load_checkpoint(out)  # digest verified
    assert "optimizer" not in ck and ck["step"] == 7
    rec = weights.shipped_record(out)
    assert rec["metrics"] == {"mse": 12.5, "psnr": 37.0} and rec["benchmark"] == "bench v3"
    assert rec["source_checkpoint_commit"] == "abc123" and "not iHarmony4" in rec["trained_on"]
    h = Harmonizer.from_checkpoint(out)
    ref = Harmonizer(net)
    rng = np.random.default_rng(0)
    comp = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), np.uint8)
    mask[10:30, 12:40] = 1
    got = h(comp, mask)
    np.testing.assert_array_equal(got, ref(comp, mask))
    assert (got != comp).any()


def test_missing_shipped_file_is_a_clear_error(tmp_path):
    with pytest.raises(RharmInputError, match="rharm study --profile cpu --only 02"):
        weights.shipped_record(tmp_path / "nope.pt")


@pytest.mark.skipif(
    not weights.shipped_weights_path().is_file(), reason="shipped weights not produced yet"
)
def test_harmonize_without_checkpoint_uses_the_shipped_weights(tmp_path):
    rec = weights.shipped_record()
    assert set(rec["metrics"]) == {"mse", "psnr", "fmse", "ssim", "fssim"}
    assert weights.shipped_weights_path().stat().st_size <= 25e6
    rng = np.random.default_rng(1)
    comp = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    mask = np.zeros((61, 83), np.uint8)
    mask[20:50, 30:70] = 255
    Image.fromarray(comp).save(tmp_path / "c.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "rharm_lib.cli", "harmonize", str(tmp_path / "c.png"),
           str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png"), "--threads", "1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape == comp.shape
    np.testing.assert_array_equal(out[mask == 0], comp[mask == 0])
