"""``rharm study --profile {ci,gpu} [--only NN[,NN]]``: run the study's notebooks.

Exit status: 0 when every notebook ran, 1 when a notebook failed (the message names the
notebook, the cell and its line; the executed copy with the traceback is kept), 2 for a
user error (unknown profile or notebook, a GPU profile without a GPU).
"""

from __future__ import annotations

import argparse
import sys

from ..study.profiles import PROFILES, get_profile
from ..study.runner import StudyFailure, run_study

__all__ = ["register", "run"]


def register(subparsers) -> None:

    p = subparsers.add_parser(
        "study",
        help="run the study notebooks with papermill",
        description="Run the notebooks of notebooks/ in order (papermill, kernel python3, "
        "cwd = repository root); figures go to figures/<profile>/, tables and executed "
        "notebooks to results/<profile>/.",
    )
    p.add_argument("--profile", default="ci", choices=sorted(PROFILES), help="default: ci")
    p.add_argument(
        "--only",
        action="append",
        metavar="NN",
        help="run only these notebooks (number or stem; repeat or comma-separate)",
    )
    p.add_argument("--quiet", action="store_true", help="do not echo the notebooks' outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    only = [x for item in (args.only or []) for x in item.split(",") if x.strip()] or None
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        run_study(get_profile(args.profile), only=only, stream=not args.quiet, log=log)
    except StudyFailure as exc:
        print(f"rharm: study failed: {exc}", file=sys.stderr)
        return 1
    return 0
