"""The one device rule: what ``"auto"``, ``"cpu"`` and ``"cuda[:k]"`` mean everywhere.

Used by training, evaluation, ``rharm harmonize``, benchmarks and the study, so that a device
name means the same thing in each of them.
"""

from __future__ import annotations

import torch

from .errors import RharmInputError

__all__ = ["resolve_device"]


def resolve_device(
    device: str | torch.device | None = None, local_rank: int | None = None, hint: str = ""
) -> torch.device:
    """Turn a device name into a :class:`torch.device`, checking CUDA is there when asked for.

    Args:
        device: ``None`` or ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, or a :class:`torch.device`.
        local_rank: for ``"auto"`` on CUDA, the index of the device (``cuda:<local_rank>``,
            one process per GPU under ``torchrun``); ``None`` gives plain ``cuda``.
        hint: appended to the error message (what to do instead).

    Returns:
        The device.

    Raises:
        RharmInputError: a name that is not ``auto``, ``cpu`` or ``cuda[:k]`` (e.g. ``tpu``),
            a CUDA device when torch sees none, or a CUDA index beyond the devices present.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda" if local_rank is None else f"cuda:{local_rank}")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise RharmInputError(f"unknown device {str(device)!r}; expected auto, cpu, cuda or cuda:N")
    msg = ""
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"device {str(device)!r} asked for but torch sees no CUDA device"
    elif dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        msg = f"device {str(device)!r} asked for but torch sees {torch.cuda.device_count()} CUDA device(s)"
    if msg:
        raise RharmInputError(f"{msg}; {hint}" if hint else msg)
    return dev
