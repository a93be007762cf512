"""rharm_lib.diagnose and `rharm diagnose loss`: gradient alignment against an independent
closed form, pixel optimisation, the result's shape, the CLI (subprocess) and bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rharm_lib.diagnose import (
    DiagnoseConfig,
    diagnose_loss,
    diagnosis_batch,
    diagnosis_table,
    foreground_mse,
    gradient_alignment,
    optimise_pixels,
    plot_loss_diagnosis,
)
from rharm_lib.errors import RharmInputError
from rharm_lib.losses import READINGS, LossConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def batch():
    return diagnosis_batch("builtin", n=4, size=32, seed=0)


def test_batch_is_composites_of_the_photos(batch):
    composite, target, mask = batch
    assert composite.shape == target.shape == (4, 3, 32, 32) and mask.shape == (4, 1, 32, 32)
    assert torch.equal(composite * (1 - mask), target * (1 - mask))  # background untouched
    assert (composite * mask - target * mask).abs().sum() > 0


def test_gradient_alignment_matches_closed_form(batch):
    """With w_l1 = 0 the reconstruction gradient is w_pixel·sign(pred − target)/(3·area) on
    the foreground, so its cosine with target − pred is Σ|d| / (√n · ‖d‖) per image."""
    composite, target, mask = batch
    cfg = LossConfig(k=8, w_l1=0.0)
    g = gradient_alignment(composite, target, mask, cfg)
    d = ((target - composite) * mask).flatten(1)
    nz = (d != 0).sum(dim=1).double()
    ref = (d.abs().sum(dim=1).double() / (nz.sqrt() * d.double().norm(dim=1))).mean()
    assert g["cos_reconstruction"] == pytest.approx(float(ref), rel=1e-4)
    # the norm ratio is linear in w_hcl; the direction does not depend on it
    g2 = gradient_alignment(composite, target, mask, dataclasses.replace(cfg, w_hcl=0.2))
    assert g2["norm_ratio"] == pytest.approx(2 * g["norm_ratio"], rel=1e-5)
    assert g2["cos_hcl"] == pytest.approx(g["cos_hcl"], abs=1e-6)


def test_reconstruction_optimisation_reaches_the_target(batch):
    composite, target, mask = batch
    cfg = LossConfig(k=8)
    start = foreground_mse(composite, target, mask)
    pred = optimise_pixels(
        composite, target, mask, cfg, "reconstruction", steps=120, lr_pixels=0.02
    )
    assert torch.equal(pred * (1 - mask), composite * (1 - mask))
    assert start > 20 and foreground_mse(pred, target, mask) < 0.05 * start
    with pytest.raises(RharmInputError, match="objective"):
        optimise_pixels(composite, target, mask, cfg, "l2")


def test_diagnose_loss_reports_every_reading(batch):
    composite, target, mask = batch
    cfg = DiagnoseConfig(loss=LossConfig(k=8), steps=3)
    res = diagnose_loss(composite, target, mask, cfg)
    assert [r["reading"] for r in res["readings"]] == list(READINGS)
    for r in res["readings"]:
        assert all(math.isfinite(r[k]) for k in r if k != "reading")
        assert -1 <= r["cos_hcl"] <= 1 and r["norm_ratio"] > 0
    json.dumps(res)
    table = diagnosis_table(res)
    assert table.shape[0] == len(READINGS) + 2
    assert table.loc["composite (start)", "fmse_total"] == pytest.approx(
        foreground_mse(composite, target, mask)
    )
    fig = plot_loss_diagnosis(res)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == len(READINGS)
    with pytest.raises(RharmInputError, match="readings"):
        DiagnoseConfig(readings=("nope",))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "rharm_lib.cli", "diagnose", "loss", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_cli_json_and_bad_input():
    r = _cli("--photos", "builtin", "--n", "2", "--size", "24", "--steps", "2", "--k", "4",
             "--readings", "pred_negatives", "style", "--json", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [x["reading"] for x in res["readings"]] == ["pred_negatives", "style"]
    assert res["n"] == 2 and res["size"] == 24 and res["config"]["loss"]["k"] == 4


def test_cli_bad_input_exits_2(capsys):
    from rharm_lib.cli import main

    assert main(["diagnose", "loss", "--photos", "builtin", "--readings", "nope"]) == 2
    assert "readings" in capsys.readouterr().err
    assert main(["diagnose", "loss", "--photos", "builtin", "--n", "0"]) == 2
