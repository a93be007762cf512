"""Training engine: data pipeline, fast path, exact resume after SIGKILL, NaN stop, CLI."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rharm_lib.checkpoint import load_checkpoint
from rharm_lib.cli import main as cli_main
from rharm_lib.data.resolve import resolve_data as resolve_source
from rharm_lib.errors import RharmInputError
from rharm_lib.losses import LossConfig
from rharm_lib.model import CONFIGS
from rharm_lib.train import engine
from rharm_lib.train.bench import random_photos
from rharm_lib.train.config import get_config
from rharm_lib.train.sources import TensorSource

ROOT = Path(__file__).resolve().parent.parent
FAMS = ("transfer", "histogram", "retouch", "relight")


def write_lalonde_dir(
    root: Path, n_train: int = 16, n_test: int = 8, size: int = 40, seed: int = 0
) -> Path:
    """A tiny lalonde-layout folder (smooth random photos, rectangle masks)."""
    images, masks = random_photos(n_train + n_test, size, seed=seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ids = [f"img_{i:03d}" for i in range(n_train + n_test)]
    for i, name in enumerate(ids):
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(
            root / "images" / f"{name}.jpg", quality=95
        )
        Image.fromarray(masks[i, 0].numpy() * 255).save(root / "masks" / f"{name}.png")
    (root / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "test.txt").write_text("\n".join(ids[n_train:]) + "\n")
    return root


def tiny_cfg(**kw):
    base = dict(
        model=CONFIGS["tiny"],
        loss=LossConfig(k=16),
        photo_size=40,
        crop_size=32,
        batch_size=4,
        steps=12,
        log_every=2,
        ckpt_every=4,
        eval_every=0,
        deterministic=True,
    )
    base.update(kw)
    return get_config("ci", **base)


@pytest.fixture
def lalonde_dir(tmp_path):
    return write_lalonde_dir(tmp_path / "lal")


# ---------------------------------------------------------------- data pipeline


def _source(rank=0, world=1, n=12, **kw):
    images, masks = random_photos(n, 40, seed=1)
    args = dict(
        batch_size=3, crop_size=32, hflip=True, families=FAMS, seed=5, rank=rank, world=world
    )
    args.update(kw)
    return TensorSource(images, masks, None, **args), images, masks


def test_batch_is_a_crop_or_flipped_crop_of_its_photo():
    src, images, masks = _source()
    b = src.batch(3)
    tgt = (b["target"] * 255).round().to(torch.uint8)
    flips_seen = set()
    for j, i in enumerate(b["index"].tolist()):
        found = None
        for oy in range(9):
            for ox in range(9):
                crop = images[i, :, oy : oy + 32, ox : ox + 32]
                for flip in (False, True):
                    c = crop.flip(-1) if flip else crop
                    if torch.equal(c, tgt[j]):
                        found = (oy, ox, flip)
        assert found is not None, f"sample {j} is not a crop of photo {i}"
        oy, ox, flip = found
        m = masks[i, :, oy : oy + 32, ox : ox + 32]
        assert torch.equal((m.flip(-1) if flip else m).float(), b["mask"][j])
        flips_seen.add(flip)
    # the composite differs from the target only inside the mask
    outside = b["mask"].expand_as(b["target"]) == 0
    assert torch.equal(b["composite"][outside], b["target"][outside])
    assert (b["composite"] - b["target"]).abs().sum() > 0


def test_batches_are_a_function_of_step():
    a, _, _ = _source()
    b, _, _ = _source()
    for s in (0, 5, 2):
        x, y = a.batch(s), b.batch(s)
        assert all(torch.equal(x[k], y[k]) for k in ("composite", "mask", "target", "index"))
    assert not torch.equal(a.batch(0)["composite"], a.batch(1)["composite"])


def test_sharding_is_disjoint_and_epochs_cover_the_shard():
    r0, _, _ = _source(rank=0, world=2)
    r1, _, _ = _source(rank=1, world=2)
    assert r0.steps_per_epoch == r1.steps_per_epoch == 2
    e0 = torch.cat([r0.indices(s) for s in range(2)]).tolist()
    e1 = torch.cat([r1.indices(s) for s in range(2)]).tolist()
    assert len(set(e0)) == 6 and len(set(e1)) == 6  # no repeat within an epoch
    assert set(e0).isdisjoint(e1) and set(e0) | set(e1) == set(range(12))
    assert all(i % 2 == 0 for i in e0)


def test_source_errors():
    images, masks = random_photos(4, 40)
    with pytest.raises(RharmInputError, match="crop_size"):
        TensorSource(
            images, masks, None, batch_size=2, crop_size=48, hflip=True, families=FAMS, seed=0
        )
    with pytest.raises(RharmInputError, match="less than one batch"):
        TensorSource(
            images, masks, None, batch_size=8, crop_size=32, hflip=True, families=FAMS, seed=0
        )
    with pytest.raises(RharmInputError, match="masks"):
        TensorSource(
            images,
            masks[:, :, :10],
            None,
            batch_size=2,
            crop_size=32,
            hflip=True,
            families=FAMS,
            seed=0,
        )
    with pytest.raises(RharmInputError, match="--data"):
        resolve_source("/nonexistent/place")


# ---------------------------------------------------------------- fast path


def test_bf16_channels_last_path_matches_fp32_within_bf16_tolerance():
    """The GPU fast path (bf16 autocast + channels_last), run on the CPU, vs plain fp32."""
    cfg = get_config("ci", photo_size=40, crop_size=32)
    src, _, _ = _source(batch_size=4)
    b = src.batch(0)
    torch.manual_seed(0)
    net = engine.build_network(cfg.model)
    loss = engine.build_loss(LossConfig(k=16))
    # train a couple of steps so the residual head is not zero (a zero head hides errors)
    opt = torch.optim.AdamW(list(net.parameters()) + list(loss.parameters()), lr=1e-2)
    ref = engine.Objective(net, loss, None)
    for s in range(2):
        bb = src.batch(s + 1)
        out = ref(
            bb["composite"], bb["mask"], bb["target"], generator=torch.Generator().manual_seed(s)
        )
        opt.zero_grad()
        out["total"].backward()
        opt.step()

    def run(amp, cl):
        net.zero_grad(set_to_none=True)
        if cl:
            net.to(memory_format=torch.channels_last)
        c, m, t = (
            x.contiguous(memory_format=torch.channels_last) if cl else x
            for x in (b["composite"], b["mask"], b["target"])
        )
        out = engine.Objective(net, loss, amp)(c, m, t, generator=torch.Generator().manual_seed(7))
        out["total"].backward()
        g = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        net.to(memory_format=torch.contiguous_format)
        return {k: float(v.detach()) for k, v in out.items()}, g

    f32, g32 = run(None, False)
    bf, gbf = run(torch.bfloat16, True)
    for k in ("total", "l1", "pixel", "hcl"):
        assert abs(bf[k] - f32[k]) <= 0.03 * abs(f32[k]) + 1e-4, (k, bf[k], f32[k])
    cos = torch.nn.functional.cosine_similarity(g32, gbf, dim=0)
    assert cos > 0.98, float(cos)
    assert bf["total"] != f32["total"]  # the bf16 path really ran in bf16


# ---------------------------------------------------------------- engine


def test_train_writes_logs_checkpoint_and_refuses_occupied_dir(lalonde_dir, tmp_path):
    out = tmp_path / "run"
    s = engine.train(
        tiny_cfg(steps=4), lalonde_dir, out, device="cpu", progress=False, eval_data="none"
    )
    assert s.steps == 4 and s.steps_this_call == 4
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 4 and ck["provenance"]["data"] == str(lalonde_dir)
    assert set(ck["rng"]) >= {"torch", "numpy", "random"}
    assert {"git_commit", "versions", "device"} <= set(ck["provenance"])
    assert "exp_avg" in str(ck["optimizer"]["state"][0].keys())
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(np.isfinite(float(r["total"])) and float(r["img_per_s"]) > 0 for r in rows)
    with pytest.raises(RharmInputError, match="--resume"):
        engine.train(
            tiny_cfg(steps=4), lalonde_dir, out, device="cpu", progress=False, eval_data="none"
        )
    with pytest.raises(RharmInputError, match="another config"):
        engine.train(
            tiny_cfg(steps=8, lr=0.5),
            lalonde_dir,
            out,
            resume=True,
            device="cpu",
            progress=False,
            eval_data="none",
        )


def test_nan_loss_stops_and_keeps_last_good_checkpoint(lalonde_dir, tmp_path, monkeypatch):
    real = engine.build_loss

    class Poisoned(torch.nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.inner, self.calls = real(cfg), 0

        def forward(self, *a, **k):
            out = self.inner(*a, **k)
            self.calls += 1
            if self.calls == 7:  # step index 6
                out = {**out, "total": out["total"] * float("nan")}
            return out

    monkeypatch.setattr(engine, "build_loss", Poisoned)
    out = tmp_path / "run"
    with pytest.raises(
        engine.TrainingDivergedError, match=r"non-finite loss at step 7 .*last good checkpoint"
    ) as ei:
        engine.train(
            tiny_cfg(steps=12), lalonde_dir, out, device="cpu", progress=False, eval_data="none"
        )
    assert "step 4" in str(ei.value)
    # the message's step is the step number of train_log.csv: the 7th step's row shows it
    rows = (out / "train_log.csv").read_text().splitlines()
    last = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    assert last["total"] == "nan" and 7 <= int(last["step"]) <= 8
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 4
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    # the CLI turns it into a clear message and exit status 3
    monkeypatch.setattr(engine, "build_loss", Poisoned)
    rc = cli_main(["train", "--config", "ci", "--data", str(lalonde_dir), "--out", str(tmp_path / "cli"),
                   "--steps", "8", "--no-progress", "--eval-data", "none", "--device", "cpu",
                   "--log-every", "2", "--ckpt-every", "4"])  # fmt: skip
    assert rc == 3


_RUNNER = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    from rharm_lib.losses import LossConfig
    from rharm_lib.model import CONFIGS
    from rharm_lib.train import engine
    from rharm_lib.train.config import get_config

    data, out, slow = sys.argv[1], sys.argv[2], float(sys.argv[3])
    real = engine.build_loss
    if slow:
        class Slow(torch.nn.Module):
            def __init__(self, cfg):
                super().__init__()
                self.inner = real(cfg)
            def load_state_dict(self, *a, **k):
                return self.inner.load_state_dict(*a, **k)
            def state_dict(self, *a, **k):
                return self.inner.state_dict(*a, **k)
            def forward(self, *a, **k):
                time.sleep(slow)
                return self.inner(*a, **k)
        engine.build_loss = Slow
    cfg = get_config("ci", model=CONFIGS["tiny"], loss=LossConfig(k=16), photo_size=40, crop_size=32,
                     batch_size=4, steps=10, log_every=1, ckpt_every=2, deterministic=True)
    engine.train(cfg, data, out, resume=True, device="cpu", progress=False, eval_data="none")
    """
)


