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
- *The ``lalonde-subset`` kind* (reduced runs, :func:`rharm_lib.study.profiles.reduced`):
  a lalonde-layout folder holding copies of the first :data:`SUBSET_PHOTOS` photos of the
  lalonde train and test lists, written once into ``cache_root()/subsets`` by
  :func:`lalonde_subset`. Training, the benchmark (built from its test split like the full
  one, cached by its path) and the diagnosis then read it through the very code that reads
  the full lalonde folder, in seconds instead of minutes: the full lalonde benchmark takes
  minutes to build on a fresh machine and the training photos' rule masks are computed
  per photo size.
- *Real composites*: grouped by their name's prefix before the first ``_`` (``lalonde``,
  ``dih``, ``libcom``, ``inr``), the first ``per_source`` in name order. When the folder is
  absent the study falls back to the benchmark's composites and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.benchmark import BENCHMARK_VERSION
from ..data.ihd import IHDDataset
from ..data.imageio import load_rgb, resize_mask, resize_rgb
from ..data.photos import load_photos, read_lalonde
from ..data.real import RealCompositeDataset
from ..data.regions import region_mask
from ..data.resolve import resolve_data
from ..data.synth import FAMILIES, synthesize
from ..errors import RharmInputError
from ..outputs import tmp_sibling
from ..paths import cache_root, data_root
from ..seed import make_generator
from ..train import config_to_dict, get_config, train
from ..train.sources import eval_dataset
from ..weights import shipped_weights_path
from .outputs import runs_root

