"""``rharm evaluate``: paper-convention metrics of a method on an iHarmony4-layout dataset.

Example::

    rharm evaluate --data builtin --method reinhard --out results/eval/reinhard
    rharm evaluate --data /data/iHarmony4 --subsets HCOCO,HFlickr --method checkpoint \\
        --checkpoint runs/paper/checkpoints/last.pt --out results/eval/ours

Writes ``OUT/per_image.csv``, ``OUT/summary.csv``, ``OUT/summary.md`` and
``OUT/provenance.json`` (see :mod:`rharm_lib.evaluate`) and prints the summary table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.benchmark import ensure_builtin_benchmark
from ..data.ihd import IHDDataset
from ..errors import RharmInputError
from ..evaluate import METHODS, check_eval_out, check_eval_size, evaluate, resolve_method
from ..metrics import summary_markdown
from . import args as a

__all__ = ["register", "run"]

_METHODS = "composite, reinhard, histmatch, checkpoint"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a method (MSE/PSNR/SSIM/fMSE/fSSIM, iHarmony4 protocol)",
        description="Evaluate a harmonization method on an iHarmony4-layout dataset with the "
        "paper's metric conventions (see the README's Evaluation protocol).",
    )
    p.add_argument(
        "--data", required=True,
        help="iHarmony4-layout root (or one subset directory), or 'builtin' for the built-in benchmark",
    )  # fmt: skip
    p.add_argument("--split", default="test", help="list to read: IHD_<split>.txt (default: test)")
    p.add_argument(
        "--subsets", help="comma-separated subsets to keep, e.g. HCOCO,HFlickr (default: all)"
    )
    p.add_argument("--method", required=True, help=f"one of: {_METHODS}")
    p.add_argument("--checkpoint", help="checkpoint file for --method checkpoint")
    p.add_argument(
        "--device",
        type=a.device,
        default="auto",
        help="device for --method checkpoint (default: auto)",
    )
    p.add_argument(
        "--eval-size", type=a.eval_size, default=256,
        help="evaluation side in pixels (default 256, at least 11), or 'native' for the images' "
        "own size",
    )  # fmt: skip
    p.add_argument(
        "--method-input", default="eval", metavar="{eval,native}",
        help="run the method on the eval-size inputs (default, iHarmony4 convention) or at native size",
    )  # fmt: skip
    p.add_argument(
        "--out",
        required=True,
        help="result directory (created; replaced only if it holds a previous result)",
    )
    p.add_argument(
        "--working-size",
        type=int,
        help="networks only: run the network at this long side and lift its change to the "
        "evaluated size (fast mode); default: the network runs on the evaluated image",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _dataset_root(data: str) -> Path:
    if data == "builtin":
        return Path(ensure_builtin_benchmark())
    return Path(data)


def run(args: argparse.Namespace) -> int:

    # Validate every option before touching data or the output directory.
    if args.method not in METHODS:
        raise RharmInputError(f"unknown method {args.method!r}; choose from {sorted(METHODS)}")
    size = args.eval_size
    check_eval_size(size)  # memory estimate, before anything is loaded
    check_eval_out(args.out)  # a file, a read-only place, foreign files: refused now
    if args.method_input not in ("eval", "native"):
        raise RharmInputError(
            f"--method-input must be 'eval' or 'native', got {args.method_input!r}"
        )
    subsets = None
    if args.subsets is not None:
        subsets = [s.strip() for s in args.subsets.split(",") if s.strip()]
        if not subsets:
            raise RharmInputError(f"--subsets {args.subsets!r} names no subset")
    method = resolve_method(args.method, args.checkpoint, args.device, args.working_size)
    root = _dataset_root(args.data)
    dataset = IHDDataset(root, split=args.split, subsets=subsets)
    _, summary = evaluate(
        dataset,
        method,
        args.out,
        eval_size=size,
        progress=not args.no_progress,
        run_at_eval_size=args.method_input == "eval",
        method_name=args.method,
        extra_provenance={"data_arg": args.data, "subsets_arg": subsets},
    )
    print(
        summary_markdown(
            summary, f"{args.method} on {root} ({args.split}), eval size {size or 'native'}"
        )
    )
    print(f"wrote {Path(args.out) / 'summary.csv'} and per_image.csv, summary.md, provenance.json")
    return 0
