"""Training configuration: one frozen dataclass, the paper's recipe by default.

The paper (Liang & Pun, Sec. IV-A) trains on one TITAN V with AdamW, learning rate
1e-3, batch 8, 256x256 random crops and horizontal flips, minimising eq. 13
(``L = L1 + lambda_pixel * L_pixel + lambda_hcl * L_HCL``). Every one of these choices is
a field of :class:`TrainConfig`; the model and loss configurations are the typed
dataclasses of :mod:`rharm_lib.model` and :mod:`rharm_lib.losses`, nested by value.

Named configurations live in the explicit registry :data:`TRAIN_CONFIGS`
(``"paper"``, ``"ci"``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..config_io import plain, rebuild
from ..errors import RharmInputError
from ..losses import LossConfig
from ..model import CONFIGS, ModelConfig

__all__ = [
    "TrainConfig",
    "TRAIN_CONFIGS",
    "get_config",
    "config_from_dict",
    "config_to_dict",
    "config_diff",
]


def _model_config(name: str) -> ModelConfig:
    return CONFIGS[name]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (data source, output dir and resume excluded).

    Attributes:
        name: the registry name this config came from (``"paper"``, ``"ci"``) or a label.
        model: a :class:`rharm_lib.model.ModelConfig` (architecture, widths, fusion, S²AM).
        loss: a :class:`rharm_lib.losses.LossConfig` (eq. 13 weights, HCL sampling).
        batch_size: global batch (all processes together); the paper uses 8.
        lr: AdamW learning rate (paper: 1e-3).
        betas: AdamW betas; the paper does not give them, so PyTorch's defaults.
        weight_decay: AdamW decoupled weight decay; not given by the paper, PyTorch's
            AdamW default 0.01.
        lr_schedule: ``"constant"`` (the paper names no schedule) or ``"cosine"`` (to 1 % of
            ``lr`` at the last step).
        steps: number of optimiser steps; when ``None`` it is ``epochs`` x steps per epoch.
        epochs: epochs over the (per-process shard of the) training set when ``steps`` is None.
        photo_size: side the training photos / pairs are decoded and resized to, once.
        crop_size: side of the random square crop taken from each photo (paper: 256).
        hflip: random horizontal flips (paper: yes).
        rule_masks: photo sources: replace human masks by the benchmark's mask rule (its
            iHarmony4-like foreground sizes; :func:`rharm_lib.data.mask_rule.with_rule_masks`),
            as the test benchmark does; ``False`` keeps the human masks.
        photo_jitter: photo sources: a random global colour change (gain and offset per
            channel up to this fraction) of each whole training photo before its composite
            is made; 0 = off (the paper has none). The ``ci`` config, trained on a dozen
            built-in photos, needs it: without it the model memorises their colours and its
            held-out error grows with training (docs/training.md).
        families: composite-synthesis families drawn from, uniformly per sample, for photo
            sources (``()`` = all of :data:`rharm_lib.data.synth.FAMILIES`).
        precision: ``"fp32"``, ``"bf16"`` (autocast of the network's forward; the loss is
            computed in fp32) or ``"auto"`` (bf16 on CUDA, fp32 on CPU).
        channels_last: ``"auto"`` (on CUDA), ``"on"`` or ``"off"``.
        compile: wrap the network in ``torch.compile``.
        deterministic: deterministic algorithms (bit-exact resume on CPU; slower on GPU).
        seed: the run's seed; every random stream derives from it and the step counter.
        log_every: steps between CSV log rows (and NaN checks; the GPU is synchronised
            only here).
        eval_every: steps between evaluations on the fixed test benchmark (0 = only at the end).
        ckpt_every: steps between checkpoints (the last step is always saved).
        eval_max_images: evaluate on at most this many benchmark images, spread evenly over
            its list (every family; 0 = all).
        eval_size: ``eval_size`` passed to :func:`rharm_lib.evaluate.evaluate`.
        tensorboard: also write TensorBoard events when ``tensorboard`` is installed.
    """

    name: str = "paper"
    model: ModelConfig = field(default_factory=lambda: _model_config("paper"))
    loss: LossConfig = field(default_factory=LossConfig)
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    lr_schedule: str = "constant"
    steps: int | None = None
    epochs: int = 60
    photo_size: int = 256
    crop_size: int = 256
    hflip: bool = True
    families: tuple[str, ...] = ()
    rule_masks: bool = True
    photo_jitter: float = 0.0
    precision: str = "auto"
    channels_last: str = "auto"
    compile: bool = False
    deterministic: bool = False
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0
    ckpt_every: int = 1000
    eval_max_images: int = 0
    eval_size: int = 256
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise RharmInputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop_size > self.photo_size:
            raise RharmInputError(
                f"crop_size {self.crop_size} is larger than photo_size {self.photo_size}"
            )
        if self.precision not in ("fp32", "bf16", "auto"):
            raise RharmInputError(f"precision must be fp32, bf16 or auto, got {self.precision!r}")
        if self.channels_last not in ("auto", "on", "off"):
            raise RharmInputError(
                f"channels_last must be auto, on or off, got {self.channels_last!r}"
            )
        if self.lr_schedule not in ("constant", "cosine"):
            raise RharmInputError(
                f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}"
            )
        if self.steps is not None and self.steps < 1:
            raise RharmInputError(f"steps must be >= 1, got {self.steps}")
        if self.epochs < 1:
            raise RharmInputError(f"epochs must be >= 1, got {self.epochs}")
        for k in ("log_every", "ckpt_every"):
            if getattr(self, k) < 1:
                raise RharmInputError(f"{k} must be >= 1, got {getattr(self, k)}")
        for k in ("eval_every", "eval_max_images"):
            if getattr(self, k) < 0:
                raise RharmInputError(f"{k} must be >= 0, got {getattr(self, k)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise RharmInputError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise RharmInputError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay}"
            )
        if self.eval_size < 11:
            raise RharmInputError(
                f"eval_size must be >= 11 (the SSIM window), got {self.eval_size}"
            )


