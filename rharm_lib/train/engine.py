"""The training engine: :func:`train` (library) behind ``rharm train`` (CLI).

One loop serves a 2-core CI machine, one GPU and several GPUs (DDP under ``torchrun``):

- data: uint8 photos/pairs resident on the device, batches drawn by step number
  (:mod:`rharm_lib.train.sources`), composites synthesised on the device;
- step: network forward under bf16 autocast (``precision``), channels_last, optional
  ``torch.compile``; the eq. 13 loss in fp32; AdamW;
- the host synchronises with the device only every ``log_every`` steps (and at
  checkpoints and evaluations): losses are summed on the device, and a non-finite loss is
  remembered on the device and detected at the next synchronisation, before any
  checkpoint is written, so the last checkpoint on disk is always a finite one;
- logs: ``RUN/train_log.csv`` (losses, lr, img/s), ``RUN/eval.csv`` (paper metrics of
  the fixed test benchmark, with the input composite as the ``composite`` baseline),
  optional TensorBoard (``RUN/tb``), a tqdm bar on a terminal or plain lines otherwise;
- checkpoints: ``RUN/checkpoints/last.pt`` (atomic, see :mod:`.checkpoint`); when the run
  ends ``RUN/summary.json`` records the result;
- resume: ``resume=True`` continues from ``last.pt``; the data stream is a function of
  (seed, rank, step) and the optimiser, model, loss and RNG states are restored, so a
  deterministic CPU run that is killed and resumed ends with bit-identical weights.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..batch import COMPOSITE, MASK, TARGET
from ..checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from ..data.resolve import SourceSpec, resolve_data
from ..device import resolve_device
from ..errors import RharmInputError
from ..evaluate import evaluate, resolve_method
from ..inference import Harmonizer
from ..losses import HarmonizationLoss, LossConfig
from ..model import ModelConfig, build_model
from ..provenance import provenance, write_json_atomic
from ..seed import seed_everything
from . import ddp
from .config import TrainConfig, config_diff, config_from_dict, config_to_dict
from .sources import eval_dataset, load_train_source, step_seed

__all__ = [
    "train",
    "TrainSummary",
    "TrainingDivergedError",
    "Objective",
    "build_network",
    "build_loss",
    "amp_dtype",
    "uses_channels_last",
    "RESUMABLE_CHANGES",
]

#: TrainConfig fields that may change between a checkpoint and ``--resume``
RESUMABLE_CHANGES = frozenset(
    {"steps", "epochs", "log_every", "eval_every", "ckpt_every", "eval_max_images", "tensorboard"}
)
_LOG_FIELDS = [
    "step",
    "epoch",
    "lr",
    "total",
    "l1",
    "pixel",
    "hcl",
    "hcl_skipped",
    "img_per_s",
    "elapsed_s",
]
#: eval.csv columns: the "All" row of :func:`rharm_lib.evaluate.evaluate`'s summary
_EVAL_FIELDS = ["step", "method", "n", "mse", "psnr", "psnr_peak", "fmse", "ssim", "fssim"]


class TrainingDivergedError(RuntimeError):
    """The loss (or the weights) became NaN/Inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainSummary:
    """What a finished :func:`train` call produced.

    Attributes:
        run_dir: the run folder.
        checkpoint: ``run_dir/checkpoints/last.pt``.
        steps: optimiser steps done in total.
        steps_this_call: steps done by this call (0 when a finished run was reused).
        wall_s: seconds spent in this call's training loop.
        img_per_s: training images per second over this call (all processes).
        baseline: metrics of the input composites on the test benchmark (``composite``).
        final: metrics of the trained network on the same benchmark.
        reused: a finished run of the same config was found and returned.
    """

    run_dir: str
    checkpoint: str
    steps: int
    steps_this_call: int
    wall_s: float
    img_per_s: float
    baseline: dict[str, float]
    final: dict[str, float]
    reused: bool = False


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network's forward, or ``None`` for plain fp32."""
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def uses_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether tensors and weights use ``torch.channels_last`` (NHWC) memory format."""
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")


def build_network(model_cfg: ModelConfig) -> nn.Module:
    """The harmonization network of ``model_cfg`` (:func:`rharm_lib.model.build_model`)."""
    return build_model(model_cfg)


def build_loss(loss_cfg: LossConfig) -> nn.Module:
    """The eq. 13 loss module of ``loss_cfg`` (:class:`rharm_lib.losses.HarmonizationLoss`)."""
    return HarmonizationLoss(loss_cfg)


class Objective(nn.Module):
    """Network + loss as one module (what DDP wraps, so the HCL MLPs are synchronised too).

    Args:
        net: ``net(composite (B,3,H,W), mask (B,1,H,W)) -> pred (B,3,H,W)``.
        loss: ``loss(pred, target, mask, composite, generator=) -> dict`` (eq. 13).
        amp: autocast dtype for the network's forward (``None`` = fp32). The loss always
            sees fp32 ``pred`` (the contrastive softmax and the fMSE-style pixel term are
            where bf16 rounding would bite).
    """

    def __init__(self, net: nn.Module, loss: nn.Module, amp: torch.dtype | None = None) -> None:
        super().__init__()
        self.net, self.loss, self.amp = net, loss, amp

    def forward(
        self,
        composite: torch.Tensor,
        mask: torch.Tensor,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        with torch.autocast(
            composite.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None
        ):
            pred = self.net(composite, mask)
        return self.loss(pred.float(), target, mask, composite, generator=generator)


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.lr_schedule == "cosine":
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(total, 1))))
    return cfg.lr


def _rewrite_csv(path: Path, fields: list[str], keep_upto: int) -> None:
    """Keep the rows with ``step <= keep_upto`` (after a resume); atomic rewrite."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(float(r["step"])) <= keep_upto]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _append_csv(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "_orig_mod", net)


