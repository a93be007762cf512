"""``rharm train``: train the harmonization network (see :mod:`rharm_lib.train`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from ..losses.readings import READINGS
from ..train import TrainingDivergedError, get_config, train
from . import args as a

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the network (paper recipe by default; DDP under torchrun)",
        description=(
            "Train on composites synthesised from photos (builtin, a lalonde folder, a pack) "
            "or on an iHarmony4 root; evaluate periodically on the fixed test benchmark; "
            "checkpoint atomically to RUN_DIR/checkpoints/last.pt. Under torchrun, one "
            "process per GPU (NCCL) or CPU process (gloo)."
        ),
    )
    p.add_argument("--config", default="paper", help="named config: paper or ci (default paper)")
    p.add_argument(
        "--data",
        required=True,
        help="builtin | lalonde | lalonde-layout dir | pack file | iHarmony4 root",
    )
    p.add_argument("--out", required=True, help="run folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=a.positive_int, help="optimiser steps")
    g.add_argument("--epochs", type=a.positive_int, help="epochs (when --steps is not given)")
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt"
    )
    p.add_argument("--seed", type=a.nonneg_int, help="seed (default 0)")
    p.add_argument("--device", type=a.device, default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch", type=a.positive_int, dest="batch_size", help="global batch size")
    p.add_argument("--lr", type=a.positive_float, help="AdamW learning rate")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    p.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic algorithms"
    )
    p.add_argument("--eval-data", help="test benchmark (default: the one that goes with --data)")
    p.add_argument(
        "--eval-every", type=a.nonneg_int, help="steps between evaluations (0 = at the end)"
    )
    p.add_argument(
        "--eval-max-images",
        type=a.nonneg_int,
        help="evaluate on at most this many images (0 = all)",
    )
    p.add_argument("--ckpt-every", type=a.positive_int, help="steps between checkpoints")
    p.add_argument("--log-every", type=a.positive_int, help="steps between log rows")
    p.add_argument(
        "--tensorboard", action="store_true", default=None, help="TensorBoard events (if installed)"
    )
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), help="learning-rate schedule")
    p.add_argument(
        "--w-hcl",
        type=a.nonneg_float,
        help="eq. 13 weight of L_HCL (paper 0.1; 0 = no contrastive loss)",
    )
    p.add_argument(
        "--hcl-reading",
        choices=sorted(READINGS),
        help="reading of eqs. 10-11 (default style; pred_negatives = the paper's literal "
        "text; see docs/model.md)",
    )
    p.add_argument(
        "--hcl-negatives",
        choices=("pred", "composite"),
        help="legacy switch, used without --hcl-reading: the pred_negatives (pred) or "
        "composite_negatives (composite) reading",
    )
    p.add_argument(
        "--threads", type=a.positive_int, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    over = {
        k: getattr(args, k)
        for k in (
            "steps",
            "epochs",
            "seed",
            "batch_size",
            "lr",
            "lr_schedule",
            "precision",
            "compile",
            "deterministic",
            "eval_every",
            "eval_max_images",
            "tensorboard",
        )
    }
    over["ckpt_every"], over["log_every"] = args.ckpt_every, args.log_every
    cfg = get_config(args.config, **over)
    loss_over = {"w_hcl": args.w_hcl, "reading": args.hcl_reading, "negatives": args.hcl_negatives}
    loss_over = {k: v for k, v in loss_over.items() if v is not None}
    if loss_over:  # the ablation switches of rharm_lib.losses.LossConfig
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **loss_over))
    if args.epochs is not None and cfg.steps is not None:
        cfg = dataclasses.replace(cfg, steps=None)  # --epochs overrides the config's steps
    try:
        summary = train(
            cfg,
            args.data,
            args.out,
            resume=args.resume,
            device=args.device,
            progress=False if args.no_progress else None,
            eval_data=args.eval_data,
        )
    except TrainingDivergedError as exc:
        print(f"rharm: error: training stopped: {a.one_line(str(exc))}", file=sys.stderr)
        return 3
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    print(
        json.dumps(
            {
                "run_dir": summary.run_dir,
                "steps": summary.steps,
                "img_per_s": summary.img_per_s,
                "baseline": summary.baseline,
                "final": summary.final,
            },
            indent=2,
        )
    )
    return 0
