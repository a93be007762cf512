"""Parameter and FLOP counts (``rharm info``, the paper's 28.37 M parameters)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .resunet import build_model

__all__ = ["count_params", "forward_flops"]


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_flops(model: nn.Module, size: int | tuple[int, int] = 256, batch: int = 1) -> int:
    """Forward FLOPs of one ``batch`` at ``size`` counted with ``torch.utils.flop_counter``.

    Counted on a copy of the model built on the ``meta`` device from ``model.cfg`` (no
    memory, no compute), in eval mode. ``FlopCounterMode`` counts a multiply-add as
    **2 FLOPs** and covers convolutions and matrix products (not element-wise ops,
    norms or pooling); divide by 2 for MACs, the unit many papers call "FLOPs".

    Args:
        model: a :class:`~rharm_lib.model.resunet.HarmonizationNet` (anything with a
            ``cfg`` and ``forward(composite, mask)``).
        size: ``S`` or ``(H, W)`` of the input.
        batch: batch size.

    Returns:
        The FLOP count (int).
    """

    h, w = (size, size) if isinstance(size, int) else size
    with torch.device("meta"):
        meta = build_model(model.cfg).eval()
        comp = torch.zeros(batch, 3, h, w)
        mask = torch.zeros(batch, 1, h, w)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(comp, mask)
    return int(counter.get_total_flops())
