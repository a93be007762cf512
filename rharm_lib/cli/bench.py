"""``rharm bench train`` / ``rharm bench infer``: training throughput, MFU and latency."""

from __future__ import annotations

import argparse
import json

from ..bench_infer import bench_infer
from ..train.bench import bench_train
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
    i = sub.add_parser(
        "infer",
        help="harmonize latency and peak RSS per size and mode (fast/native/tiled)",
        description="Each (size, mode) runs in a fresh subprocess: median of --repeats after "
        "one warm-up, and the child's peak RSS. Native mode is skipped above "
        "--max-native-pixels. The network is the package's shipped weights unless --config "
        "or --checkpoint says otherwise.",
    )
    i.add_argument("--config", help="model config with fresh weights instead of the shipped ones")
    i.add_argument(
        "--checkpoint",
        help="a checkpoint of rharm train, or 'shipped' (the default without --config)",
    )
    i.add_argument("--size", nargs="+", default=["1024", "2048", "6000x4000"], help="N or WxH")
    i.add_argument("--mode", nargs="+", choices=("fast", "native", "tiled"),
                   default=["fast", "native", "tiled"])  # fmt: skip
    i.add_argument("--working-size", type=a.positive_int, help="fast/tiled working size")
    i.add_argument("--max-native-pixels", type=a.nonneg_int, default=2048 * 2048)
    i.add_argument("--device", type=a.device, default="auto")
    i.add_argument("--repeats", type=a.positive_int, default=3, help="timed runs (median reported)")
    i.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    i.add_argument(
        "--budget-s",
        type=a.positive_float,
        help="start no further timed run after this (slow configs)",
    )
    i.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    i.add_argument("--threads", type=a.positive_int, help="torch CPU threads (in each child)")
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
            args.config, args.size, modes=args.mode, checkpoint=args.checkpoint,
            device=args.device, repeats=args.repeats, warmup=args.warmup,
            budget_s=args.budget_s, precision=args.precision,
            threads=args.threads, max_native_pixels=args.max_native_pixels,
            options={"working_size": args.working_size} if args.working_size else None,
        )  # fmt: skip
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            src = {"shipped": f"shipped weights {res['checkpoint']}",
                   "checkpoint": f"checkpoint {res['checkpoint']}"}.get(
                res["weights"], f"config {res['config']} (fresh weights)")  # fmt: skip
            print(f"device: {res['device']}, {src}, threads {res['threads']}")
            keys = ["size", "mode", "median_ms", "min_ms", "cpu_ms", "runs", "peak_rss_mb"]
            keys += ["image_mb"]
            keys += ["skipped"]
            print(_table(res["rows"], keys))
            for b in res["bars"]:
                print(f"bar {b['size']} {b['mode']} {b['field']} <= {b['limit']:g}: "
                      f"{b['value']:g} -> {'met' if b['met'] else 'NOT met'}")  # fmt: skip
    return 0
