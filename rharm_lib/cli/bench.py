"""``rharm bench train`` / ``rharm bench infer``: training throughput, MFU and latency."""

from __future__ import annotations

import argparse
import json

from ..train.bench import bench_infer, bench_train
from . import args as a

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="speed benchmarks (training img/s and MFU, inference latency)"
    )
    sub = p.add_subparsers(dest="bench_kind", metavar="KIND")
    sub.required = True
    t = sub.add_parser(
        "train", help="training img/s, GFLOPs/img, TFLOP/s, MFU; and the plain ResUNet"
    )
    t.add_argument("--config", default="paper")
    t.add_argument("--batch", type=a.positive_int, default=8)
    t.add_argument("--compile", action="store_true")
    t.add_argument("--device", type=a.device, default="auto")
    t.add_argument("--steps", type=a.positive_int, default=10, help="timed steps per window")
    t.add_argument("--warmup", type=a.nonneg_int, default=3)
    t.add_argument("--windows", type=a.positive_int, default=3)
    t.add_argument("--size", type=a.image_side, help="crop side (default: the config's)")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    t.add_argument("--channels-last", choices=("auto", "on", "off"))
    t.add_argument("--no-plain", action="store_true", help="skip the plain ResUNet")
    t.add_argument("--threads", type=a.positive_int, help="torch CPU threads")
    t.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    t.set_defaults(func=run)
    i = sub.add_parser("infer", help="inference latency at --size (median of --repeats)")
    i.add_argument("--config", default="paper")
    i.add_argument("--size", type=a.image_side, nargs="+", default=[256, 512, 1024])
    i.add_argument("--device", type=a.device, default="auto")
    i.add_argument("--repeats", type=a.positive_int, default=5)
    i.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    i.add_argument("--threads", type=a.positive_int, help="torch CPU threads")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run)


def _table(rows: list[dict], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    if args.bench_kind == "train":
        res = bench_train(
            args.config, args.batch, compile=args.compile, device=args.device, steps=args.steps,
            warmup=args.warmup, windows=args.windows, precision=args.precision,
            channels_last=args.channels_last, size=args.size, plain=not args.no_plain,
        )  # fmt: skip
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            keys = ["config", "params_m", "batch", "size", "precision", "compile", "img_per_s",
                    "fwd_gflops_per_img", "achieved_tflops", "mfu", "epochs60_ihd_hours"]  # fmt: skip
            rows = [res["model"]] + ([res["plain"]] if "plain" in res else [])
            print(f"device: {res['device']}, torch {res['torch']}")
            print(_table(rows, keys))
            if "cost_ratio" in res:
                print(f"plain / paper img/s: {res['cost_ratio']}")
    else:
        res = bench_infer(
            args.config,
            tuple(args.size),
            device=args.device,
            repeats=args.repeats,
            precision=args.precision,
        )
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            print(f"device: {res['device']}, config {res['config']}")
            print(_table(res["rows"], ["size", "median_ms", "min_ms", "peak_mem_mb"]))
    return 0