def _runner(lalonde_dir, out, slow):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _RUNNER, str(lalonde_dir), str(out), str(slow)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow  # three Python processes (~15 s on an idle 2-core machine)
def test_resume_after_sigkill_is_bit_exact(lalonde_dir, tmp_path):
    straight = _runner(lalonde_dir, tmp_path / "a", 0)
    killed = _runner(lalonde_dir, tmp_path / "b", 0.3)
    last = tmp_path / "b" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if last.exists() and load_checkpoint(last)["step"] >= 4:
            break
        assert killed.poll() is None, killed.stderr.read().decode()
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    step_at_kill = load_checkpoint(last)["step"]
    assert 4 <= step_at_kill < 10
    resumed = _runner(lalonde_dir, tmp_path / "b", 0)
    for p in (straight, resumed):
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(last)
    assert a["step"] == b["step"] == 10
    for part in ("model", "loss"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for i, st in a["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], b["optimizer"]["state"][i]["exp_avg_sq"])
    # the log has every step exactly once after the resume
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "b" / "train_log.csv"))]
    assert steps == list(range(1, 11))


def test_pairs_source_and_reuse_of_a_finished_run(tmp_path, monkeypatch):
    """An iHarmony4-layout root trains on its own composites; a finished run is reused."""
    from rharm_lib.data.benchmark import write_benchmark
    from rharm_lib.data.photos import load_photos

    lal = write_lalonde_dir(tmp_path / "lal", n_train=8, n_test=2)
    root = write_benchmark(
        load_photos(lal, "train", 40), tmp_path / "ihd", families=["relight", "retouch"]
    )
    for sub in ("Relight", "Retouch"):
        lst = root / sub / f"{sub}_test.txt"
        lst.with_name(f"{sub}_train.txt").write_text(lst.read_text())
    assert resolve_source(root).kind == "pairs"
    from rharm_lib.train.sources import load_train_source

    src = load_train_source(
        resolve_source(root), photo_size=40, device=torch.device("cpu"), batch_size=4, crop_size=32,
        hflip=False, families=(), seed=0,
    )  # fmt: skip
    assert len(src) == 16 and src.composites is not None
    b = src.batch(0)
    out = b["mask"].expand_as(b["target"]) == 0
    assert torch.equal(b["composite"][out], b["target"][out])
    assert (b["composite"] - b["target"]).abs().sum() > 0  # real composites, not re-synthesised

    cfg = tiny_cfg(steps=2)
    first = engine.train(
        cfg, root, tmp_path / "run", device="cpu", progress=False, eval_data="none"
    )
    assert not first.reused and (tmp_path / "run" / "summary.json").exists()
    again = engine.train(cfg, root, tmp_path / "run", reuse=True, device="cpu", eval_data="none")
    assert again.reused and again.steps == 2 and again.steps_this_call == 0
    with pytest.raises(RharmInputError, match="finished run of another config"):
        engine.train(
            tiny_cfg(steps=3), root, tmp_path / "run", reuse=True, device="cpu", eval_data="none"
        )


