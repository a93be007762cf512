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
- logs (:mod:`.runlog`): ``RUN/train_log.csv`` (losses, lr, img/s), ``RUN/eval.csv``
  (paper metrics of the fixed test benchmark, with the input composite as the
  ``composite`` baseline), optional TensorBoard (``RUN/tb``), a progress display;
- checkpoints: ``RUN/checkpoints/last.pt`` (atomic, see :mod:`rharm_lib.checkpoint`), written
  only when every tensor of the state (parameters, buffers, optimiser moments) is finite;
  when the run ends ``RUN/summary.json`` records the result;
- the run folder: checked before any work (:func:`rharm_lib.outputs.check_output_dir`),
  locked for the run's life (:class:`rharm_lib.outputs.RunLock`: a second process on the
  same folder is refused with the holder's PID), temporaries of killed runs removed at start;
  a run refused before it wrote anything leaves no folder behind;
- step numbers: step ``n`` is the ``n``-th optimiser step, as in ``train_log.csv`` (the row
  logged after it) and in the NaN message;
- Ctrl-C (:mod:`.interrupt`): the step in progress finishes, is logged and checkpointed,
  the lock is released and :class:`~.interrupt.TrainingInterrupted` (a ``KeyboardInterrupt``
  with a one-line message) says how to resume;
- resume: ``resume=True`` continues from ``last.pt``; the data stream is a function of
  (seed, rank, step) and the optimiser, model, loss and RNG states are restored, so a
  deterministic CPU run that is killed and resumed ends with bit-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batch import COMPOSITE, MASK, TARGET
from ..checkpoint import (
    capture_rng,
    load_checkpoint,
    nonfinite_tensors,
    restore_rng,
    save_checkpoint,
)
from ..data.resolve import SourceSpec, resolve_data
from ..device import resolve_device
from ..errors import RharmInputError
from ..evaluate import evaluate_methods, resolve_method
from ..inference import Harmonizer
from ..losses import HarmonizationLoss, LossConfig
from ..model import ModelConfig, build_model
from ..outputs import RunLock, check_output_dir, clean_stale_temps
from ..provenance import provenance, write_json_atomic
from ..seed import seed_everything
from . import ddp
from .config import TrainConfig, config_diff, config_from_dict, config_to_dict
from .interrupt import DeferredInterrupt, TrainingInterrupted
from .runlog import EVAL_FIELDS, LOSS_KEYS, RunLogger
from .sources import TensorSource, eval_dataset, load_train_source, step_seed

__all__ = [
    "train",
    "TrainSummary",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "Objective",
    "Trainee",
    "build_network",
    "build_loss",
    "build_objective",
    "train_step",
    "amp_dtype",
    "uses_channels_last",
    "RESUMABLE_CHANGES",
]

#: TrainConfig fields that may change between a checkpoint and ``--resume``
RESUMABLE_CHANGES = frozenset(
    {"steps", "epochs", "log_every", "eval_every", "ckpt_every", "eval_max_images", "tensorboard"}
)


class TrainingDivergedError(RuntimeError):
    """The loss (or the weights) became NaN/Inf; the last good checkpoint is kept.

    ``means``: the loss means of the synchronisation that found a non-finite loss (logged
    as the run's last ``train_log.csv`` row before the error propagates), else ``None``."""

    means: dict[str, float] | None = None


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


@dataclass
class Trainee:
    """What a training step works on.

    Attributes:
        net: the network itself (not compiled, not DDP-wrapped: what checkpoints store).
        loss: the eq. 13 loss module (holds the HCL projection MLPs).
        opt: AdamW over the network's and the loss's parameters.
        objective: :class:`Objective` of the (maybe compiled) network and the loss, wrapped
            in DDP under ``torchrun``: what a step calls.
        channels_last: whether batches are made NHWC (:func:`uses_channels_last`).
        start: the step to start from (``> 0`` when resumed from a checkpoint).
    """

    net: nn.Module
    loss: nn.Module
    opt: torch.optim.Optimizer
    objective: nn.Module
    channels_last: bool
    start: int = 0


