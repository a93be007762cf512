"""The training engine: ``rharm train``, DDP and benchmarks.

- :mod:`.config`      :class:`TrainConfig` (the paper's recipe by default), :data:`TRAIN_CONFIGS`
- :mod:`.sources`     uint8 training data resident on the device, batches drawn by step number
- :mod:`.engine`      :func:`train` (library entry point used by ``rharm train`` and notebooks)
- :mod:`.runlog`      CSV logs, TensorBoard, the progress display (bar, widget or lines)
- :mod:`.interrupt`   Ctrl-C stops at a step boundary: :class:`TrainingInterrupted`
- :mod:`.ddp`         DistributedDataParallel set-up under ``torchrun``
- :mod:`.bench`       ``rharm bench train`` (``rharm bench infer``: :mod:`rharm_lib.bench_infer`)
"""

from ..checkpoint import load_checkpoint, save_checkpoint
from .config import TRAIN_CONFIGS, TrainConfig, config_from_dict, config_to_dict, get_config
from .engine import TrainingDivergedError, TrainSummary, train
from .interrupt import TrainingInterrupted

__all__ = [
    "TrainConfig",
    "TRAIN_CONFIGS",
    "get_config",
    "config_to_dict",
    "config_from_dict",
    "train",
    "TrainSummary",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "save_checkpoint",
    "load_checkpoint",
]