def write_dark_pairs(
    root: Path, n_train: int = 24, n_test: int = 8, size: int = 32, gain: float = 0.6
) -> Path:
    """An iHarmony4-layout root whose composites darken the foreground by ``gain``."""
    images, masks = random_photos(n_train + n_test, size, seed=3)
    sub = root / "Dark"
    for p in ("composite_images", "masks", "real_images"):
        (sub / p).mkdir(parents=True)
    names = []
    for i in range(n_train + n_test):
        t, m = images[i].permute(1, 2, 0).numpy(), masks[i, 0].numpy()
        c = np.where(m[..., None] > 0, np.round(t * gain), t).astype(np.uint8)
        Image.fromarray(t).save(sub / "real_images" / f"p{i}.png")
        Image.fromarray(m * 255).save(sub / "masks" / f"p{i}_1.png")
        Image.fromarray(c).save(sub / "composite_images" / f"p{i}_1_1.png")
        names.append(f"p{i}_1_1.png")
    (sub / "Dark_train.txt").write_text("\n".join(names[:n_train]) + "\n")
    (sub / "Dark_test.txt").write_text("\n".join(names[n_train:]) + "\n")
    return root


def test_short_cpu_training_lowers_held_out_fmse(tmp_path):
    """30 steps on pairs with a consistent foreground darkening: held-out fMSE drops well
    below the input composite's (the engine's data, loss, optimiser and evaluation wired
    together; the 600-step built-in run of the docs is the real CPU proof)."""
    root = write_dark_pairs(tmp_path / "ihd")
    cfg = tiny_cfg(steps=30, lr=5e-3, photo_size=32, crop_size=32, batch_size=8, log_every=10,
                   ckpt_every=30, eval_every=0, eval_size=32, deterministic=False)  # fmt: skip
    s = engine.train(cfg, root, tmp_path / "run", device="cpu", progress=False)
    assert s.baseline["n"] == s.final["n"] == 8  # the 8 held-out test pairs
    assert s.final["fmse"] < 0.5 * s.baseline["fmse"], (s.baseline, s.final)
    assert s.final["mse"] < s.baseline["mse"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "eval.csv")))
    assert [r["method"] for r in rows] == ["composite", "model"]


def test_cli_loss_switches_reach_the_run_config(tmp_path):
    """`rharm train --w-hcl/--hcl-negatives` set the LossConfig the run records."""
    import json

    from rharm_lib.cli import main

    out = tmp_path / "run"
    rc = main(
        [
            "train", "--config", "ci", "--data", "builtin", "--steps", "1",
            "--eval-data", "none", "--w-hcl", "0", "--hcl-negatives", "composite",
            "--no-progress", "--device", "cpu", "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    loss = json.loads((out / "config.json").read_text())["train_config"]["loss"]
    assert loss["w_hcl"] == 0 and loss["negatives"] == "composite"
    assert loss["w_l1"] == 0.4 and loss["w_pixel"] == 0.5  # untouched eq. 13 weights
