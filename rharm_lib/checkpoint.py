"""Checkpoint I/O, shared by training and inference: atomic writes, ``weights_only``
loading, RNG states, clear errors.

A checkpoint is a ``dict`` of tensors and plain primitives only (configs are stored as
nested dicts, see :func:`rharm_lib.config_io.plain`), so that it loads with
``torch.load(weights_only=True)`` and never executes code from the file:

==================  =============================================================
``format``          ``"rharm-checkpoint"`` (:data:`FORMAT`); ``format_version`` int
``train_config``    the :class:`~rharm_lib.train.config.TrainConfig` as a dict (its
                    ``model`` entry is all that inference needs)
``step``/``epoch``  optimiser steps done / epoch of the next step
``seed``            the run's seed
``model``           the network's ``state_dict`` (unwrapped from DDP / compile)
``loss``            the loss module's ``state_dict`` (the HCL projection MLPs)
``optimizer``       the AdamW ``state_dict``
``rng``             torch CPU / CUDA, NumPy and ``random`` states (:func:`capture_rng`)
``provenance``      git commit, versions, device, date, world size, data source
``metrics``         the last evaluation's summary (may be empty)
==================  =============================================================

Writes go to a temporary file in the same folder, are flushed and fsync'ed, then
renamed over the destination with :func:`os.replace`: a crash (even SIGKILL) leaves
either the previous complete file or the new complete file, never a truncated one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import RharmInputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng",
    "restore_rng",
]

FORMAT = "rharm-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("train_config", "step", "model")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format tag) to ``path``.

    Args:
        path: destination, e.g. ``RUN/checkpoints/last.pt``; parent folders are created.
        payload: tensors and plain primitives only (``weights_only``-loadable).

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint` (on the CPU).

    Raises:
        RharmInputError: the file is missing, is not a torch file, cannot be loaded with
            ``weights_only=True`` (it would execute code), is truncated, or is a torch file
            of another program (no ``format`` tag, e.g. a bare ``state_dict``).
    """
    path = Path(path)
    if not path.is_file():
        raise RharmInputError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage bytes raise anything (KeyError, EOFError ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RharmInputError(
            f"{path} is not a readable rharm checkpoint (torch.load with weights_only=True "
            f"failed: {first})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        what = f"keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else type(obj).__name__
        raise RharmInputError(
            f"{path} is a torch file but not an rharm checkpoint (no format={FORMAT!r} tag; "
            f"found {what})"
        )
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise RharmInputError(
            f"{path} has checkpoint format version {obj['format_version']}, newer than this "
            f"code's {FORMAT_VERSION}; update rharm"
        )
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise RharmInputError(f"{path} is an incomplete rharm checkpoint: missing {missing}")
    return obj


def capture_rng() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, NumPy, ``random``) as loadable primitives."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "random": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states are restored only when CUDA is present)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    r = state["random"]
    random.setstate((r[0], tuple(r[1]), r[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
