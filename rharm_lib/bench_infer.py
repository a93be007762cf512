"""Inference benchmarks of the full-resolution modes (issue 11): ``rharm bench infer``.

- :func:`bench_infer`: latency (median of repeats) and peak RSS of
  :meth:`Harmonizer.harmonize` for each (size, mode), **each configuration in a fresh
  subprocess** (``python -m rharm_lib.bench_infer``), so that one configuration's peak
  memory cannot hide another's. Timing covers ``harmonize`` on uint8 arrays already in
  memory (downsampling, network, lift / tiles, rounding), not image file I/O. The network
  is, by default, the package's shipped weights (:mod:`rharm_lib.weights`, the ``cpu``
  model the issue's bars are stated for); ``config`` (fresh weights of a model config) or
  ``checkpoint`` (a training run's) instead.
- :func:`quality_table`: fast and tiled modes against native mode and against the ground
  truth on composites with a target (e.g. the Table IV analogue's high-resolution
  composites, :func:`rharm_lib.study.sources.highres_composites`): PSNR, fMSE and a halo
  metric (MSE in a band of ``band`` pixels inside the mask boundary).

Error conventions are :mod:`rharm_lib.metrics`' (0–255 scale, float64, PSNR capped at
100 dB, fMSE = ``sum m (p-t)^2 / (3 sum m)``, image-weighted means); SSIM is left out so that
2048² images stay cheap.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .device import resolve_device
from .errors import RharmInputError
from .fullres import MODES, boundary_band
from .inference import Harmonizer
from .metrics import PSNR_CAP
from .weights import shipped_weights_path

__all__ = [
    "parse_size",
    "SHIPPED",
    "resolve_network",
    "BARS",
    "check_bars",
    "synthetic_pair",
    "bench_infer",
    "run_one",
    "DEFAULT_VARIANTS",
    "quality_table",
    "summarize_quality",
]

#: the ``checkpoint`` value that names the package's shipped weights
SHIPPED = "shipped"

#: default cap on native mode's pixels in :func:`bench_infer` (6000x4000 native needs ~10 GB)
MAX_NATIVE_PIXELS = 2048 * 2048


def parse_size(text: str | int) -> tuple[int, int]:
    """``"2048"`` -> ``(2048, 2048)``; ``"6000x4000"`` (W x H) -> ``(4000, 6000)`` = ``(H, W)``."""
    s = str(text).lower()
    try:
        if "x" in s:
            w, h = (int(v) for v in s.split("x"))
        else:
            w = h = int(s)
    except ValueError:
        raise RharmInputError(
            f"bad size {text!r}; expected N or WxH, e.g. 2048 or 6000x4000"
        ) from None
    if h < 1 or w < 1:
        raise RharmInputError(f"bad size {text!r}: sides must be >= 1")
    return h, w


def synthetic_pair(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random photo ``(h,w,3)`` uint8 and a mask ``(h,w)`` uint8 {0,1} (an ellipse
    covering about a quarter of the image), made without any full-resolution float buffer."""
    rng = np.random.default_rng(seed)
    low = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((w, h), Image.BILINEAR))
    noise = rng.integers(0, 9, (min(h, 64), min(w, 64), 3), dtype=np.uint8)
    img = img.copy()
    img[: noise.shape[0], : noise.shape[1]] += noise  # a little texture in one corner
    yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5 - h / 2) / max(h * 0.3, 0.5)
    xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5 - w / 2) / max(w * 0.3, 0.5)
    mask = ((yy**2 + xx**2) <= 1.0).astype(np.uint8)
    return img, mask


