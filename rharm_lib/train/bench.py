"""Training speed benchmark: ``rharm bench train`` (``rharm bench infer`` lives in
:mod:`rharm_lib.bench_infer`).

``bench_train`` times full optimiser steps of the training engine's own step
(:func:`~rharm_lib.train.engine.build_objective` and
:func:`~rharm_lib.train.engine.train_step`: the same network, loss, AdamW and device-resident
:class:`~rharm_lib.train.sources.TensorSource` with on-device synthesis, crop and flip)
on random photos, and reports

- ``img_per_s``: training images per second (median over timing windows),
- ``fwd_gflops_per_img``: forward GFLOPs per image at the crop size
  (:func:`rharm_lib.model.forward_flops`; a multiply-add = 2 FLOPs),
- ``achieved_tflops``: ``3 x forward FLOPs x img/s`` (forward + backward ~ 3 forwards),
- ``mfu``: ``achieved_tflops / 790`` (:data:`PEAK_TFLOPS`, the measured bf16 dense matrix
  peak of an H100/H200 in this project; on a CPU the ratio is only indicative),
- ``epochs60_ihd_hours``: the time 60 epochs of iHarmony4 (65,742 pairs) would take,

for the configured network and, in the same run, the plain ResUNet (no S²AM, no style
fusion, ``w_hcl = 0``), so that the cost of the paper's additions is a ratio.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from typing import Any

import torch

from ..data.synth import FAMILIES
from ..device import resolve_device
from ..model import count_params, forward_flops
from ..provenance import device_name
from .config import TrainConfig, get_config
from .engine import amp_dtype, build_objective, train_step
from .sources import TensorSource

__all__ = [
    "PEAK_TFLOPS",
    "IHD_TRAIN_PAIRS",
    "bench_train",
    "plain_variant",
    "random_photos",
]

#: measured bf16 dense matrix peak of an H100/H200 (TFLOP/s), the MFU denominator
PEAK_TFLOPS = 790.0
#: training pairs of iHarmony4 (for the implied 60-epoch time)
IHD_TRAIN_PAIRS = 65742


def plain_variant(cfg: TrainConfig) -> TrainConfig:
    """The plain ResUNet of ``cfg``: no fusion, no S²AM, no L_HCL (``w_hcl = 0``)."""
    return dataclasses.replace(
        cfg,
        name=f"{cfg.name}-plain",
        model=dataclasses.replace(cfg.model, fusion="none", use_s2am=False),
        loss=dataclasses.replace(cfg.loss, w_hcl=0.0),
    )


def random_photos(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` smooth random uint8 photos ``(n,3,S,S)`` and rectangle masks ``(n,1,S,S)``.

    Photos are low-frequency noise (bilinearly upsampled 8x8) so that synthesis statistics
    are image-like; each mask is one rectangle covering 10-50 % of the image.
    """
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    img = torch.nn.functional.interpolate(
        low, size=(size, size), mode="bilinear", align_corners=False
    )
    images = (img * 255).round().to(torch.uint8)
    masks = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    for i in range(n):
        side = torch.randint(size // 3, (7 * size) // 10 + 1, (2,), generator=g).tolist()
        y = int(torch.randint(0, size - side[0] + 1, (1,), generator=g))
        x = int(torch.randint(0, size - side[1] + 1, (1,), generator=g))
        masks[i, :, y : y + side[0], x : x + side[1]] = 1
    return images, masks


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _bench_one(
    cfg: TrainConfig, dev: torch.device, steps: int, warmup: int, windows: int
) -> dict[str, Any]:
    t = build_objective(cfg, dev)  # the engine's own network, loss, AdamW and step
    fwd = forward_flops(t.net, size=cfg.crop_size)
    images, masks = random_photos(max(2 * cfg.batch_size, 16), cfg.photo_size)
    src = TensorSource(
        images.to(dev), masks.to(dev), None,
        batch_size=cfg.batch_size, crop_size=cfg.crop_size, hflip=cfg.hflip,
        families=cfg.families or tuple(FAMILIES), seed=cfg.seed,
    )  # fmt: skip

    def step(i: int) -> None:
        train_step(t, src.batch(i), cfg.lr, torch.Generator(device=dev).manual_seed(i))

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    _sync(dev)
    warm_s = time.perf_counter() - t0
    rates = []
    k = warmup
    for _ in range(windows):
        _sync(dev)
        tw = time.perf_counter()
        for _ in range(steps):
            step(k)
            k += 1
        _sync(dev)
        rates.append(steps * cfg.batch_size / (time.perf_counter() - tw))
    ips = statistics.median(rates)
    achieved = 3 * fwd * ips / 1e12
    return {
        "config": cfg.name,
        "params_m": round(count_params(t.net) / 1e6, 3),
        "batch": cfg.batch_size,
        "size": cfg.crop_size,
        "precision": "bf16" if amp_dtype(cfg, dev) else "fp32",
        "channels_last": t.channels_last,
        "compile": cfg.compile,
        "img_per_s": round(ips, 3),
        "img_per_s_windows": [round(r, 3) for r in rates],
        "fwd_flops_per_img": int(fwd),
        "fwd_gflops_per_img": _sig(fwd / 1e9),
        "achieved_tflops": _sig(achieved),
        "mfu": _sig(achieved / PEAK_TFLOPS),
        "epochs60_ihd_hours": _sig(60 * IHD_TRAIN_PAIRS / ips / 3600),
        "warmup_s": round(warm_s, 2),
        "peak_mem_mb": _peak_mem_mb(dev),
    }


def _sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (figures span 1e-6 .. 1e3)."""
    return float(f"{x:.{digits}g}")


def _peak_mem_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # process peak RSS


def bench_train(
    config: str = "paper",
    batch: int = 8,
    *,
    compile: bool = False,
    device: str | None = None,
    steps: int = 10,
    warmup: int = 3,
    windows: int = 3,
    precision: str | None = None,
    channels_last: str | None = None,
    size: int | None = None,
    plain: bool = True,
) -> dict[str, Any]:
    """Time training steps of ``config`` and (``plain``) of its plain ResUNet variant.

    Args:
        config: a name in :data:`rharm_lib.train.config.TRAIN_CONFIGS`.
        batch: batch size.
        compile: ``torch.compile`` the network.
        device: ``auto`` / ``cpu`` / ``cuda``.
        steps, warmup, windows: timed steps per window, untimed warm-up steps, windows
            (the median window rate is reported).
        precision, channels_last: override the config (``fp32``/``bf16``/``auto``,
            ``on``/``off``/``auto``); e.g. ``precision="fp32", channels_last="off"`` is the
            eager fp32 baseline.
        size: crop side (default: the config's).
        plain: also measure the plain ResUNet.

    Returns:
        ``{"device", "torch", "peak_tflops", "model": {...}, "plain": {...}, "cost_ratio"}``
        with the fields listed in the module docstring.
    """
    dev = resolve_device(device)
    over: dict[str, Any] = {
        "batch_size": batch,
        "compile": compile,
        "precision": precision,
        "channels_last": channels_last,
    }
    if size is not None:
        over.update(crop_size=size, photo_size=size)
    cfg = get_config(config, **over)
    out: dict[str, Any] = {
        "device": device_name(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peak_tflops": PEAK_TFLOPS,
        "model": _bench_one(cfg, dev, steps, warmup, windows),
    }
    if plain:
        out["plain"] = _bench_one(plain_variant(cfg), dev, steps, warmup, windows)
        out["cost_ratio"] = round(out["plain"]["img_per_s"] / out["model"]["img_per_s"], 3)
    return out