__all__ = [
    "MASK_LONG_SIDE",
    "SOURCE_KINDS",
    "REDUCED_SOURCES",
    "SUBSET_PHOTOS",
    "lalonde_subset",
    "shipped_weights_target",
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

#: the kinds of a profile's ``train_source`` and ``benchmark``
SOURCE_KINDS = ("builtin", "lalonde", "lalonde-subset")

#: kind of a profile -> kind of its reduced variant (:func:`rharm_lib.study.profiles.reduced`)
REDUCED_SOURCES = {
    "builtin": "builtin",
    "lalonde": "lalonde-subset",
    "lalonde-subset": "lalonde-subset",
}

#: ``(train, test)``: photos of the ``lalonde-subset`` kind, the first of each split list
#: (16 photos = 8 batches of 2; 4 test photos = 16 benchmark composites, 4 per family)
SUBSET_PHOTOS = (16, 4)


def _check_kind(kind: str, what: str) -> None:
    if kind not in SOURCE_KINDS:
        raise RharmInputError(
            f"unknown {what} {kind!r}; expected one of {', '.join(repr(k) for k in SOURCE_KINDS)}"
        )


def lalonde_subset(
    source: str | os.PathLike, train: int, test: int, out: str | os.PathLike | None = None
) -> Path:
    """A lalonde-layout folder with the first ``train`` / ``test`` photos of ``source``'s
    split lists (images and masks copied; ``train.txt``, ``test.txt``, ``index.csv``).

    Written once (into a temporary sibling, then renamed) and reused.

    Args:
        source: a lalonde-layout folder (``images/``, ``masks/``, ``train.txt``, ``test.txt``).
        train, test: photos taken from the head of each list (at least 1 each).
        out: default ``cache_root()/subsets/lalonde-<train>-<test>-<hash>``, the hash
            (12 hex digits) of the source's resolved path and the chosen ids.

    Returns:
        the folder.
    """
    src = Path(source)
    if train < 1 or test < 1:
        raise RharmInputError(f"a lalonde subset needs >= 1 photo per split, got {train}/{test}")
    ids = {split: read_lalonde(src, split)[:n] for split, n in (("train", train), ("test", test))}
    key = json.dumps({"source": src.resolve().as_posix(), "ids": ids}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    dest = (
        Path(out)
        if out is not None
        else cache_root() / "subsets" / f"lalonde-{train}-{test}-{digest}"
    )
    if (dest / "index.csv").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    for split, names in ids.items():
        for name in names:
            shutil.copyfile(src / "images" / f"{name}.jpg", tmp / "images" / f"{name}.jpg")
            shutil.copyfile(src / "masks" / f"{name}.png", tmp / "masks" / f"{name}.png")
        (tmp / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    # the source's index rows of the chosen ids (all its columns), else id and split only
    chosen = {n: split for split, names in ids.items() for n in names}
    index = src / "index.csv"
    if index.is_file():
        head, *rows = index.read_text().splitlines()
        rows = [r for r in rows if r.split(",", 1)[0] in chosen]
    else:
        head, rows = "id,split", [f"{n},{split}" for n, split in chosen.items()]
    (tmp / "index.csv").write_text("\n".join([head, *rows]) + "\n")
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / "index.csv").is_file():  # not another process finishing it first
            raise
    return dest


def shipped_weights_target(profile) -> Path:
    """Where notebook 02 writes a ``ship_weights`` profile's weights: the package's
    shipped file (:func:`rharm_lib.weights.shipped_weights_path`), or, for a reduced run,
    ``<runs_root()>/shipped/<the same name>`` (a reduced run never replaces the shipped
    weights)."""
    shipped = shipped_weights_path()
    return runs_root(True) / "shipped" / shipped.name if profile.reduced else shipped


def benchmark_dataset(kind: str, limit: int | None = None) -> IHDDataset:
    """The profile's fixed test benchmark, the one the training engine evaluates on.

    Args:
        kind: ``"builtin"`` (:func:`~rharm_lib.data.benchmark.ensure_builtin_benchmark`),
            ``"lalonde"`` (the lalonde test split of ``data_root()/lalonde`` made into a
            benchmark with seed 0, written once into the cache by
            :func:`rharm_lib.train.sources.eval_dataset`) or ``"lalonde-subset"`` (the
            same from the test photos of :func:`lalonde_subset`).
        limit: keep ``limit`` samples spread evenly over the list (``None`` = all).

    Returns:
        an :class:`~rharm_lib.data.ihd.IHDDataset` (with or without ``limit``: samples by
        index, ``.items`` for the file records).
    """

    _check_kind(kind, "benchmark")
    ds, _ = eval_dataset(resolve_data(train_source(kind)))
    if limit is None or limit >= len(ds):
        return ds
    idx = np.linspace(0, len(ds) - 1, limit).round().astype(int)
    return ds.select(idx.tolist())


def benchmark_version(kind: str) -> int:
    """The sampler version of the profile's benchmark (``BENCHMARK_VERSION`` of
    :mod:`rharm_lib.data.benchmark`; a changed sampler builds, caches and names a new one)."""
    _check_kind(kind, "benchmark")
    return BENCHMARK_VERSION


def study_train_config(profile, seed: int | None = None):
    """The :class:`~rharm_lib.train.TrainConfig` of a profile's training notebook.

    The profile's training config (``ci``/``cpu``/``paper``) with its steps, batch size,
    sizes, evaluation interval and size, ``compile`` when the profile sets it, and ``seed``
    (default: the profile's first seed).
    """

    return get_config(
        profile.train_config,
        steps=profile.train_steps,
        batch_size=profile.batch_size,
        photo_size=profile.photo_size,
        crop_size=profile.crop_size,
        eval_every=profile.eval_every,
        eval_max_images=profile.train_eval_images,
        compile=profile.compile,
        seed=profile.seeds[0] if seed is None else seed,
    )


def study_run_dir(profile, seed: int | None = None) -> Path:
    """The training run of a profile and seed: ``<runs_root()>/study-<profile>-<hash>``
    (:func:`rharm_lib.study.outputs.runs_root`: the repository's git-ignored ``runs/``
    unless the study's root is elsewhere).

    ``<hash>`` (12 hex digits) hashes the training config (seed included) and the kind of
    data source (``builtin``/``lalonde``, not its path, so a clone elsewhere finds the same
    folder name), so a changed profile trains anew in a new folder while an unchanged one
    reuses its finished run.
    """
    return config_run_dir(
        study_train_config(profile, seed),
        profile.train_source,
        f"study-{profile.name}",
        runs_root(profile.reduced),
    )


def config_run_dir(cfg, train_source_kind: str, prefix: str, runs: Path | None = None) -> Path:
    """``<runs_root()>/<prefix>-<hash>``: ``<hash>`` (12 hex digits of SHA-256) of the
    :class:`~rharm_lib.train.TrainConfig` (seed included) and the *kind* of data source
    (``builtin``/``lalonde``, not its path), so that a changed config trains anew in a new
    folder, an unchanged one reuses its finished run, and a clone elsewhere finds the same
    name. Two ablation families that ask for the same config share one run. ``runs``:
    default :func:`rharm_lib.study.outputs.runs_root`."""
    key = json.dumps(
        {"config": config_to_dict(cfg), "data": train_source_kind}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (runs_root() if runs is None else Path(runs)) / f"{prefix}-{digest}"


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
    (``"builtin"``, the lalonde folder found by :func:`rharm_lib.data.resolve.resolve_data`,
    or for ``"lalonde-subset"`` the :func:`lalonde_subset` of that folder)."""
    _check_kind(kind, "training source")
    if kind == "lalonde-subset":
        return str(lalonde_subset(resolve_data("lalonde").location, *SUBSET_PHOTOS))
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


def _at_most(sample: dict[str, Any], long_side: int | None) -> dict[str, Any]:
    """``sample`` with composite and mask resized to ``long_side`` if they are larger."""
    if long_side is None or max(sample["composite"].shape[:2]) <= long_side:
        return sample
    comp, mask = resize_long_side(sample["composite"], sample["mask"], long_side)
    return {**sample, "composite": comp, "mask": mask}


def real_composites(
    per_source: int, root: str | Path | None = None, long_side: int | None = None
) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Real composites (no ground truth) grouped by source prefix.

    Args:
        per_source: how many per source (first in name order).
        root: default ``data_root()/real_composites``.
        long_side: resize a composite (and its mask) whose long side is larger to this
            long side (:func:`resize_long_side`); ``None`` keeps every composite's own
            resolution (the full profiles).

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
        out[src] = [_at_most(ds[j], long_side) for j in idx]
    return out, f"real composites from {folder}: " + ", ".join(
        f"{k} ({len(v)})" for k, v in groups.items()
    )
