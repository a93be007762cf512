"""``rharm ablate FAMILY --profile P [--seeds 0,1,2] [--list]``: train the runs of one
ablation family (Tables VI/VII, Figs. 8/9; :mod:`rharm_lib.study.ablations`).

Finished runs are reused, unfinished ones resumed, runs held by another process skipped,
so several ``rharm ablate`` processes can share a suite (``--threads 1`` each on a small
machine). Notebook 03 (``rharm study --only 03``) tabulates whichever runs exist.

Exit status: 0 when every requested run is finished or held by another process, 2 for a
user error (unknown family, profile or seed list).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from ..errors import RharmInputError
from ..study import ablations
from ..study.profiles import PROFILES, get_profile

__all__ = ["register", "run"]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds wants comma-separated integers, got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds is empty")
    return seeds


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="train the runs of one ablation family (notebook 03 tabulates them)",
        description="Train (reuse when finished, resume otherwise) every run of an ablation "
        "family at the profile's ablation scale: table6 (Table VI rows 1-4), fusion (Figs. "
        "8/9: none/AdaIN/RAIN/style fusion, both eq. 4 forms), readings (no L_HCL vs each "
        "reading of eqs. 10-11), patches (Table VII: K = 64..1024). Runs are "
        "runs/ablate-<profile>-<config hash>; runs shared by families are trained once.",
    )
    p.add_argument("family", choices=[*ablations.FAMILIES, "all"])
    p.add_argument("--profile", default="ci", choices=sorted(PROFILES), help="default: ci")
    p.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default: the profile's)")
    p.add_argument(
        "--steps",
        type=int,
        help="override the scale's steps (separate runs; notebook 03 reads the profile's scale)",
    )
    p.add_argument(
        "--lr", type=float, help="override the scale's learning rate (separate runs, as --steps)"
    )
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default=None, help="default: the profile's device")
    p.add_argument(
        "--list", action="store_true", help="print the runs and their state; train nothing"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    if profile.ablation is None:
        raise RharmInputError(f"profile {profile.name!r} has no ablation scale")
    if args.steps is not None or args.lr is not None:
        if args.steps is not None and args.steps < 1:
            raise RharmInputError(f"--steps must be >= 1, got {args.steps}")
        if args.lr is not None and not args.lr > 0:
            raise RharmInputError(f"--lr must be > 0, got {args.lr}")
        scale = dataclasses.replace(
            profile.ablation,
            steps=args.steps or profile.ablation.steps,
            lr=args.lr if args.lr is not None else profile.ablation.lr,
        )
        profile = dataclasses.replace(profile, ablation=scale)
    families = list(ablations.FAMILIES) if args.family == "all" else [args.family]
    if args.list:
        for fam in families:
            runs = ablations.find_runs(profile, fam, args.seeds)
            runs["run"] = runs["run"].map(lambda p: p.name)
            print(f"## {fam}")
            print(runs.to_string(index=False))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda msg: print(f"rharm ablate [{profile.name}]: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    busy = 0
    for fam in families:
        table = ablations.run_family(
            profile, fam, args.seeds, device=args.device or profile.device, progress=None, log=log
        )
        busy += int((table["status"] == "busy").sum())
    if busy:
        log(f"{busy} run(s) held by another process were skipped")
    return 0