def build_objective(
    cfg: TrainConfig,
    dev: torch.device,
    info: ddp.DistInfo | None = None,
    ckpt: dict[str, Any] | None = None,
    ckpt_path: Path | None = None,
) -> Trainee:
    """Network, loss and optimiser of ``cfg`` on ``dev``, restored from ``ckpt`` when given.

    The network is initialised from ``cfg.seed`` (the same weights on every process). With
    a checkpoint, the network, loss, optimiser and RNG states are restored (before
    ``torch.compile`` and DDP wrap the network).

    Raises:
        RharmInputError: the checkpoint's weights do not fit ``cfg``.
    """
    torch.manual_seed(cfg.seed)
    net = build_network(cfg.model).to(dev)
    loss_fn = build_loss(cfg.loss).to(dev)
    cl = uses_channels_last(cfg, dev)
    if cl:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(
        list(net.parameters()) + list(loss_fn.parameters()),
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        weight_decay=cfg.weight_decay,
        fused=dev.type == "cuda",  # one kernel for the whole update on the GPU
    )
    start = 0
    if ckpt is not None:
        try:
            net.load_state_dict(ckpt["model"])
            loss_fn.load_state_dict(ckpt["loss"])
        except RuntimeError as exc:
            raise RharmInputError(
                f"{ckpt_path}: weights do not fit the config: {' '.join(str(exc).split())[:300]}"
            ) from None
        opt.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"])
        start = int(ckpt["step"])
    objective: nn.Module = Objective(
        torch.compile(net) if cfg.compile else net, loss_fn, amp_dtype(cfg, dev)
    )
    if info is not None and info.enabled:
        objective = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True,  # the HCL MLPs get no gradient when HCL is skipped
        )
    return Trainee(net, loss_fn, opt, objective.train(), cl, start)


