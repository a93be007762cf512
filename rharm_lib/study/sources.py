"""Where the study's data comes from, per profile: benchmark, training photos, high-resolution
composites (Table IV analogue) and real composites (Figs. 5/6).

All images are NumPy uint8 sRGB ``(H,W,3)``; masks uint8 ``(H,W)`` in ``{0,1}``; samples use
the reader vocabulary ``{"composite","mask","target","name","subset"}`` (``target`` is
``None`` for real composites).

Decisions:

- *High-resolution composites* (Table IV analogue). Each photo is resized so its long side
  is the evaluation size (PIL bicubic; the mask by the area rule then ``>= 0.5``, the rule
  of :func:`rharm_lib.data.imageio.resize_mask`, also for the reference region), and the composite is synthesised *at that
  size* with a generator seeded per photo, so the 256, 512 and 1024 versions of one photo
  share the same appearance change and have a background bit-identical to the photo. The
  family cycles through :data:`~rharm_lib.data.synth.FAMILIES` over the photos; the
  reference region of ``transfer``/``histogram`` is the next *different* photo's. Masks come from
  :func:`rharm_lib.data.regions.region_mask` computed once per photo at
  :data:`MASK_LONG_SIDE` pixels (object-like regions do not need more detail) and resized
  with the mask rule. In ``ci`` the photos are the built-in test photos (square, upsampled:
  a smoke test of the path, not a high-resolution result) with their committed masks.
- *Real composites*: grouped by their name's prefix before the first ``_`` (``lalonde``,
  ``dih``, ``libcom``, ``inr``), the first ``per_source`` in name order. When the folder is
  absent the study falls back to the benchmark's composites and says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.benchmark import BENCHMARK_VERSION
from ..data.ihd import IHDDataset
from ..data.imageio import load_rgb, resize_mask, resize_rgb
from ..data.photos import load_photos
from ..data.real import RealCompositeDataset
from ..data.regions import region_mask
from ..data.resolve import resolve_data
from ..data.synth import FAMILIES, synthesize
from ..errors import RharmInputError
from ..paths import REPO_ROOT, data_root
from ..seed import make_generator
from ..train import config_to_dict, get_config, train
from ..train.sources import eval_dataset

__all__ = [
    "MASK_LONG_SIDE",
    "benchmark_dataset",
    "benchmark_version",
    "study_train_config",
    "study_run_dir",
    "config_run_dir",
    "study_checkpoint",
    "train_study_run",
    "training_minutes",
    "train_source",
    "resize_long_side",
    "highres_photos",
    "highres_composites",
    "real_composites",
]

#: long side at which the high-resolution photos' region masks are computed
MASK_LONG_SIDE = 512


def benchmark_dataset(kind: str, limit: int | None = None) -> IHDDataset:
    """The profile's fixed test benchmark, the one the training engine evaluates on.

    Args:
        kind: ``"builtin"`` (:func:`~rharm_lib.data.benchmark.ensure_builtin_benchmark`) or
            ``"lalonde"`` (the lalonde test split of ``data_root()/lalonde`` made into a
            benchmark with seed 0, written once into the cache by
            :func:`rharm_lib.train.sources.eval_dataset`).
        limit: keep ``limit`` samples spread evenly over the list (``None`` = all).

    Returns:
        an :class:`~rharm_lib.data.ihd.IHDDataset` (with or without ``limit``: samples by
        index, ``.items`` for the file records).
    """

    if kind not in ("builtin", "lalonde"):
        raise RharmInputError(f"unknown benchmark {kind!r}; expected 'builtin' or 'lalonde'")
    ds, _ = eval_dataset(resolve_data(train_source(kind)))
    if limit is None or limit >= len(ds):
        return ds
    idx = np.linspace(0, len(ds) - 1, limit).round().astype(int)
    return ds.select(idx.tolist())


def benchmark_version(kind: str) -> int:
    """The sampler version of the profile's benchmark (``BENCHMARK_VERSION`` of
    :mod:`rharm_lib.data.benchmark`; a changed sampler builds, caches and names a new one)."""
    if kind not in ("builtin", "lalonde"):
        raise RharmInputError(f"unknown benchmark {kind!r}; expected 'builtin' or 'lalonde'")
    return BENCHMARK_VERSION


def study_train_config(profile, seed: int | None = None):
    """The :class:`~rharm_lib.train.TrainConfig` of a profile's training notebook.

    The profile's training config (``ci``/``cpu``/``paper``) with its steps, batch size,
    sizes, evaluation interval and size, and ``seed`` (default: the profile's first seed).
    """

    return get_config(
        profile.train_config,
        steps=profile.train_steps,
        batch_size=profile.batch_size,
        photo_size=profile.photo_size,
        crop_size=profile.crop_size,
        eval_every=profile.eval_every,
        eval_max_images=profile.train_eval_images,
        seed=profile.seeds[0] if seed is None else seed,
    )


def study_run_dir(profile, seed: int | None = None) -> Path:
    """The training run of a profile and seed: ``<repo>/runs/study-<profile>-<hash>``
    (git-ignored).

    ``<hash>`` (12 hex digits) hashes the training config (seed included) and the kind of
    data source (``builtin``/``lalonde``, not its path, so a clone elsewhere finds the same
    folder name), so a changed profile trains anew in a new folder while an unchanged one
    reuses its finished run.
    """
    return config_run_dir(
        study_train_config(profile, seed), profile.train_source, f"study-{profile.name}"
    )


def config_run_dir(cfg, train_source_kind: str, prefix: str) -> Path:
    """``<repo>/runs/<prefix>-<hash>``: ``<hash>`` (12 hex digits of SHA-256) of the
    :class:`~rharm_lib.train.TrainConfig` (seed included) and the *kind* of data source
    (``builtin``/``lalonde``, not its path), so that a changed config trains anew in a new
    folder, an unchanged one reuses its finished run, and a clone elsewhere finds the same
    name. Two ablation families that ask for the same config share one run."""
    key = json.dumps(
        {"config": config_to_dict(cfg), "data": train_source_kind}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return REPO_ROOT / "runs" / f"{prefix}-{digest}"


def study_checkpoint(profile, seed: int | None = None) -> Path:
    """The checkpoint notebook 02 trained; :class:`RharmInputError` if it is missing."""
    run = study_run_dir(profile, seed)
    ckpt = run / "checkpoints" / "last.pt"
    if not (run / "summary.json").is_file() or not ckpt.is_file():
        raise RharmInputError(
            f"no finished training run at {run}; run notebook 02 first: "
            f"rharm study --profile {profile.name} --only 02"
        )
    return ckpt


def training_minutes(profile, seed: int) -> float:
    """Wall time of the training loop of a finished study run (its ``summary.json``), in
    minutes: what the run took when it was trained, also when it is now reused."""
    path = study_run_dir(profile, seed) / "summary.json"
    if not path.is_file():
        raise RharmInputError(f"no finished training run at {path.parent}")
    return float(json.loads(path.read_text())["result"]["wall_s"]) / 60


def train_study_run(profile, seed: int, device: str = "auto", progress: bool | None = None):
    """Train (or resume, or reuse when finished) the study run of ``profile`` and ``seed``.

    What notebook 02 calls for each of the profile's seeds, and what
    ``rharm study --profile P --train-seed S`` runs on its own (e.g. in the background).

    Returns:
        the :class:`~rharm_lib.train.TrainSummary`.
    """
    return train(
        study_train_config(profile, seed),
        train_source(profile.train_source),
        study_run_dir(profile, seed),
        resume=True,
        reuse=True,
        device=device,
        progress=progress,
    )


def train_source(kind: str) -> str:
    """The ``source`` argument of the training engine for a profile's ``train_source``
    (``"builtin"`` or the lalonde folder found by :func:`rharm_lib.data.resolve.resolve_data`)."""
    if kind not in ("builtin", "lalonde"):
        raise RharmInputError(f"unknown training source {kind!r}; expected 'builtin' or 'lalonde'")
    return resolve_data(kind).location


def resize_long_side(image: np.ndarray, mask: np.ndarray | None, long_side: int):
    """Resize so the long side is ``long_side`` (aspect kept, sides rounded).

    The image with PIL bicubic, the mask by the area rule then ``>= 0.5`` (stays {0,1}):
    :func:`rharm_lib.data.imageio.resize_rgb` / :func:`~rharm_lib.data.imageio.resize_mask`.

    Returns:
        ``(image (h,w,3) uint8, mask (h,w) uint8 or None)``.
    """
    h, w = image.shape[:2]
    s = long_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    if size == (h, w):
        return image, mask
    return resize_rgb(image, size), (None if mask is None else resize_mask(mask, size))


def highres_photos(
    kind: str, count: int, seed: int = 0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Photos and region masks for the Table IV analogue.

    Args:
        kind: ``"highres"`` (``data_root()/highres/*.jpg``, sorted by name; masks from
            :func:`~rharm_lib.data.regions.region_mask`) or ``"builtin"`` (the built-in test
            photos at 1024x1024 with their committed masks).
        count: the first ``count`` photos.
        seed: the region-mask seed.

    Returns:
        ``[(name, image uint8 (H,W,3), mask uint8 (h,w) {0,1} at MASK_LONG_SIDE)]``.
    """

    if kind == "highres":
        folder = data_root() / "highres"
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise RharmInputError(f"no high-resolution photos (*.jpg) in {folder}; set RHARM_DATA")

        items = [(p.stem, load_rgb(p)) for p in files[:count]]
    elif kind == "builtin":
        # the built-in photos with their committed, checked masks (several masks per photo)

        ps = load_photos("builtin", "test", size=1024)
        out = []
        for i, n in enumerate(ps.names[:count]):
            img = ps.images[i].permute(1, 2, 0).numpy()
            _, m = resize_long_side(img, ps.masks[i, 0].numpy(), MASK_LONG_SIDE)
            out.append((n, img, m))
        return out
    else:
        raise RharmInputError(
            f"unknown high-resolution source {kind!r}; expected 'highres' or 'builtin'"
        )
    out = []
    for name, img in items:
        small, _ = resize_long_side(img, None, MASK_LONG_SIDE)
        out.append((name, img, region_mask(small, seed=seed)))
    return out


def _reference_index(sized: Sequence[tuple[str, np.ndarray, np.ndarray]], i: int) -> int:
    """The next photo after ``i`` (cyclically) whose pixels differ from photo ``i``'s.

    The built-in set lists one photo once per mask; a region of the very same photo would
    make a weak (sometimes null) colour transfer. Falls back to ``i`` itself.
    """
    n = len(sized)
    for d in range(1, n):
        j = (i + d) % n
        a, b = sized[i][1], sized[j][1]
        if a.shape != b.shape or not np.array_equal(a, b):
            return j
    return i


def _float_image(img: np.ndarray) -> torch.Tensor:
    """``(H,W,3)`` uint8 -> ``(1,3,H,W)`` float32 in [0,1] (a copy)."""
    return torch.from_numpy(np.array(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def highres_composites(
    photos: Sequence[tuple[str, np.ndarray, np.ndarray]], long_side: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Composites of ``photos`` at long side ``long_side`` (see the module docstring).

    Returns:
        reader samples with ``subset`` = the family, ``name`` = the photo's name.
    """

    sized = []
    for name, img, mask in photos:
        im, _ = resize_long_side(img, None, long_side)
        sized.append((name, im, resize_mask(mask, im.shape[:2])))
    samples = []
    for i, (name, im, m) in enumerate(sized):
        family = FAMILIES[i % len(FAMILIES)]
        _, rim, rm = sized[_reference_index(sized, i)]
        t = _float_image(im)
        mt = torch.from_numpy(m.astype(np.float32))[None, None]
        r = _float_image(resize_rgb(rim, im.shape[:2]))
        rmt = torch.from_numpy(resize_mask(rm, im.shape[:2]).astype(np.float32))[None, None]
        if rmt.sum() == 0:  # a reference needs a region; fall back to the photo's own
            rmt = mt
        comp = synthesize(
            t, mt, family, make_generator(seed * 100_003 + i), reference=r, ref_mask=rmt
        )
        comp8 = (comp[0].permute(1, 2, 0) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        samples.append(
            {"composite": comp8, "mask": m, "target": im, "name": name, "subset": family}
        )
    return samples


def real_composites(
    per_source: int, root: str | Path | None = None
) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Real composites (no ground truth) grouped by source prefix.

    Args:
        per_source: how many per source (first in name order).
        root: default ``data_root()/real_composites``.

    Returns:
        ``({source: [sample, ...]}, note)``; when the folder is absent, ``({}, note)`` with a
        note saying so (the notebook then falls back to the benchmark's composites).
    """
    folder = Path(root) if root is not None else data_root() / "real_composites"
    if not (folder / "list.txt").is_file() and not (folder / "composite_images").is_dir():
        return {}, f"real composites not found at {folder}; showing benchmark composites instead"

    ds = RealCompositeDataset(folder)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(ds.items):  # items[i][0] is the composite's file stem
        groups.setdefault(item[0].split("_", 1)[0], []).append(i)
    out = {}
    for src in sorted(groups):
        idx = sorted(groups[src], key=lambda j: ds.items[j][0])[:per_source]
        out[src] = [ds[j] for j in idx]
    return out, f"real composites from {folder}: " + ", ".join(
        f"{k} ({len(v)})" for k, v in groups.items()
    )
