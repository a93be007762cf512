"""Checkpoints: atomic writes, weights_only loading, RNG round trip, clear errors."""

import random

import numpy as np
import pytest
import torch

from rharm_lib import checkpoint as ck
from rharm_lib.errors import RharmInputError
from rharm_lib.inference import Harmonizer, load_network
from rharm_lib.model import CONFIGS, build_model
from rharm_lib.train.config import (
    config_diff,
    config_from_dict,
    config_to_dict,
    get_config,
)


def _tiny_cfg(**kw):
    return get_config("ci", model=CONFIGS["tiny"], **kw)


def _write_model_ckpt(path, cfg, net=None):
    net = net or build_model(cfg.model)
    ck.save_checkpoint(
        path,
        {
            "train_config": config_to_dict(cfg),
            "step": 3,
            "model": net.state_dict(),
            "rng": ck.capture_rng(),
        },
    )
    return net


def test_config_round_trip_through_dict_and_checkpoint(tmp_path):
    cfg = _tiny_cfg(families=("transfer", "relight"), betas=(0.8, 0.9))
    d = config_to_dict(cfg)
    assert config_from_dict(d) == cfg
    ck.save_checkpoint(tmp_path / "c.pt", {"train_config": d, "step": 0, "model": {}})
    loaded = ck.load_checkpoint(tmp_path / "c.pt")
    assert config_from_dict(loaded["train_config"]) == cfg
    diff = config_diff(cfg, get_config("ci"))
    assert "model.widths" in diff and "families" in diff and "betas" in diff
    assert "batch_size" not in diff and "lr" not in diff


def test_unknown_config_and_fields():
    with pytest.raises(RharmInputError, match="unknown training config"):
        get_config("nope")
    with pytest.raises(RharmInputError, match="unknown TrainConfig fields"):
        get_config("ci", bogus=1)
    with pytest.raises(RharmInputError, match="crop_size"):
        get_config("ci", crop_size=512)


def test_save_load_round_trip_weights_only(tmp_path):
    payload = {
        "train_config": {"a": 1},
        "step": 7,
        "model": {"w": torch.arange(5.0)},
        "x": [1, (2, 3)],
    }
    path = ck.save_checkpoint(tmp_path / "sub" / "last.pt", payload)
    # loadable by plain torch with weights_only=True (no code from the file runs)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ck.FORMAT and raw["step"] == 7
    got = ck.load_checkpoint(path)
    assert torch.equal(got["model"]["w"], torch.arange(5.0))
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, {"train_config": {}, "step": 1, "model": {}})
    real_save = torch.save

    def dying_save(obj, fh):
        real_save(obj, fh)
        fh.truncate(10)  # half-written
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError):
        ck.save_checkpoint(path, {"train_config": {}, "step": 2, "model": {}})
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a readable rharm checkpoint"),
        (b"hello, not a zip file at all", "not a readable rharm checkpoint"),
    ],
)
def test_garbage_files(tmp_path, content, match):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(RharmInputError, match=match) as ei:
        ck.load_checkpoint(p)
    assert str(p) in str(ei.value)


def test_truncated_checkpoint(tmp_path):
    p = tmp_path / "last.pt"
    _write_model_ckpt(p, _tiny_cfg())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(RharmInputError, match="not a readable rharm checkpoint"):
        ck.load_checkpoint(p)


def test_foreign_checkpoints(tmp_path):
    p = tmp_path / "state_dict.pth"
    torch.save(build_model(CONFIGS["tiny"]).state_dict(), p)
    with pytest.raises(RharmInputError, match="not an rharm checkpoint"):
        ck.load_checkpoint(p)
    with pytest.raises(RharmInputError, match="not an rharm checkpoint"):
        Harmonizer.from_checkpoint(p)
    # a pickle that needs code execution is refused by weights_only, not executed
    p2 = tmp_path / "code.pt"
    torch.save({"format": ck.FORMAT, "obj": np.random.RandomState(0)}, p2)
    with pytest.raises(RharmInputError, match="weights_only"):
        ck.load_checkpoint(p2)
    with pytest.raises(RharmInputError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "missing.pt")
    p3 = tmp_path / "partial.pt"
    torch.save({"format": ck.FORMAT, "step": 1}, p3)
    with pytest.raises(RharmInputError, match="incomplete"):
        ck.load_checkpoint(p3)


def test_checkpoint_of_another_config(tmp_path):
    p = tmp_path / "last.pt"
    _write_model_ckpt(p, _tiny_cfg())
    net, _ = load_network(p, expect_config="tiny")
    assert net.cfg == CONFIGS["tiny"]
    with pytest.raises(RharmInputError, match="not 'ci'"):
        load_network(p, expect_config="ci")
    # weights that do not fit the stored config (e.g. a file edited by hand)
    ckpt = ck.load_checkpoint(p)
    ckpt["train_config"] = config_to_dict(get_config("ci"))
    ck.save_checkpoint(p, {k: v for k, v in ckpt.items() if k not in ("format", "format_version")})
    with pytest.raises(RharmInputError, match="do not fit"):
        Harmonizer.from_checkpoint(p)


def test_rng_capture_restore():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = ck.capture_rng()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ck.restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
