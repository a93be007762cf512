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
``digest``          SHA-256 over every tensor of the payload (:func:`tensor_digest`)
==================  =============================================================

Writes go to a temporary file in the same folder (``.last.pt.tmp-<pid>``, see
:mod:`rharm_lib.outputs`), are flushed and fsync'ed, then renamed over the destination
with :func:`os.replace`: a crash (even SIGKILL) leaves either the previous complete file or
the new complete file, never a truncated one; the temporaries of killed writers are removed
by :func:`rharm_lib.outputs.clean_stale_temps` when the next run starts.

Integrity: :func:`save_checkpoint` refuses a payload holding a non-finite floating tensor
(parameters *and* buffers such as BatchNorm's ``running_var``, the loss's MLPs, the
optimiser's moments) and stores :func:`tensor_digest` of the payload; :func:`load_checkpoint`
recomputes the digest ("checkpoint is corrupted" when it differs: flipped bytes inside the
tensor data load without complaint from torch otherwise) and refuses non-finite tensors.
Format version 1 files (before the digest) load without the digest check.
"""

from __future__ import annotations

import hashlib
import os
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import RharmInputError
from .outputs import tmp_sibling

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "NonFiniteStateError",
    "iter_tensors",
    "nonfinite_tensors",
    "tensor_digest",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng",
    "restore_rng",
]

FORMAT = "rharm-checkpoint"
FORMAT_VERSION = 2
_REQUIRED = ("train_config", "step", "model")


class NonFiniteStateError(ValueError):
    """A state to be checkpointed holds NaN/Inf (``.names``: where)."""

    def __init__(self, names: list[str]) -> None:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        super().__init__(f"non-finite values in {len(names)} tensor(s): {shown}")
        self.names = names


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts/lists/tuples, as ``(dotted path, tensor)``, in a
    fixed order (dict keys sorted by their string form)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from iter_tensors(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from iter_tensors(v, f"{prefix}.{i}" if prefix else str(i))


def nonfinite_tensors(obj: Any) -> list[str]:
    """Paths of the floating-point tensors in ``obj`` holding a NaN or an Inf (parameters,
    buffers such as BatchNorm ``running_var``, optimiser moments ...)."""
    return [
        name
        for name, t in iter_tensors(obj)
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())
    ]


def tensor_digest(obj: Any) -> str:
    """SHA-256 over every tensor in ``obj`` (path, dtype, shape, bytes in row-major order).

    Independent of device and memory layout (channels_last tensors hash as their
    contiguous copy), so the digest computed before ``torch.save`` equals the one of the
    loaded file.
    """
    h = hashlib.sha256()
    for name, t in iter_tensors(obj):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format tag and the tensor digest) to ``path``.

    Args:
        path: destination, e.g. ``RUN/checkpoints/last.pt``; parent folders are created.
        payload: tensors and plain primitives only (``weights_only``-loadable).

    Returns:
        The destination path.

    Raises:
        NonFiniteStateError: a floating tensor of ``payload`` holds NaN/Inf (nothing is
            written; the file at ``path`` is kept).
    """
    path = Path(path)
    bad = nonfinite_tensors(payload)
    if bad:
        raise NonFiniteStateError(bad)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    obj["digest"] = tensor_digest(payload)
    tmp = tmp_sibling(path)
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
            ``weights_only=True`` (it would execute code), is truncated, is a torch file
            of another program (no ``format`` tag, e.g. a bare ``state_dict``), its tensors
            do not match the stored digest (corrupted), or it holds NaN/Inf.
    """
    path = Path(path)
    if not path.is_file():
        raise RharmInputError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            # a legacy (raw pickle) file makes torch warn before it fails; the error below
            # says everything in one line
            warnings.simplefilter("ignore")
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
    payload = {k: v for k, v in obj.items() if k not in ("format", "format_version", "digest")}
    if obj.get("format_version", 1) >= 2 and obj.get("digest") != tensor_digest(payload):
        raise RharmInputError(
            f"checkpoint {path} is corrupted: its tensors do not match the digest stored "
            "when it was written"
        )
    bad = nonfinite_tensors(payload)
    if bad:
        raise RharmInputError(f"checkpoint {path} is unusable: {NonFiniteStateError(bad)}")
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
