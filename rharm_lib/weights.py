"""The weights shipped with the package: the ``cpu`` model of seed 0.

``rharm harmonize IMG MASK -o OUT`` uses them when no ``--checkpoint`` is given, and
``rharm evaluate --method shipped`` evaluates them. They are a trimmed rharm checkpoint
(:mod:`rharm_lib.checkpoint`: weights-only loadable, tensor digest verified on load) holding
the network's weights, its training config and a ``shipped`` record: what it was trained on,
the commit, and its metrics on the lalonde test benchmark (the All row of
``results/cpu/table2_3_benchmark.csv``).

**What they are for.** A small model (1.68 M parameters, the paper's architecture at a
quarter of its width) trained for 2,000 steps on 2 CPU cores on the 1,612 lalonde training photos with
*synthetic* appearance shifts (docs/benchmark.md) -- not on iHarmony4. They show the method
working end to end and harmonize simple colour/exposure mismatches; they are not the
paper's model and do not reach its iHarmony4 numbers.

They are written by notebook 02 of the ``cpu`` profile (``rharm study --profile cpu --only
02``) through :func:`export_weights`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import RharmInputError
from .provenance import git_commit

__all__ = ["SHIPPED_NAME", "shipped_weights_path", "export_weights", "shipped_record"]

#: file name of the shipped weights under ``rharm_lib/assets/weights/``
SHIPPED_NAME = "rharm_cpu_seed0.pt"

#: what the shipped model was trained on (stored in the file)
TRAINING_DATA = (
    "the 1,612 lalonde photographs of rharm's train split (LabelMe / Oliva-Torralba photos "
    "of Lalonde & Efros 2007; the 387 test photos never seen) at 128x128, with composites synthesised "
    "on the fly by rharm's benchmark sampler (four families of appearance shifts calibrated "
    "to iHarmony4's per-image statistics); not iHarmony4"
)


def shipped_weights_path() -> Path:
    """Where the shipped weights live inside the installed package (may be missing in a
    source tree that has not run ``rharm study --profile cpu --only 02`` yet)."""
    return Path(str(resources.files("rharm_lib") / "assets" / "weights" / SHIPPED_NAME))


def export_weights(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    metrics: dict[str, float],
    benchmark: str,
) -> Path:
    """Write the trimmed, weights-only file of a finished training run.

    Args:
        checkpoint: ``RUN/checkpoints/last.pt`` of ``rharm train``.
        out: the file to write (atomically).
        metrics: the model's All-row metrics on the test benchmark (``mse``, ``psnr``,
            ``fmse``, ``ssim``, ``fssim``), stored with the weights.
        benchmark: a description of that benchmark (name and version).

    Returns:
        the written path. The optimiser state and RNG states are dropped (inference only).
    """
    ckpt = load_checkpoint(checkpoint)
    payload: dict[str, Any] = {
        "model": ckpt["model"],
        "train_config": ckpt["train_config"],
        "step": ckpt["step"],
        "provenance": ckpt.get("provenance", {}),
        "shipped": {
            "trained_on": TRAINING_DATA,
            "source_checkpoint_commit": (ckpt.get("provenance") or {}).get("git_commit"),
            "exported_at_commit": git_commit(),
            "benchmark": benchmark,
            "metrics": {k: float(v) for k, v in metrics.items()},
        },
    }
    return save_checkpoint(out, payload)


def shipped_record(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``shipped`` record of the weights file (what it was trained on, metrics)."""
    p = Path(path) if path is not None else shipped_weights_path()
    if not p.is_file():
        raise RharmInputError(
            f"no shipped weights at {p}; produce them with: rharm study --profile cpu --only 02"
        )
    return dict(load_checkpoint(p).get("shipped") or {})