def _cpu_s() -> float:
    """User + system CPU seconds of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def resolve_network(
    config: str | None = None, checkpoint: str | os.PathLike | None = None
) -> tuple[str | None, str | None, str]:
    """Which network a benchmark runs: ``(config, checkpoint, label)``.

    ``checkpoint`` wins; ``checkpoint="shipped"`` or neither argument means the shipped
    weights (:func:`rharm_lib.weights.shipped_weights_path`); ``config`` alone means fresh
    weights of that model config (latency hardly depends on the weights).

    Returns:
        ``(config or None, checkpoint path or None, label)`` with ``label`` ``"shipped"``,
        ``"checkpoint"`` or ``"config"``.

    Raises:
        RharmInputError: the shipped weights or the checkpoint file are missing.
    """
    if checkpoint is None and config is not None:
        return config, None, "config"
    if checkpoint is None or str(checkpoint) == SHIPPED:
        path = shipped_weights_path()
        if not path.is_file():
            raise RharmInputError(
                f"no shipped weights at {path}; produce them with: rharm study --profile cpu "
                "--only 02, or pass --config NAME / --checkpoint PATH"
            )
        return None, str(path), SHIPPED
    if not os.path.isfile(checkpoint):
        raise RharmInputError(f"{checkpoint}: no such checkpoint file")
    return None, str(checkpoint), "checkpoint"


#: issue 11's latency/memory bars (2-core CPU, shipped ``cpu`` weights, 2 threads):
#: ``(size, mode, field, limit)``; a row meets a bar when ``row[field] <= limit``
BARS: tuple[tuple[str, str, str, float], ...] = (
    ("6000x4000", "fast", "median_ms", 10_000.0),
    ("6000x4000", "fast", "peak_rss_mb", 1536.0),
    ("2048x2048", "fast", "median_ms", 3_000.0),
)


def check_bars(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Read measured rows against :data:`BARS`.

    Returns:
        one dict per bar whose (size, mode) was measured: ``size, mode, field, limit,
        value, met`` (``met`` compares the median wall time, so it is a statement about
        the machine's load at the time as much as about the code).
    """
    out = []
    for size, mode, field, limit in BARS:
        for r in rows:
            if r.get("size") == size and r.get("mode") == mode and field in r:
                v = float(r[field])
                out.append({"size": size, "mode": mode, "field": field, "limit": limit,
                            "value": v, "met": v <= limit})  # fmt: skip
    return out


def _make_harmonizer(
    config: str, checkpoint: str | None, device: str | None, precision: str
) -> Harmonizer:
    from .model import CONFIGS, build_model

    dev = resolve_device(device)
    if checkpoint:
        return Harmonizer.from_checkpoint(checkpoint, device=dev, precision=precision)
    if config not in CONFIGS:
        raise RharmInputError(f"unknown model config {config!r}; choose from {sorted(CONFIGS)}")
    torch.manual_seed(0)
    return Harmonizer(build_model(CONFIGS[config]), device=dev, precision=precision)


