"""The one determinism helper: training, tests and every notebook call it."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "make_generator"]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed ``random``, NumPy and torch (CPU and CUDA).

    Args:
        seed: the seed.
        deterministic: also ask torch for deterministic algorithms (bit-exact resume on
            CPU; slower on GPU) and disable cuDNN benchmarking and TF32, whose kernels
            may differ from run to run.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (explicit RNG streams)."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
