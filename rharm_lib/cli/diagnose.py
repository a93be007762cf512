"""``rharm diagnose loss``: step-0 gradient alignment and pixel-optimisation fMSE of every
reading of L_HCL (:mod:`rharm_lib.diagnose`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from ..errors import RharmInputError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("diagnose", help="diagnostics (loss: how each L_HCL reading pulls)")
    sub = p.add_subparsers(dest="diagnose_kind", metavar="KIND")
    sub.required = True
    d = sub.add_parser(
        "loss",
        help="per L_HCL reading: step-0 gradient cosine with target - pred, gradient-norm "
        "ratio, fMSE after optimising the pixels under the reading alone and under eq. 13",
    )
    d.add_argument("--photos", default="lalonde", help="lalonde, builtin, a directory or a pack")
    d.add_argument("--data", default=None, help="data root (default $RHARM_DATA or ../shared/data)")
    d.add_argument("--split", default="train")
    d.add_argument("--n", type=int, default=32, help="composites (first n photos)")
    d.add_argument("--size", type=int, default=256)
    d.add_argument("--steps", type=int, default=150, help="Adam steps of the pixel optimisation")
    d.add_argument("--lr-pixels", type=float, default=0.01)
    d.add_argument("--lr-mlp", type=float, default=1e-3)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--readings", nargs="+", help="readings to measure (default: all)")
    d.add_argument("--k", type=int, default=256, help="K, patches per region")
    d.add_argument("--patch-source", choices=("image", "map"), default=None)
    d.add_argument("--no-region-mask", action="store_true", help="cut patches from unmasked images")
    d.add_argument("--sampling", choices=("capped", "replacement"), default=None)
    d.add_argument("--threads", type=int, help="torch CPU threads")
    d.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..diagnose import DiagnoseConfig, diagnose_loss, diagnosis_batch, diagnosis_table
    from ..losses import READINGS, LossConfig
    from .data import resolve_photos

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n < 1 or args.size < 16:
        raise RharmInputError(f"--n must be >= 1 and --size >= 16, got {args.n} and {args.size}")
    over = {"k": args.k, "region_mask": not args.no_region_mask}
    if args.patch_source:
        over["patch_source"] = args.patch_source
    if args.sampling:
        over["sampling"] = args.sampling
    cfg = DiagnoseConfig(
        readings=tuple(args.readings or READINGS),
        loss=dataclasses.replace(LossConfig(), **over),
        steps=args.steps,
        lr_pixels=args.lr_pixels,
        lr_mlp=args.lr_mlp,
        seed=args.seed,
    )
    src = resolve_photos(args.photos, args.data)
    composite, target, mask = diagnosis_batch(src, args.n, args.size, args.split, args.seed)
    result = diagnose_loss(
        composite,
        target,
        mask,
        cfg,
        progress=lambda m: print(f"[diagnose {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr),
    )
    result["photos"] = args.photos
    if args.json:
        print(json.dumps(result, sort_keys=True, default=str))
        return 0
    print(
        f"{result['n']} {args.photos} composites at {result['size']}², {cfg.steps} Adam steps; "
        f"composite fMSE {result['composite_fmse']:.1f}"
    )
    print(diagnosis_table(result).to_string(float_format=lambda v: f"{v:.3f}"))
    return 0