class _Progress:
    """tqdm on a terminal, plain lines otherwise, nothing when disabled."""

    def __init__(self, enabled: bool | None, total: int, initial: int) -> None:
        self.tty = sys.stderr.isatty()
        self.enabled = self.tty if enabled is None else enabled
        self.bar = None
        if self.enabled and self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self.total = total

    def update(self, step: int, n: int, info: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{info['total']:.4f}", img_s=f"{info['img_per_s']:.1f}")
        elif self.enabled:
            print(
                f"step {step}/{self.total}  loss {info['total']:.4f}  {info['img_per_s']:.1f} img/s",
                file=sys.stderr,
                flush=True,
            )

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        elif self.enabled:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_eval(
    net: nn.Module,
    dataset: Any,
    out_dir: Path,
    cfg: TrainConfig,
    device: torch.device,
    method: str | None = None,
) -> dict[str, float]:
    """Evaluate ``net`` (or a named baseline ``method``) with :func:`rharm_lib.evaluate.evaluate`.

    Returns the pooled ``All`` row (paper metrics at ``cfg.eval_size``, see
    :mod:`rharm_lib.metrics`) as ``{"n", "mse", "psnr", "psnr_peak", "fmse", "ssim", "fssim"}``.
    """
    if cfg.eval_max_images:
        dataset = _Head(dataset, cfg.eval_max_images)
    if method is None:
        was_training = net.training
        h = Harmonizer(net, device=device, precision="fp32")
        try:
            _, summary = evaluate(
                dataset, h, out_dir, eval_size=cfg.eval_size, progress=False, method_name="model"
            )
        finally:
            net.train(was_training)
    else:
        _, summary = evaluate(
            dataset, resolve_method(method), out_dir, eval_size=cfg.eval_size, progress=False
        )
    row = summary[summary["subset"] == "All"].iloc[0]
    return {k: (int(row[k]) if k == "n" else float(row[k])) for k in _EVAL_FIELDS[2:]}


class _Head:
    """The first ``n`` samples of a dataset (the evaluation budget)."""

    def __init__(self, ds: Any, n: int) -> None:
        self.ds, self.n = ds, min(n, len(ds))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if i >= self.n:
            raise IndexError(i)
        return self.ds[i]

    def __iter__(self):
        return (self.ds[i] for i in range(self.n))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ds, name)


