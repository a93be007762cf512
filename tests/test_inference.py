"""Harmonizer and ``rharm harmonize``: any size, background copy, checkpoint round trip, errors."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from rharm_lib.checkpoint import save_checkpoint
from rharm_lib.cli import main as cli_main
from rharm_lib.errors import RharmInputError
from rharm_lib.inference import Harmonizer
from rharm_lib.model import CONFIGS, build_model
from rharm_lib.train.config import config_to_dict, get_config


def _net(seed=0):
    torch.manual_seed(seed)
    # an untrained residual net returns the composite; randomise the head so outputs differ
    cfg = dataclasses.replace(CONFIGS["tiny"], copy_background=False)
    net = build_model(cfg)
    for p in net.parameters():
        if p.ndim == 4 and p.shape[0] == 3:
            torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    comp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2 + 3, w // 5 : w // 2 + 7] = 1
    return comp, mask


@pytest.mark.parametrize("h, w", [(37, 53), (64, 64), (17, 100)])
def test_any_size_and_background_copy(h, w):
    net = _net()
    comp, mask = _image(h, w)
    out = Harmonizer(net)(comp, mask)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], comp[mask == 0])
    assert not np.array_equal(out[mask == 1], comp[mask == 1])
    # the uint8 result is the float network output, rounded (independent re-computation)
    with torch.no_grad():
        x = torch.from_numpy(comp).permute(2, 0, 1)[None].float() / 255
        ref = net(x, torch.from_numpy(mask)[None, None].float())[0].clamp(0, 1)
    ref = (ref.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.abs(out[mask == 1].astype(int) - ref[mask == 1].astype(int)).max() <= 1
    raw = Harmonizer(net, keep_background=False)(comp, mask)
    assert not np.array_equal(raw[mask == 0], comp[mask == 0])


def test_bf16_inference_close_to_fp32():
    net = _net()
    comp, mask = _image(48, 40)
    a = Harmonizer(net, precision="fp32")(comp, mask).astype(int)
    b = Harmonizer(net, precision="bf16")(comp, mask).astype(int)
    assert np.abs(a - b).max() <= 8 and np.abs(a - b).mean() < 1.5


def test_bad_inputs():
    h = Harmonizer(_net())
    comp, mask = _image(20, 30)
    with pytest.raises(RharmInputError, match=r"expected mask \(H,W\)"):
        h(comp, mask[:10])
    with pytest.raises(RharmInputError, match="uint8"):
        h(comp.astype(np.float32), mask)


def _checkpoint(tmp_path, net):
    cfg = get_config("ci", model=net.cfg)
    p = tmp_path / "last.pt"
    save_checkpoint(p, {"train_config": config_to_dict(cfg), "step": 5, "model": net.state_dict()})
    return p


def test_from_checkpoint_and_cli(tmp_path):
    net = _net()
    ck = _checkpoint(tmp_path, net)
    h = Harmonizer.from_checkpoint(ck)
    assert h.meta["step"] == 5
    comp, mask = _image(45, 70, seed=3)
    expected = Harmonizer(net)(comp, mask)
    assert np.array_equal(h(comp, mask), expected)
    Image.fromarray(comp).save(tmp_path / "c.png")
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    out = tmp_path / "sub" / "out.png"
    rc = cli_main(["harmonize", str(tmp_path / "c.png"), str(tmp_path / "m.png"), "-o", str(out),
                   "--checkpoint", str(ck), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png"]  # no temp file left


def test_cli_errors(tmp_path, capsys):
    comp, mask = _image(20, 30)
    Image.fromarray(comp).save(tmp_path / "c.png")
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    args = [
        "harmonize",
        str(tmp_path / "c.png"),
        str(tmp_path / "m.png"),
        "-o",
        str(tmp_path / "o.png"),
    ]
    assert cli_main(args + ["--checkpoint", str(bad)]) == 2
    assert "not a readable rharm checkpoint" in capsys.readouterr().err
    ck = _checkpoint(tmp_path, _net())
    assert cli_main(args + ["--checkpoint", str(ck), "--config", "paper"]) == 2
    assert "not 'paper'" in capsys.readouterr().err
    args[2] = str(tmp_path / "small.png")
    assert cli_main(args + ["--checkpoint", str(ck)]) == 2
    assert "mask" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
