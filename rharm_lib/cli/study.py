"""``rharm study --profile P [--only NN[,NN]] [--check [--fresh-runs]] [--reduced]``: run the
study's notebooks.

Exit status: 0 when every notebook ran (and, with ``--check``, every regenerated table
agrees with the committed one), 1 when a notebook failed (the message names the notebook,
the cell and its line; the executed copy with the traceback is kept) or the check found
drifts (printed as a table on stdout), 2 for a
user error (unknown profile or notebook, a GPU profile without a GPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from ..errors import RharmInputError
from ..study import check
from ..study.outputs import REDUCED_ENV, RUNS_ENV, output_dirs, study_root
from ..study.profiles import PROFILES, get_profile
from ..study.runner import StudyFailure, run_study
from ..study.sources import train_study_run

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
    p.add_argument(
        "--train-seed",
        action="append",
        type=int,
        metavar="SEED",
        help="only train (resume, or reuse when finished) the profile's training run of this "
        "seed, then exit; notebook 02 reuses it (repeatable; for background runs)",
    )
    p.add_argument(
        "--reduced",
        action="store_true",
        help="the profile's reduced variant (its code paths at a few steps on the CPU; the "
        "numbers mean nothing), written under $RHARM_STUDY_ROOT or runs/reduced/, never into "
        "results/ or figures/ (same as RHARM_STUDY_REDUCED=1)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="compare every regenerated table with the committed one; exit 1 with a table of "
        "what moved (deterministic rows: relative 1e-6; trained-model rows: the profile's "
        "check_rtol)",
    )
    p.add_argument(
        "--fresh-runs",
        action="store_true",
        help="train every run anew in an empty temporary folder ($RHARM_RUNS_DIR, removed "
        "afterwards) instead of reusing runs/: what a clean clone regenerates, so that a run "
        "trained by older code cannot make the check pass (make check-study uses it)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "fresh_runs", False):
        if args.train_seed:
            raise RharmInputError(
                "--fresh-runs trains in a temporary folder that is removed afterwards; "
                "--train-seed would throw its run away"
            )
        # every run trained anew by this code in a temporary runs folder; the tables are
        # still regenerated in results/<profile> (and checked there with --check)
        saved = os.environ.get(RUNS_ENV)
        tmp = tempfile.mkdtemp(prefix="rharm-fresh-runs-")
        os.environ[RUNS_ENV] = tmp
        args.fresh_runs = False
        try:
            return run(args)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if saved is None:
                os.environ.pop(RUNS_ENV, None)
            else:
                os.environ[RUNS_ENV] = saved
    if not args.reduced:
        return _run(args)
    # --reduced = RHARM_STUDY_REDUCED=1 for this command, so that get_profile, runs_root()
    # and the kernels agree; restored afterwards (main() may be called in-process)
    saved = os.environ.get(REDUCED_ENV)
    os.environ[REDUCED_ENV] = "1"
    try:
        return _run(args)
    finally:
        if saved is None:
            os.environ.pop(REDUCED_ENV, None)
        else:
            os.environ[REDUCED_ENV] = saved


def _run(args: argparse.Namespace) -> int:

    only = [x for item in (args.only or []) for x in item.split(",") if x.strip()] or None
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    profile = get_profile(args.profile)
    if args.check and profile.reduced:
        raise RharmInputError(
            "--check compares with the committed tables; a reduced run has none to compare with"
        )
    if args.train_seed:
        for seed in args.train_seed:
            summary = train_study_run(profile, seed, device=profile.device, progress=None)
            log(f"rharm study [{profile.name}]: seed {seed} trained: {summary.checkpoint}")
        return 0
    results_dir = output_dirs(profile.name, study_root(profile.reduced))[1]
    before = check.snapshot(results_dir) if args.check else None
    try:
        run_study(profile, only=only, stream=not args.quiet, log=log)
    except StudyFailure as exc:
        print(f"rharm: study failed: {exc}", file=sys.stderr)
        return 1
    if before is not None:
        drifts = check.compare(before, results_dir, profile.check_rtol, only_rewritten=bool(only))
        if drifts:
            print(check.drift_table(drifts))
            print(
                f"rharm: study check failed: {len(drifts)} cell(s) moved beyond tolerance "
                f"(committed vs regenerated tables of {results_dir})",
                file=sys.stderr,
            )
            return 1
        log(f"rharm study [{profile.name}]: check passed ({len(before)} committed tables agree)")
    return 0