def _finished(run_dir: Path, cfg: TrainConfig, spec: SourceSpec) -> TrainSummary | None:
    """The summary of a finished run of ``cfg`` on ``spec`` in ``run_dir``, if any."""
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())
    diff = config_diff(config_from_dict(s["train_config"]), cfg)
    if diff or s.get("data") != spec.location:
        raise RharmInputError(
            f"{run_dir} holds a finished run of another config or data "
            f"(differs in {diff or ['data']}); choose another --out"
        )
    return TrainSummary(**{**s["result"], "steps_this_call": 0, "wall_s": 0.0, "reused": True})


def train(
    cfg: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    reuse: bool = False,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    stop_after: int | None = None,
    eval_data: str | os.PathLike | None = None,
) -> TrainSummary:
    """Train the harmonization network (the paper's recipe by default).

    Args:
        cfg: the run's configuration (:func:`rharm_lib.train.config.get_config`).
        data: ``"builtin"``, ``"lalonde"``, a lalonde-layout folder, a pack file or an
            iHarmony4 root (see :func:`rharm_lib.data.resolve.resolve_data`).
        out: the run folder (created).
        resume: continue from ``out/checkpoints/last.pt`` when it exists (fresh start
            otherwise). The config may differ only in :data:`RESUMABLE_CHANGES`.
        reuse: when ``out`` holds a finished run of the same config and data, return its
            summary without training (for notebooks).
        device: ``"auto"`` (default), ``"cpu"``, ``"cuda"``...; under ``torchrun`` each
            process uses ``cuda:LOCAL_RANK``.
        progress: a progress bar (``None``: only on a terminal).
        stop_after: end this call after this many steps (a resumable pause; the run is not
            marked finished). For tests and time-sliced jobs.
        eval_data: the test benchmark evaluated during training (default: the one that
            goes with ``data``; see :func:`rharm_lib.train.sources.eval_dataset`);
            ``"none"`` turns evaluation off.

    Returns:
        A :class:`TrainSummary` (also written as ``out/summary.json`` when finished).

    Raises:
        RharmInputError: bad data, an occupied ``out`` without ``resume``, a checkpoint of
            another config.
        TrainingDivergedError: a NaN/Inf loss; ``last.pt`` keeps the last finite state.
    """
    run_dir = Path(out)
    spec = resolve_data(data)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if reuse:
        done = _finished(run_dir, cfg, spec)
        if done is not None:
            return done
    if ckpt_path.exists() and not resume:
        raise RharmInputError(
            f"{run_dir} already holds a run ({ckpt_path}); pass --resume to continue it or "
            f"choose another --out"
        )

    dev0 = resolve_device(device)
    info = ddp.init_distributed(dev0.type)
    dev = resolve_device(device if info.world == 1 or dev0.type == "cpu" else None, info.local_rank)
    if cfg.batch_size % info.world:
        raise RharmInputError(
            f"batch_size {cfg.batch_size} is not divisible by {info.world} processes"
        )
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    if dev.type == "cuda" and not cfg.deterministic:
        # fixed crop size: let cuDNN pick the fastest kernels; TF32 for any fp32 matmul left
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    ckpt = None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        old = config_from_dict(ckpt["train_config"])
        diff = [d for d in config_diff(old, cfg) if d not in RESUMABLE_CHANGES]
        if diff:
            raise RharmInputError(
                f"{ckpt_path} was written with another config (fields {diff} differ); "
                f"resume with the same config or choose another --out"
            )
        old_data = ckpt.get("provenance", {}).get("data")
        if old_data is not None and old_data != spec.location:
            raise RharmInputError(f"{ckpt_path} trained on {old_data!r}, not {spec.location!r}")

    # --- model, loss, optimiser (same init on every rank: seeded before building) ---
    torch.manual_seed(cfg.seed)
    net = build_network(cfg.model)
    loss_fn = build_loss(cfg.loss)
    amp = amp_dtype(cfg, dev)
    cl = uses_channels_last(cfg, dev)
    net.to(dev)
    loss_fn.to(dev)
    if cl:
        net.to(memory_format=torch.channels_last)
    raw_net = net
    params = list(net.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.AdamW(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        weight_decay=cfg.weight_decay,
        fused=dev.type == "cuda",  # one kernel for the whole update on the GPU
    )
    start = 0
    if ckpt is not None:
        try:
            raw_net.load_state_dict(ckpt["model"])
            loss_fn.load_state_dict(ckpt["loss"])
        except RuntimeError as exc:
            raise RharmInputError(
                f"{ckpt_path}: weights do not fit the config: {str(exc)[:300]}"
            ) from None
        opt.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"])
        start = int(ckpt["step"])
    if cfg.compile:
        net = torch.compile(net)
    objective: nn.Module = Objective(net, loss_fn, amp)
    if info.enabled:
        objective = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True,  # the HCL MLPs get no gradient when HCL is skipped
        )

    # --- data ---
    source = load_train_source(
        spec,
        photo_size=cfg.photo_size,
        device=dev,
        batch_size=cfg.batch_size // info.world,
        crop_size=cfg.crop_size,
        hflip=cfg.hflip,
        families=cfg.families,
        seed=cfg.seed,
        rank=info.rank,
        world=info.world,
    )
    total = cfg.steps or cfg.epochs * source.steps_per_epoch
    end = total if stop_after is None else min(total, start + stop_after)

    # --- logs, evaluation set (rank 0) ---
    log_csv, eval_csv = run_dir / "train_log.csv", run_dir / "eval.csv"
    evalset, eval_desc = None, "none"
    baseline: dict[str, float] = {}
    final: dict[str, float] = {}
    tb = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _rewrite_csv(log_csv, _LOG_FIELDS, start)
        _rewrite_csv(eval_csv, _EVAL_FIELDS, start)
        evalset, eval_desc = (
            (None, "none") if str(eval_data) == "none" else eval_dataset(spec, eval_data)
        )
        write_json_atomic(
            run_dir / "config.json",
            {"train_config": config_to_dict(cfg), "data": spec.location, "eval_data": eval_desc},
        )
        if ckpt is not None and ckpt.get("baseline"):
            baseline = dict(ckpt["baseline"])
        elif evalset is not None:
            baseline = _run_eval(
                raw_net, evalset, run_dir / "eval" / "composite", cfg, dev, method="composite"
            )
            _append_csv(eval_csv, _EVAL_FIELDS, {"step": 0, "method": "composite", **baseline})
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                tb = None
    if ckpt is not None:
        final = dict(ckpt.get("metrics") or {})
    ddp.barrier(info)

    # computed once: git and package look-ups are too slow to repeat at every checkpoint
    prov = (
        provenance(dev, world_size=info.world, data=spec.location, eval_data=eval_desc)
        if info.is_main
        else {}
    )

    def save(step: int) -> None:
        payload = {
            "train_config": config_to_dict(cfg),
            "seed": cfg.seed,
            "step": step,
            "epoch": step // source.steps_per_epoch,
            "model": raw_net.state_dict(),
            "loss": loss_fn.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": capture_rng(),
            "baseline": baseline,
            "metrics": final,
            "provenance": prov,
        }
        save_checkpoint(ckpt_path, payload)

    # --- loop ---
    objective.train()
    bar = _Progress(progress if info.is_main else False, total, start)
    keys = ("total", "l1", "pixel", "hcl", "hcl_skipped")
    sums = torch.zeros(len(keys), device=dev, dtype=torch.float64)
    bad_step = torch.full((), -1, device=dev, dtype=torch.int64)
    n_acc, t_last, t0, last_sync = 0, time.perf_counter(), time.perf_counter(), start
    step = start
    try:
        while step < end:
            lr = _lr_at(cfg, step, total)
            for group in opt.param_groups:
                group["lr"] = lr
            batch = source.batch(step)
            comp, mask, target = batch[COMPOSITE], batch[MASK], batch[TARGET]
            if cl:
                comp, mask, target = (
                    t.contiguous(memory_format=torch.channels_last) for t in (comp, mask, target)
                )
            # the loss's own randomness (HCL patch locations): counter-based like the data
            g = torch.Generator(device=dev).manual_seed(step_seed(cfg.seed, info.rank, step, 2))
            losses = objective(comp, mask, target, generator=g)
            total_loss = losses["total"]
            opt.zero_grad(set_to_none=True)
            total_loss.backward()
            opt.step()
            vals = torch.stack(
                [torch.as_tensor(losses[k], device=dev).detach().double().reshape(()) for k in keys]
            )
            sums += vals
            bad_now = ~torch.isfinite(vals[:4]).all()
            bad_step = torch.where(
                (bad_step < 0) & bad_now, torch.full_like(bad_step, step), bad_step
            )
            n_acc += 1
            step += 1

            # the same decisions on every rank (collectives below must match)
            eval_step = bool(cfg.eval_every and step % cfg.eval_every == 0) or step == total
            do_eval = eval_step and info.is_main and evalset is not None
            do_ckpt = step % cfg.ckpt_every == 0 or step == end
            if step % cfg.log_every == 0 or eval_step or do_ckpt:
                # synchronisation point: NaN check (all ranks agree), log row, maybe eval/ckpt
                flag = ddp.all_reduce_max(bad_step, info)
                if int(flag) >= 0:
                    raise TrainingDivergedError(
                        f"non-finite loss at step {int(flag)} (last means: "
                        f"{dict(zip(keys, (sums / n_acc).tolist(), strict=True))}); stopped. "
                        f"The last good checkpoint is kept: "
                        f"{ckpt_path if ckpt_path.exists() else 'none written yet'}"
                        + (
                            f" (step {load_checkpoint(ckpt_path)['step']})"
                            if ckpt_path.exists()
                            else ""
                        )
                    )
                means = dict(zip(keys, (sums / n_acc).tolist(), strict=True))
                now = time.perf_counter()
                ips = n_acc * cfg.batch_size / max(now - t_last, 1e-9)
                row = {"step": step, "epoch": step // source.steps_per_epoch, "lr": lr, **means}
                row.update(img_per_s=round(ips, 3), elapsed_s=round(now - t0, 3))
                if info.is_main:
                    _append_csv(log_csv, _LOG_FIELDS, row)
                    if tb is not None:
                        for k in keys:
                            tb.add_scalar(f"loss/{k}", means[k], step)
                        tb.add_scalar("img_per_s", ips, step)
                    bar.update(step, step - last_sync, row)
                last_sync, n_acc, t_last = step, 0, now
                sums.zero_()
                if do_eval:
                    final = _run_eval(
                        raw_net, evalset, run_dir / "eval" / f"step_{step:07d}", cfg, dev
                    )
                    _append_csv(eval_csv, _EVAL_FIELDS, {"step": step, "method": "model", **final})
                    if tb is not None:
                        for k, v in final.items():
                            tb.add_scalar(f"eval/{k}", v, step)
                    bar.write(
                        f"eval step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items())
                    )
                    objective.train()
                if do_ckpt and info.is_main:
                    if not all(torch.isfinite(p).all() for p in raw_net.parameters()):
                        raise TrainingDivergedError(
                            f"non-finite weights after step {step}; stopped, {ckpt_path} kept"
                        )
                    save(step)
                ddp.barrier(info)
                t_last = time.perf_counter()
    finally:
        bar.close()
        if tb is not None:
            tb.close()

    wall = time.perf_counter() - t0
    done = step - start
    result = TrainSummary(
        run_dir=str(run_dir),
        checkpoint=str(ckpt_path),
        steps=step,
        steps_this_call=done,
        wall_s=round(wall, 3),
        img_per_s=round(done * cfg.batch_size / max(wall, 1e-9), 3),
        baseline=baseline,
        final=final,
    )
    if info.is_main and step >= total:
        write_json_atomic(
            run_dir / "summary.json",
            {
                "train_config": config_to_dict(cfg),
                "data": spec.location,
                "result": dataclasses.asdict(result),
                "provenance": prov,
            },
        )
    ddp.barrier(info)
    return result
