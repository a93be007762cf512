"""Shared test set-up: one torch thread per worker (the suite runs with -n 2 on 2 cores)."""

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
