"""``rharm info``: parameter count, forward GFLOPs at 256² and a module summary of a model config."""

from __future__ import annotations

import argparse
import dataclasses
import json

from ..errors import RharmInputError
from ..model import CONFIGS, build_model, count_params, forward_flops

__all__ = ["register", "run", "model_info"]


def model_info(config: str = "paper", size: int = 256) -> dict:
    """Summary of ``CONFIGS[config]``: ``params``, ``gflops_256`` (FLOPs/1e9 at ``size``²,
    a multiply-add counted as 2), ``gmacs_256``, the config fields and per-module counts."""

    if config not in CONFIGS:
        raise RharmInputError(f"unknown config {config!r}; expected one of {sorted(CONFIGS)}")
    cfg = CONFIGS[config]
    net = build_model(cfg)
    flops = forward_flops(net, size)
    modules: dict[str, int] = {}
    for name, child in net.named_children():
        sub = list(child.named_children()) if len(list(child.children())) else [("", child)]
        for sname, m in sub:
            n = count_params(m)
            if n:
                modules[f"{name}.{sname}" if sname else name] = n
    return {
        "config": config,
        "params": count_params(net),
        "gflops_256": round(flops / 1e9, 3),
        "gmacs_256": round(flops / 2e9, 3),
        "size": size,
        "model": dataclasses.asdict(cfg),
        "modules": modules,
    }


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="parameter count, forward GFLOPs at 256² and module summary of a model config"
    )
    p.add_argument("--config", default="paper", help="model config name (paper, ci, tiny)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = model_info(args.config)
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    print(f"config      {info['config']}")
    print(f"params      {info['params']:,} ({info['params'] / 1e6:.2f} M)")
    print(f"forward     {info['gflops_256']} GFLOPs at 256x256 ({info['gmacs_256']} GMACs)")
    m = info["model"]
    print(
        f"layout      widths={tuple(m['widths'])} blocks={tuple(m['blocks'])} norm={m['norm']} "
        f"fusion={m['fusion']}@{tuple(m['fusion_levels'])} "
        f"s2am={'on' if m['use_s2am'] else 'off'}@{tuple(m['s2am_levels'])} "
        f"output={m['output']} copy_background={m['copy_background']}"
    )
    print("modules (trainable parameters):")
    for name, n in info["modules"].items():
        print(f"  {name:<14}{n:>12,}")
    return 0
