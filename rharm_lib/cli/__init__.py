"""The ``rharm`` console script.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func=run`` with
``run(args) -> int``. :data:`COMMANDS` is the explicit registry (name -> module).

Errors a user causes are :class:`~rharm_lib.errors.RharmInputError`: printed as
``rharm: error: ...`` with exit status 2 and no traceback. Argument errors take the same
one-line form (:class:`~rharm_lib.cli.args.OneLineParser`), and every warning is printed as
one line ``rharm: warning: ...``. Ctrl-C exits 130 with one line; a training run stopped by
it (:class:`~rharm_lib.train.interrupt.TrainingInterrupted`, checkpointed) prints
``rharm: interrupted at step N; resume with: <the same command, with --resume>``.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import warnings

from ..errors import RharmInputError
from ..train.interrupt import TrainingInterrupted
from .args import OneLineParser, one_line

__all__ = ["COMMANDS", "main", "build_parser", "resume_command"]

#: subcommand -> module under rharm_lib.cli that registers it
COMMANDS: dict[str, str] = {
    "evaluate": "rharm_lib.cli.evaluate",
    "data": "rharm_lib.cli.data",
    "info": "rharm_lib.cli.info",
    "train": "rharm_lib.cli.train",
    "harmonize": "rharm_lib.cli.harmonize",
    "bench": "rharm_lib.cli.bench",
    "study": "rharm_lib.cli.study",
    "diagnose": "rharm_lib.cli.diagnose",
    "ablate": "rharm_lib.cli.ablate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rharm", description="Image harmonization with region-wise contrastive learning."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMANDS.values():
        importlib.import_module(modname).register(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"rharm: warning: {one_line(str(message))}\n"


def resume_command(argv: list[str], exc: TrainingInterrupted) -> str:
    """The command that resumes an interrupted run: ``argv`` itself when the run was trained
    with ``resume=True`` (``rharm study --train-seed``, ``rharm ablate``), else ``argv`` plus
    ``--resume`` (``rharm train``)."""
    extra = [] if exc.resume or "--resume" in argv else ["--resume"]
    return shlex.join(["rharm", *argv, *extra])


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RharmInputError as exc:
        print(f"rharm: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:
        print(
            f"rharm: interrupted at step {exc.at}{exc.behind}; "
            f"resume with: {resume_command(argv, exc)}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("rharm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
