"""``rharm harmonize COMPOSITE MASK -o OUT [--checkpoint CKPT]``: harmonize one image.

``-o`` is checked before anything is loaded (:func:`rharm_lib.outputs.check_output_file`:
a known image suffix, not a folder, a writable parent) and written through a temporary
sibling and a rename. Decision: a lossy format (``.jpg``, ``.jpeg``, ``.webp``) is written
as asked, with one warning on stderr that the background will not be bit-identical to the
input's (exit status 0); ``.png`` keeps it exact.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from ..data.imageio import IMAGE_SUFFIXES, load_mask, load_rgb, save_rgb
from ..device import resolve_device
from ..errors import RharmInputError
from ..inference import Harmonizer
from ..outputs import LOSSY_SUFFIXES, check_output_file
from ..weights import shipped_weights_path
from . import args as a

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
    p.add_argument(
        "-o", "--out", required=True,
        help=f"output image, format from the extension ({', '.join(IMAGE_SUFFIXES)}; "
        "JPEG/WebP are lossy: the background then differs slightly from the input's)",
    )  # fmt: skip
    p.add_argument(
        "--checkpoint",
        help="checkpoint of rharm train (default: the weights shipped with rharm, the cpu "
        "model trained on synthetic shifts of 1,612 photos; see rharm_lib/weights.py)",
    )
    p.add_argument("--config", help="fail unless the checkpoint's model is this named config")
    p.add_argument("--device", type=a.device, default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument(
        "--raw", action="store_true", help="keep the network's background (no copy from input)"
    )
    p.add_argument(
        "--threads", type=a.positive_int, help="torch CPU threads (default: torch's choice)"
    )
    # full-resolution modes (rharm_lib.fullres)
    p.add_argument("--mode", choices=("fast", "native", "tiled"), default="fast")
    p.add_argument(
        "--working-size",
        type=a.positive_int,
        help="fast: network long side; tiled: statistics pass",
    )
    p.add_argument("--tile", type=a.positive_int, help="tiled: tile side in pixels (default 1024)")
    p.add_argument(
        "--report-memory", action="store_true", help="print peak memory and time as JSON on stderr"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    dst = check_output_file(args.out, what="-o", suffixes=IMAGE_SUFFIXES)  # before the work
    if dst.suffix.lower() in LOSSY_SUFFIXES:
        print(
            f"rharm: warning: {dst.suffix} is lossy: the background of {dst} will not be "
            "bit-identical to the composite's (use .png to keep it exact)",
            file=sys.stderr,
        )
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
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = shipped_weights_path()
        if not ckpt.is_file():
            raise RharmInputError(
                f"no --checkpoint given and no shipped weights at {ckpt}; produce them with "
                "rharm study --profile cpu --only 02"
            )
    h = Harmonizer.from_checkpoint(
        ckpt, device=dev, expect_config=args.config, precision=args.precision,
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
    save_rgb(dst, out)  # atomic: a temporary sibling, then a rename
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