def paper_config() -> TrainConfig:
    """The paper's recipe (Sec. IV-A): AdamW 1e-3, batch 8, 256² crops + flips, eq. 13."""
    return TrainConfig(name="paper", model=_model_config("paper"), eval_every=5000)


def ci_config() -> TrainConfig:
    """A few-minute CPU run: the ``ci`` model at 64², the cpu config's schedule.

    Photos are decoded at 72² and cropped to 64² so that crops and flips still vary; lr
    5e-4 with a cosine schedule, as the ``cpu`` config (with the paper's constant 1e-3 the
    ci model's held-out PSNR fell as training went on: docs/training.md).
    """
    return TrainConfig(
        name="ci",
        model=_model_config("ci"),
        photo_size=72,
        crop_size=64,
        lr=5e-4,
        lr_schedule="cosine",
        photo_jitter=0.2,
        steps=600,
        log_every=25,
        eval_every=200,
        ckpt_every=100,
        eval_size=64,
    )


def cpu_config() -> TrainConfig:
    """The paper's network and loss at the ``cpu`` width, trained on 2 CPU cores.

    What differs from the paper's recipe, each chosen by measurement (``docs/training.md``,
    "Why training learned nothing, and the cpu config"): photos decoded at 128² and
    cropped to 112² (a fifth of the paper's pixels; most of the object and its background
    stay in the crop), lr 5e-4 with a cosine schedule (the constant 1e-3 never settles on
    CPU-sized runs), 2,000 steps instead of 60 epochs, and ``torch.compile``'s CPU backend
    for the training forward (1.36x faster here; evaluation runs the plain network).
    """
    return TrainConfig(
        name="cpu",
        model=_model_config("cpu"),
        photo_size=128,
        crop_size=112,
        lr=5e-4,
        lr_schedule="cosine",
        steps=2000,
        compile=True,
        log_every=50,
        eval_every=500,
        ckpt_every=200,
        eval_size=256,
    )


#: name -> factory of a named training configuration
TRAIN_CONFIGS: dict[str, Any] = {"paper": paper_config, "ci": ci_config, "cpu": cpu_config}


def get_config(name: str, **overrides: Any) -> TrainConfig:
    """A named configuration with field overrides (``None`` overrides are ignored).

    Raises:
        RharmInputError: unknown name or field.
    """
    if name not in TRAIN_CONFIGS:
        raise RharmInputError(
            f"unknown training config {name!r}; choose from {sorted(TRAIN_CONFIGS)}"
        )
    cfg = TRAIN_CONFIGS[name]()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise RharmInputError(f"unknown TrainConfig fields {bad}")
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as nested plain dicts/lists/primitives (stored in checkpoints and JSON)."""
    return plain(cfg)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Inverse of :func:`config_to_dict`.

    Raises:
        RharmInputError: fields unknown to this version of the code.
    """
    data = dict(data)
    model = rebuild(ModelConfig, data.pop("model"), "checkpoint model config")
    loss = rebuild(LossConfig, data.pop("loss"), "checkpoint loss config")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise RharmInputError(f"checkpoint train config has fields {unknown} unknown to this code")
    for k in ("betas", "families"):
        if isinstance(data.get(k), list):
            data[k] = tuple(data[k])
    return TrainConfig(model=model, loss=loss, **data)


def config_diff(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Names of the fields (dotted for nested configs) where ``a`` and ``b`` differ."""
    da, db = config_to_dict(a), config_to_dict(b)
    out = []
    for k in sorted(set(da) | set(db)):
        va, vb = da.get(k), db.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += [f"{k}.{s}" for s in sorted(set(va) | set(vb)) if va.get(s) != vb.get(s)]
        elif json.dumps(va) != json.dumps(vb):
            out.append(k)
    return out
