"""``rharm harmonize COMPOSITE MASK -o OUT --checkpoint CKPT``: harmonize one image."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "harmonize",
        help="harmonize one composite with a trained checkpoint (any size)",
        description=(
            "--mode fast (default): the network at --working-size (long side), its colour "
            "change carried to full resolution by per-pixel affine colour maps; background "
            "bit-identical. native: the network on the whole image (memory grows with the "
            "image). tiled: the network at full resolution in overlapping tiles."
        ),
    )
    p.add_argument("composite", help="composite image (any format PIL reads)")
    p.add_argument("mask", help="foreground mask (nonzero = foreground), same size")
    p.add_argument("-o", "--out", required=True, help="output image (format from the extension)")
    p.add_argument("--checkpoint", required=True, help="checkpoint of rharm train")
    p.add_argument("--config", help="fail unless the checkpoint's model is this named config")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument(
        "--raw", action="store_true", help="keep the network's background (no copy from input)"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    # full-resolution modes (issue 11; rharm_lib.fullres)
    p.add_argument("--mode", choices=("fast", "native", "tiled"), default="fast")
    p.add_argument(
        "--working-size", type=int, help="fast: network long side; tiled: statistics pass"
    )
    p.add_argument("--tile", type=int, help="tiled: tile side in pixels (default 1024)")
    p.add_argument(
        "--report-memory", action="store_true", help="print peak memory and time as JSON on stderr"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.imageio import load_mask, load_rgb, save_rgb
    from ..errors import RharmInputError
    from ..inference import Harmonizer
    from ..train.engine import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    comp = load_rgb(args.composite)
    mask = load_mask(args.mask)
    if mask.shape != comp.shape[:2]:
        raise RharmInputError(
            f"mask {args.mask} is {mask.shape[1]}x{mask.shape[0]} but composite {args.composite} "
            f"is {comp.shape[1]}x{comp.shape[0]}"
        )
    h = Harmonizer.from_checkpoint(
        args.checkpoint, device=dev, expect_config=args.config, precision=args.precision,
        keep_background=not args.raw,
    )  # fmt: skip
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = time.perf_counter()
    opts = {"tile": args.tile} if args.tile else {}
    out = h.harmonize(comp, mask, mode=args.mode, working_size=args.working_size, **opts)
    secs = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dst = Path(args.out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp-{os.getpid()}{dst.suffix}")
    try:
        save_rgb(tmp, out)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    if args.report_memory:
        rep = {
            "size": [int(comp.shape[0]), int(comp.shape[1])],
            "mode": args.mode,
            "device": str(dev),
            "seconds": round(secs, 3),
            "peak_rss_mb": round(rss1 / 1024, 1),
            "rss_increase_mb": round((rss1 - rss0) / 1024, 1),
        }
        if dev.type == "cuda":
            rep["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        print(json.dumps(rep), file=sys.stderr)
    return 0