def train_step(
    t: Trainee, batch: dict[str, Any], lr: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch`` (``composite``, ``mask``, ``target``) at ``lr``.

    ``generator`` drives the loss's own randomness (the HCL patch locations). Returns the
    loss terms (device tensors; nothing is synchronised with the host).
    """
    for group in t.opt.param_groups:
        group["lr"] = lr
    comp, mask, target = batch[COMPOSITE], batch[MASK], batch[TARGET]
    if t.channels_last:
        comp, mask, target = (
            x.contiguous(memory_format=torch.channels_last) for x in (comp, mask, target)
        )
    losses = t.objective(comp, mask, target, generator=generator)
    t.opt.zero_grad(set_to_none=True)
    losses["total"].backward()
    t.opt.step()
    return losses


def _kept(ckpt_path: Path) -> str:
    """``"<path> (step N)"`` of the checkpoint on disk, or ``"none written yet"``."""
    if not ckpt_path.exists():
        return "none written yet"
    return f"{ckpt_path} (step {load_checkpoint(ckpt_path)['step']})"


class LossMeter:
    """Sums the loss terms on the device between synchronisations; remembers the first step
    whose loss was not finite (detected at the next synchronisation, before any checkpoint
    is written, so the last checkpoint on disk is always a finite one).

    ``add(step, losses)`` takes the number of the step just done (1 for the first), the
    number its ``train_log.csv`` row carries."""

    def __init__(self, dev: torch.device) -> None:
        self.sums = torch.zeros(len(LOSS_KEYS), device=dev, dtype=torch.float64)
        self.bad_step = torch.full((), -1, device=dev, dtype=torch.int64)
        self.n, self.t_last = 0, time.perf_counter()

    def add(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        dev = self.sums.device
        vals = torch.stack(
            [
                torch.as_tensor(losses[k], device=dev).detach().double().reshape(())
                for k in LOSS_KEYS
            ]
        )
        self.sums += vals
        bad_now = ~torch.isfinite(vals[:4]).all()
        self.bad_step = torch.where(
            (self.bad_step < 0) & bad_now, torch.full_like(self.bad_step, step), self.bad_step
        )
        self.n += 1

    def means(self, info: ddp.DistInfo, ckpt_path: Path, batch_size: int) -> dict[str, float]:
        """Synchronise: the mean loss terms and ``img_per_s`` since the last call, then reset.

        Raises:
            TrainingDivergedError: a non-finite loss on any process (all processes agree).
        """
        flag = int(ddp.all_reduce_max(self.bad_step, info))
        means = dict(zip(LOSS_KEYS, (self.sums / self.n).tolist(), strict=True))
        now = time.perf_counter()
        if flag >= 0:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in means.items())
            exc = TrainingDivergedError(
                f"non-finite loss at step {flag} (means since the last log row: {shown}); "
                f"stopped. The last good checkpoint is kept: {_kept(ckpt_path)}"
            )
            exc.means = {**means, "img_per_s": float("nan")}
            raise exc
        means["img_per_s"] = self.n * batch_size / max(now - self.t_last, 1e-9)
        self.sums.zero_()
        self.n, self.t_last = 0, now
        return means

    def restart_clock(self) -> None:
        """Exclude evaluation and checkpoint time from the next ``img_per_s``."""
        self.t_last = time.perf_counter()


def _run_eval(
    net: nn.Module,
    dataset: Any,
    out_dir: Path,
    cfg: TrainConfig,
    device: torch.device,
    method: str | None = None,
) -> dict[str, float]:
    """Evaluate ``net`` (or a named baseline ``method``) with
    :func:`rharm_lib.evaluate.evaluate_methods`, into ``out_dir``.

    Returns the pooled ``All`` row (paper metrics at ``cfg.eval_size``, see
    :mod:`rharm_lib.metrics`) as ``{"n", "mse", "psnr", "psnr_peak", "fmse", "ssim", "fssim"}``.
    """
    if cfg.eval_max_images:
        dataset = _Spread(dataset, cfg.eval_max_images)
    was_training = net.training
    label = "model" if method is None else method
    fn = Harmonizer(net, device=device, precision="fp32") if method is None else None
    try:
        table = evaluate_methods(
            dataset,
            {label: fn if method is None else resolve_method(method)},
            out_dir.parent,
            folders={label: out_dir.name},
            eval_size=cfg.eval_size,
            progress=False,
        )
    finally:
        net.train(was_training)
    row = table[table["subset"] == "All"].iloc[0]
    return {k: (int(row[k]) if k == "n" else float(row[k])) for k in EVAL_FIELDS[2:]}


class _Spread:
    """``n`` samples spread evenly over a dataset (the evaluation budget).

    Decision: benchmarks list their composites family by family, so the first ``n`` would
    be one family (runs before this change evaluated ``eval_max_images`` that way: the
    ``cpu`` runs' curves at 150 images are all ``Transfer``). Indices
    ``round(linspace(0, len-1, n))``, the rule of
    :func:`rharm_lib.study.sources.benchmark_dataset`'s ``limit``.
    """

    def __init__(self, ds: Any, n: int) -> None:
        self.ds = ds
        self.idx = [int(i) for i in np.linspace(0, len(ds) - 1, min(n, len(ds))).round()]

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> Any:
        if i >= len(self.idx):
            raise IndexError(i)
        return self.ds[self.idx[i]]

    def __iter__(self):
        return (self.ds[i] for i in range(self.n))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ds, name)


def check_resume(
    ckpt_path: Path, cfg: TrainConfig, spec: SourceSpec, resume: bool
) -> dict[str, Any] | None:
    """The checkpoint to resume from (``None``: a fresh start), checked against ``cfg``.

    Raises:
        RharmInputError: a run is there but ``resume`` is off; the checkpoint was written
            with another config (beyond :data:`RESUMABLE_CHANGES`) or other data.
    """
    if not ckpt_path.exists():
        return None
    if not resume:
        raise RharmInputError(
            f"{ckpt_path.parent.parent} already holds a run ({ckpt_path}); pass --resume to "
            f"continue it or choose another --out"
        )
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
    return ckpt


def setup_device(
    cfg: TrainConfig, device: str | torch.device | None
) -> tuple[torch.device, ddp.DistInfo]:
    """Resolve the device (``cuda:LOCAL_RANK`` under ``torchrun``), start DDP, seed, and on
    CUDA let cuDNN pick its fastest kernels with TF32 for fp32 matrix products (unless
    ``cfg.deterministic``)."""
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
    return dev, info


def _evaluation_set(
    run_dir: Path,
    cfg: TrainConfig,
    spec: SourceSpec,
    evaluation: tuple[Any, str],
    t: Trainee,
    dev: torch.device,
    ckpt: dict[str, Any] | None,
    info: ddp.DistInfo,
    log: RunLogger,
) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """On the main process (``(None, {}, {})`` on the others): the test benchmark, the input
    composite's metrics on it (the ``composite`` baseline; from the checkpoint when
    resumed) and the run's provenance record. Writes the run's ``config.json``.

    ``evaluation``: ``(dataset or None, description)`` from :func:`_evaluation_source`."""
    if not info.is_main:
        return None, {}, {}
    evalset, desc = evaluation
    write_json_atomic(
        run_dir / "config.json",
        {"train_config": config_to_dict(cfg), "data": spec.location, "eval_data": desc},
    )
    if ckpt is not None and ckpt.get("baseline"):
        baseline = dict(ckpt["baseline"])
    elif evalset is not None:
        baseline = _run_eval(t.net, evalset, run_dir / "eval" / "composite", cfg, dev, "composite")
        log.evaluation(0, "composite", baseline)
    else:
        baseline = {}
    # computed once: git and package look-ups are too slow to repeat at every checkpoint
    prov = provenance(dev, world_size=info.world, data=spec.location, eval_data=desc)
    return evalset, baseline, prov


def _evaluation_source(
    spec: SourceSpec, eval_data: str | os.PathLike | None, info: ddp.DistInfo
) -> tuple[Any, str]:
    """The test benchmark and its description, resolved before the run folder is touched
    (a missing ``eval_data`` is refused with nothing written)."""
    if not info.is_main or str(eval_data) == "none":
        return None, "none"
    return eval_dataset(spec, eval_data)


def _save(path: Path, cfg: TrainConfig, step: int, src: TensorSource, t: Trainee, **rec) -> None:
    """Checkpoint the run at ``step`` (``rec``: ``baseline``, ``metrics``, ``provenance``).

    Raises:
        TrainingDivergedError: a tensor of the state is NaN/Inf -- parameters, buffers
            (BatchNorm ``running_var`` overflows before any loss does), the loss's MLPs or
            the optimiser's moments; the checkpoint on disk is kept.
    """
    state = {"model": t.net.state_dict(), "loss": t.loss.state_dict()}
    state["optimizer"] = t.opt.state_dict()
    bad = nonfinite_tensors(state)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise TrainingDivergedError(
            f"non-finite weights or buffers after step {step} ({shown}); stopped. "
            f"The last good checkpoint is kept: {_kept(path)}"
        )
    payload = {
        "train_config": config_to_dict(cfg),
        "seed": cfg.seed,
        "step": step,
        "epoch": step // src.steps_per_epoch,
        **state,
        "rng": capture_rng(),
        **rec,
    }
    save_checkpoint(path, payload)


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
    # the folder may have moved since (e.g. renamed to a new config hash): paths from here
    where = {"run_dir": str(run_dir), "checkpoint": str(run_dir / "checkpoints" / "last.pt")}
    return TrainSummary(
        **{**s["result"], **where, "steps_this_call": 0, "wall_s": 0.0, "reused": True}
    )


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
        progress: the progress display (:class:`~.runlog.RunLogger`): a tqdm bar on a
            terminal, one updating widget in a Jupyter notebook, else (``True`` only) a
            plain line with ``eta`` at about every 5 % of the run; ``None``: only on a
            terminal or in a notebook; ``False``: none.
        stop_after: end this call after this many steps (a resumable pause; the run is not
            marked finished). For tests and time-sliced jobs.
        eval_data: the test benchmark evaluated during training (default: the one that
            goes with ``data``; see :func:`rharm_lib.train.sources.eval_dataset`);
            ``"none"`` turns evaluation off.

    Returns:
        A :class:`TrainSummary` (also written as ``out/summary.json`` when finished).

    Raises:
        RharmInputError: bad data, an occupied ``out`` without ``resume``, a checkpoint of
            another config, an ``out`` that is a file or not writable, a run folder in use
            by another process (the message gives its PID).
        TrainingDivergedError: a NaN/Inf loss; ``last.pt`` keeps the last finite state.
        TrainingInterrupted: Ctrl-C (or Jupyter's interrupt button): the last completed step
            is checkpointed (a step in progress finishes first; a second Ctrl-C stops at
            once and keeps the previous checkpoint), the lock released; a
            ``KeyboardInterrupt`` with a one-line message saying how to resume.
    """
    run_dir, spec = check_output_dir(out, in_place=True), resolve_data(data)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if reuse and (done := _finished(run_dir, cfg, spec)) is not None:
        return done
    # one writer per run folder: the main process holds the lock until it returns
    main = int(os.environ.get("RANK", "0")) == 0
    with RunLock(run_dir) if main else contextlib.nullcontext():
        if main:
            for folder in (run_dir, ckpt_path.parent):
                clean_stale_temps(folder)  # temporaries of a killed run
        return _train_locked(
            cfg, spec, run_dir, ckpt_path, resume, device, progress, stop_after, eval_data
        )


def _train_locked(
    cfg: TrainConfig,
    spec: SourceSpec,
    run_dir: Path,
    ckpt_path: Path,
    resume: bool,
    device: str | torch.device | None,
    progress: bool | None,
    stop_after: int | None,
    eval_data: str | os.PathLike | None,
) -> TrainSummary:
    """:func:`train`'s body, run while the run folder is locked.

    Ctrl-C (SIGINT) is :class:`~.interrupt.TrainingInterrupted`: during the loop it takes
    effect at the next step boundary (:class:`~.interrupt.DeferredInterrupt`), where the last
    completed step is logged and checkpointed; during the set-up nothing new is saved."""
    ckpt = check_resume(ckpt_path, cfg, spec, resume)
    # the step of last.pt on disk (None: none yet); a Ctrl-C checkpoints `step` when newer
    step = int(ckpt["step"]) if ckpt is not None else 0
    saved = step if ckpt is not None else None
    total, log, loop = cfg.steps, None, None
    try:
        dev, info = setup_device(cfg, device)
        evaluation = _evaluation_source(spec, eval_data, info)
        t = build_objective(cfg, dev, info, ckpt, ckpt_path)
        source = load_train_source(
            spec, photo_size=cfg.photo_size, device=dev, batch_size=cfg.batch_size // info.world,
            crop_size=cfg.crop_size, hflip=cfg.hflip, families=cfg.families, seed=cfg.seed,
            rule_masks=cfg.rule_masks, photo_jitter=cfg.photo_jitter,
            rank=info.rank, world=info.world,
        )  # fmt: skip
        total = cfg.steps or cfg.epochs * source.steps_per_epoch
        end = total if stop_after is None else min(total, t.start + stop_after)
        log = RunLogger(
            run_dir, t.start, total, main=info.is_main, progress=progress,
            tensorboard=cfg.tensorboard,
        )  # fmt: skip
        evalset, baseline, prov = _evaluation_set(
            run_dir, cfg, spec, evaluation, t, dev, ckpt, info, log
        )
        final = dict(ckpt.get("metrics") or {}) if ckpt is not None else {}
        ddp.barrier(info)
        stepping = False  # True while the weights may be half-updated (a torn step)
        meter, t0 = LossMeter(dev), time.perf_counter()
        # under DDP every rank must stop at the same step: Ctrl-C keeps its usual meaning there
        loop = DeferredInterrupt(enabled=info.world == 1)
        with loop:
            while step < end:
                lr = _lr_at(cfg, step, total)
                with loop.critical():  # a Ctrl-C waits for the step to end
                    stepping = True
                    # the loss's own randomness (HCL patch locations): counter-based like the data
                    g = torch.Generator(device=dev).manual_seed(
                        step_seed(cfg.seed, info.rank, step, 2)
                    )
                    losses = train_step(t, source.batch(step), lr, g)
                    step += 1  # steps done: the number the log row and the NaN message carry
                    stepping = False
                    meter.add(step, losses)
                # the same decisions on every rank (the collectives below must match)
                eval_step = bool(cfg.eval_every and step % cfg.eval_every == 0) or step == total
                do_ckpt = step % cfg.ckpt_every == 0 or step == end
                if step % cfg.log_every == 0 or eval_step or do_ckpt:
                    with loop.critical():
                        _log_means(log, meter, info, ckpt_path, cfg, step, lr, source, t0)
                    if eval_step and info.is_main and evalset is not None:
                        final = _run_eval(
                            t.net, evalset, run_dir / "eval" / f"step_{step:07d}", cfg, dev
                        )
                        log.evaluation(step, "model", final)
                        t.objective.train()
                    if do_ckpt and info.is_main:
                        with loop.critical():
                            _save(ckpt_path, cfg, step, source, t, baseline=baseline,
                                  metrics=final, provenance=prov)  # fmt: skip
                            saved = step
                    ddp.barrier(info)
                    meter.restart_clock()
    except KeyboardInterrupt:
        if loop is not None and not stepping and info.is_main and step > t.start:
            # `step` is complete (a torn step keeps the last checkpoint): its row, last.pt
            if meter.n and info.world == 1:
                _log_means(log, meter, info, ckpt_path, cfg, step, lr, source, t0)
            if saved != step:
                _save(ckpt_path, cfg, step, source, t, baseline=baseline, metrics=final,
                      provenance=prov)  # fmt: skip
                saved = step
        raise TrainingInterrupted(
            step, total, run_dir, None if saved is None else ckpt_path, saved, resume
        ) from None
    finally:
        if log is not None:
            log.close()
    return _finish(run_dir, ckpt_path, cfg, spec, info, step, t.start, total,
                   time.perf_counter() - t0, baseline, final, prov)  # fmt: skip


def _log_means(
    log: RunLogger,
    meter: LossMeter,
    info: ddp.DistInfo,
    ckpt_path: Path,
    cfg: TrainConfig,
    step: int,
    lr: float,
    source: TensorSource,
    t0: float,
) -> None:
    """Synchronise the loss meter and write the ``train_log.csv`` row of ``step``.

    Raises:
        TrainingDivergedError: a non-finite loss since the last row (the row that shows it
            is written first; no checkpoint follows).
    """
    row = {"step": step, "epoch": step // source.steps_per_epoch, "lr": lr}
    try:
        means = meter.means(info, ckpt_path, cfg.batch_size)  # raises on NaN/Inf
    except TrainingDivergedError as exc:
        log.losses({**row, **(exc.means or {}), "elapsed_s": round(time.perf_counter() - t0, 3)})
        raise
    log.losses(
        {**row, **means, "img_per_s": round(means["img_per_s"], 3),
         "elapsed_s": round(time.perf_counter() - t0, 3)}
    )  # fmt: skip


def _finish(
    run_dir: Path,
    ckpt_path: Path,
    cfg: TrainConfig,
    spec: SourceSpec,
    info: ddp.DistInfo,
    step: int,
    start: int,
    total: int,
    wall: float,
    baseline: dict[str, float],
    final: dict[str, float],
    prov: dict[str, Any],
) -> TrainSummary:
    """The call's :class:`TrainSummary`; a finished run also gets ``RUN/summary.json``."""
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