def run_one(
    config: str,
    size: tuple[int, int],
    mode: str,
    *,
    checkpoint: str | None = None,
    device: str | None = None,
    repeats: int = 3,
    warmup: int = 1,
    budget_s: float | None = None,
    precision: str = "auto",
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``harmonize`` of one synthetic ``size`` = ``(H, W)`` image in ``mode`` (this process).

    ``warmup`` untimed runs, then up to ``repeats`` timed runs; once a timed run has been
    made, no further run starts after ``budget_s`` seconds (``runs`` says how many were
    timed).

    Returns:
        ``{"size", "mode", "median_ms", "min_ms", "cpu_ms", "runs", "peak_rss_mb",
        "rss_before_mb", "image_mb"}``: wall-clock median and minimum, the median CPU time (user + system,
        all threads: less sensitive than wall time to other load on a shared machine),
        this process's peak RSS (meaningful only in a fresh process: :func:`bench_infer`
        runs each configuration in its own), the RSS before the first ``harmonize`` and the
        image's own uint8 size.
    """
    h = _make_harmonizer(config, checkpoint, device, precision)
    comp, mask = synthetic_pair(*size)
    opts = dict(options or {})
    rss0 = _peak_rss_mb()
    dev = h.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu = [], []
    start = time.perf_counter()
    for i in range(repeats + warmup):
        if times and budget_s is not None and time.perf_counter() - start > budget_s:
            break  # a slow configuration: fewer repeats (reported in "runs")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t, c = time.perf_counter(), _cpu_s()
        h.harmonize(comp, mask, mode=mode, **opts)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
            cpu.append((_cpu_s() - c) * 1e3)
    row = {
        "size": f"{size[1]}x{size[0]}",
        "mode": mode,
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "cpu_ms": round(statistics.median(cpu), 1),
        "runs": len(times),
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss0,
        "image_mb": round(comp.nbytes / 2**20, 1),
    }
    if dev.type == "cuda":
        row["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return row


def bench_infer(
    config: str | None = None,
    sizes: Sequence[str | int] = ("1024", "2048", "6000x4000"),
    *,
    modes: Sequence[str] = MODES,
    checkpoint: str | None = None,
    device: str | None = None,
    repeats: int = 3,
    warmup: int = 1,
    budget_s: float | None = None,
    precision: str = "auto",
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    max_native_pixels: int = MAX_NATIVE_PIXELS,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """Latency and peak RSS of each (size, mode), each in a fresh subprocess.

    Args:
        config: model config of a freshly initialised network (latency hardly depends on
            the weights); ignored when ``checkpoint`` is given.
        sizes: ``N`` (square) or ``WxH`` strings.
        modes: a subset of :data:`rharm_lib.fullres.MODES`.
        checkpoint: a checkpoint of ``rharm train``, or ``"shipped"``; with neither this
            nor ``config``, the shipped weights (:func:`resolve_network`).
        device, precision: as for :class:`~rharm_lib.inference.Harmonizer`.
        repeats, warmup, budget_s: timed and untimed runs per configuration, and the
            time after which no further timed run starts (:func:`run_one`).
        threads: ``torch.set_num_threads`` in the child (default: torch's choice).
        options: :class:`~rharm_lib.fullres.FullResConfig` fields for every mode
            (e.g. ``{"working_size": 512}``).
        max_native_pixels: native mode is skipped (row with ``skipped``) above this.
        timeout_s: per configuration.

    Returns:
        ``{"config", "checkpoint", "weights" ("shipped"/"checkpoint"/"config"), "device",
        "threads", "repeats", "options", "rows":
        [{"size", "mode", "median_ms", "min_ms", "cpu_ms", "peak_rss_mb", "rss_before_mb",
        "image_mb"} | {"size", "mode", "skipped"}], "bars": check_bars(rows)}`` (see
        :func:`run_one`, :func:`check_bars`).
    """
    for m in modes:
        if m not in MODES:
            raise RharmInputError(f"unknown mode {m!r}; expected one of {MODES}")
    config, checkpoint, weights = resolve_network(config, checkpoint)
    rows = []
    env = dict(os.environ)
    for s in sizes:
        hw = parse_size(s)
        for mode in modes:
            if mode == "native" and hw[0] * hw[1] > max_native_pixels:
                rows.append(
                    {
                        "size": f"{hw[1]}x{hw[0]}",
                        "mode": mode,
                        "skipped": f"more than max_native_pixels={max_native_pixels}",
                    }
                )
                continue
            job = {
                "config": config,
                "size": list(hw),
                "mode": mode,
                "checkpoint": checkpoint,
                "device": device,
                "repeats": repeats,
                "warmup": warmup,
                "budget_s": budget_s,
                "precision": precision,
                "threads": threads,
                "options": dict(options or {}),
            }
            proc = subprocess.run(
                [sys.executable, "-m", "rharm_lib.bench_infer", json.dumps(job)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout_s,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"bench child failed for {job}: {proc.stderr.strip().splitlines()[-1:]}"
                )
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    from .provenance import device_name

    return {
        "config": None if checkpoint else config,
        "checkpoint": checkpoint,
        "weights": weights,
        "device": device_name(resolve_device(device)),
        "threads": threads if threads else torch.get_num_threads(),
        "repeats": repeats,
        "warmup": warmup,
        "budget_s": budget_s,
        "precision": precision,
        "options": dict(options or {}),
        "rows": rows,
        "bars": check_bars(rows),
    }


# --- quality: fast / tiled against native ---------------------------------------------

#: label -> ``harmonize`` keyword arguments of the variants :func:`quality_table` compares
DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "fast@256": {"mode": "fast", "working_size": 256},
    "fast@512": {"mode": "fast", "working_size": 512},
    "fast@1024": {"mode": "fast", "working_size": 1024},
    "tiled": {"mode": "tiled"},
}


def _errors(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, band: np.ndarray) -> dict:
    """MSE, PSNR, fMSE (metrics.py conventions) and the band MSE of ``pred`` vs ``ref``."""
    sq = (pred.astype(np.float64) - ref.astype(np.float64)) ** 2
    mse = float(sq.mean())
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))
    m = mask > 0
    fmse = float(sq[m].sum() / (3.0 * m.sum())) if m.any() else float("nan")
    bmse = float(sq[band].mean()) if band.any() else float("nan")
    return {"mse": mse, "psnr": psnr, "fmse": fmse, "band_mse": bmse}


def quality_table(
    samples: Sequence[Mapping[str, Any]],
    harmonizer: Harmonizer,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    band: int = 4,
) -> pd.DataFrame:
    """Per-image errors of native mode and of each variant, against the target and native.

    Args:
        samples: reader samples (``composite`` (H,W,3) uint8, ``mask`` (H,W) uint8 {0,1},
            ``target`` (H,W,3) uint8, ``name``).
        harmonizer: the network.
        variants: label -> :meth:`Harmonizer.harmonize` keyword arguments
            (default :data:`DEFAULT_VARIANTS`). ``native`` (the reference) and
            ``composite`` (the input itself, for scale) are always included.
        band: width (pixels) of the boundary band of the halo metric
            (:func:`rharm_lib.fullres.boundary_band`).

    Returns:
        one row per (image, variant): ``name, variant, height, width, seconds, mse, psnr,
        fmse, band_mse`` (vs target) and ``psnr_vs_native, fmse_vs_native,
        band_mse_vs_native``.
    """
    variants = dict(DEFAULT_VARIANTS if variants is None else variants)
    rows = []
    for s in samples:
        comp, mask, target = s["composite"], s["mask"], s["target"]
        if target is None:
            raise RharmInputError(f"sample {s.get('name')!r} has no target")
        bnd = boundary_band(mask, band)
        t = time.perf_counter()
        native = harmonizer.harmonize(comp, mask, mode="native")
        secs = time.perf_counter() - t
        outs = {"composite": (comp, 0.0), "native": (native, secs)}
        for label, kw in variants.items():
            t = time.perf_counter()
            out = harmonizer.harmonize(comp, mask, **kw)
            outs[label] = (out, time.perf_counter() - t)
        for label, (out, secs) in outs.items():
            e = _errors(out, target, mask, bnd)
            en = _errors(out, native, mask, bnd)
            rows.append(
                {
                    "name": s.get("name"),
                    "variant": label,
                    "height": int(comp.shape[0]),
                    "width": int(comp.shape[1]),
                    "seconds": secs,
                    **e,
                    "psnr_vs_native": en["psnr"],
                    "fmse_vs_native": en["fmse"],
                    "band_mse_vs_native": en["band_mse"],
                }
            )
    return pd.DataFrame(rows)


def summarize_quality(per_image: pd.DataFrame) -> pd.DataFrame:
    """Image-weighted means per variant, and the differences to native.

    Returns:
        one row per variant (``composite``, ``native``, then the others): ``variant, n, seconds, psnr, fmse, band_mse,
        psnr_vs_native, fmse_vs_native, band_mse_vs_native, dpsnr`` (variant − native PSNR vs
        target, dB), ``fmse_ratio`` (variant / native mean fMSE vs target).
    """
    cols = ["seconds", "mse", "psnr", "fmse", "band_mse", "psnr_vs_native", "fmse_vs_native"]
    cols += ["band_mse_vs_native"]
    order = list(dict.fromkeys(per_image["variant"]))
    g = per_image.groupby("variant", sort=False)
    out = g[cols].mean().reindex(order)
    out.insert(0, "n", g.size().reindex(order))
    nat = out.loc["native"]
    out["dpsnr"] = out["psnr"] - nat["psnr"]
    out["fmse_ratio"] = out["fmse"] / nat["fmse"]
    out["seconds"] = per_image.groupby("variant", sort=False)["seconds"].median().reindex(order)
    return out.reset_index()


def _child(argv: list[str]) -> int:
    job = json.loads(argv[0])
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    row = run_one(
        job["config"],
        tuple(job["size"]),
        job["mode"],
        checkpoint=job.get("checkpoint"),
        device=job.get("device"),
        repeats=int(job["repeats"]),
        warmup=int(job.get("warmup", 1)),
        budget_s=job.get("budget_s"),
        precision=job.get("precision", "auto"),
        options=job.get("options"),
    )
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="one bench_infer configuration (internal)")
    p.add_argument("job")
    sys.exit(_child([p.parse_args().job]))
