"""The CLI's shared argument validation: every subcommand refuses bad values the same way.

- :class:`OneLineParser`: an :class:`argparse.ArgumentParser` whose errors are one line,
  ``rharm: error: <subcommand>: <message>`` on stderr, exit status 2, no usage block
  (sub-parsers inherit the class);
- ``type=`` converters that raise :class:`argparse.ArgumentTypeError` with a message saying
  what was expected: :func:`positive_int`, :func:`nonneg_int`, :func:`image_side`,
  :func:`finite_float`, :func:`positive_float`, :func:`nonneg_float`, :func:`device`,
  :func:`eval_size`.

Library functions check the same ranges again (their configs' ``__post_init__``); these
converters make the CLI refuse before anything is loaded or written.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

from ..device import resolve_device
from ..errors import RharmInputError

__all__ = [
    "OneLineParser",
    "one_line",
    "positive_int",
    "nonneg_int",
    "image_side",
    "MIN_IMAGE_SIDE",
    "finite_float",
    "positive_float",
    "nonneg_float",
    "device",
    "eval_size",
]

#: the smallest image side the data commands accept (the SSIM window is 11 px; the U-Net
#: pads any size, but a side below 16 px holds no usable region)
MIN_IMAGE_SIDE = 16


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line ``rharm: error: <subcommand>: <message>`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        prefix = f"{where}: " if where else ""
        print(
            f"rharm: error: {prefix}{one_line(message)} (see {self.prog} --help)",
            file=sys.stderr,
        )
        sys.exit(2)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (steps, repeats, threads, batch ...)."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def nonneg_int(text: str) -> int:
    """An integer >= 0 (where 0 has a documented meaning, e.g. ``--eval-every 0``)."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v}")
    return v


def image_side(text: str) -> int:
    """An image side in pixels, at least :data:`MIN_IMAGE_SIDE`."""
    v = _int(text)
    if v < MIN_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(
            f"an image side must be at least {MIN_IMAGE_SIDE} px, got {v}"
        )
    return v


def finite_float(text: str) -> float:
    """A finite float (no ``nan``/``inf``)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A finite float > 0 (learning rates)."""
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    """A finite float >= 0 (loss weights)."""
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return v


def device(text: str) -> str:
    """A device that exists here: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked with
    :func:`rharm_lib.device.resolve_device`); returned as given, so that ``auto`` keeps its
    per-process meaning under ``torchrun``."""
    try:
        resolve_device(text)
    except RharmInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def eval_size(text: str) -> int | None:
    """``native`` (``None``: the images' own size) or an integer side >= 11 (the SSIM
    window). ``0`` is refused rather than read as native: say ``native``."""
    if text.lower() == "native":
        return None
    v = _int(text) if text.lower() != "none" else 0
    if v == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; say 'native' for the images' own size"
        )
    if v < 11:
        raise argparse.ArgumentTypeError(f"must be at least 11 (the SSIM window), got {v}")
    return v
