"""Training data sources: uint8 tensors resident on the training device.

Photos and masks (or iHarmony4 composite/real/mask triplets) are decoded **once** into
uint8 tensors and moved to the device. Each step then draws a batch entirely on the
device: indices from a per-epoch permutation, a random square crop and horizontal flip
(one gather), conversion to float, and, for photo sources, composite synthesis with
:func:`rharm_lib.data.synth.synthesize`. The GPU never waits for Python image decoding.

Randomness is counter-based: the generators of step ``s`` on process ``rank`` are seeded
from ``SeedSequence([seed, rank, s])`` and the epoch permutation from
``SeedSequence([seed, rank, epoch, 1])``. A batch is therefore a pure function of
(seed, rank, step), which makes resume exact without replaying anything, and makes the
data identical whatever the device.

Sharding (DDP): process ``rank`` of ``world`` uses the items ``rank, rank+world, ...``;
every process runs the same number of steps per epoch (that of the smallest shard).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batch import COMPOSITE, MASK, TARGET
from ..data import benchmark
from ..data.ihd import IHDDataset
from ..data.imageio import resize_pair
from ..data.mask_rule import MaskRuleConfig, with_rule_masks
from ..data.photos import load_photos
from ..data.photoset import PhotoSet
from ..data.resolve import SourceSpec
from ..data.synth import FAMILIES, SAMPLER_VERSION, synthesize
from ..errors import RharmInputError
from ..paths import cache_root, data_root

__all__ = [
    "TensorSource",
    "load_train_source",
    "eval_dataset",
    "step_seed",
]


def step_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (``np.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> 1)


class TensorSource:
    """A training set held as uint8 tensors on one device; draws batches by step number.

    Args:
        images: ``(N,3,S,S)`` uint8 sRGB, the real photos (ground truth ``target``).
        masks: ``(N,1,S,S)`` uint8 in ``{0,1}``.
        composites: ``(N,3,S,S)`` uint8 sRGB real composites (pairs), or ``None`` to
            synthesise composites each step.
        batch_size: per-process batch.
        crop_size: side of the random crop (``<= S``).
        hflip: random horizontal flips.
        families: synthesis families drawn uniformly per sample (photo sources).
        seed, rank, world: randomness and sharding (see the module docstring).
    """

    def __init__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        composites: torch.Tensor | None,
        *,
        batch_size: int,
        crop_size: int,
        hflip: bool,
        families: tuple[str, ...],
        seed: int,
        rank: int = 0,
        world: int = 1,
        photo_jitter: float = 0.0,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise RharmInputError(
                f"expected images uint8 (N,3,S,S), got {images.dtype} {tuple(images.shape)}"
            )
        n, _, h, w = images.shape
        if tuple(masks.shape) != (n, 1, h, w):
            raise RharmInputError(
                f"expected masks (N,1,H,W) = {(n, 1, h, w)}, got {tuple(masks.shape)}"
            )
        if composites is not None and composites.shape != images.shape:
            raise RharmInputError(
                f"composites {tuple(composites.shape)} do not match images {tuple(images.shape)}"
            )
        if crop_size > min(h, w):
            raise RharmInputError(f"crop_size {crop_size} exceeds the photo size {h}x{w}")
        if composites is None and not families:
            raise RharmInputError("a photo source needs at least one synthesis family")
        self.shard = torch.arange(rank, n, world)
        self.steps_per_epoch = (n // world) // batch_size
        if self.steps_per_epoch < 1:
            raise RharmInputError(
                f"{n} training items over {world} process(es) give less than one batch of {batch_size}"
            )
        self.images, self.masks, self.composites = images, masks, composites
        self.batch_size, self.crop_size, self.hflip = batch_size, crop_size, hflip
        self.families, self.seed, self.rank, self.world = tuple(families), seed, rank, world
        self.photo_jitter = float(photo_jitter)
        self._perm: tuple[int, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def indices(self, step: int) -> torch.Tensor:
        """The dataset indices (CPU int64, length ``batch_size``) of step ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(step_seed(self.seed, self.rank, epoch, 1))
            self._perm = (epoch, self.shard[torch.randperm(len(self.shard), generator=g)])
        return self._perm[1][pos * self.batch_size : (pos + 1) * self.batch_size]

    def batch(self, step: int) -> dict[str, Any]:
        """The batch of step ``step``.

        Returns:
            ``{"composite", "mask", "target"}``: float32 ``(B,3,c,c)`` / ``(B,1,c,c)`` /
            ``(B,3,c,c)`` on the source's device, sRGB in ``[0,1]``, mask in ``{0,1}``; plus
            ``"index"`` (CPU int64 dataset indices, for tests and logs).
        """
        dev = self.device
        s = step_seed(self.seed, self.rank, step)
        g = torch.Generator(device=dev).manual_seed(s)
        g_cpu = torch.Generator().manual_seed(s) if dev.type != "cpu" else g
        idx_cpu = self.indices(step)
        idx = idx_cpu.to(dev, non_blocking=True)
        b, c = idx.numel(), self.crop_size
        h, w = self.images.shape[-2:]
        oy = torch.randint(0, h - c + 1, (b,), generator=g, device=dev)
        ox = torch.randint(0, w - c + 1, (b,), generator=g, device=dev)
        ar = torch.arange(c, device=dev)
        iy, ix = oy[:, None] + ar, ox[:, None] + ar
        if self.hflip:
            flip = torch.rand(b, generator=g, device=dev) < 0.5
            ix = torch.where(flip[:, None], ix.flip(1), ix)

        def take(t: torch.Tensor) -> torch.Tensor:
            # one gather per axis: crop and flip without a Python loop over the batch
            sel = t.index_select(0, idx)
            ch = sel.shape[1]
            sel = sel.gather(2, iy[:, None, :, None].expand(b, ch, c, w))
            return sel.gather(3, ix[:, None, None, :].expand(b, ch, c, c))

        target = take(self.images).float().div_(255)
        mask = take(self.masks).float()
        if self.photo_jitter > 0 and self.composites is None:
            target = self._jitter(target, step)
        if self.composites is not None:
            composite = take(self.composites).float().div_(255)
        else:
            composite = self._synthesize(target, mask, g, g_cpu)
        return {COMPOSITE: composite, MASK: mask, TARGET: target, "index": idx_cpu}

    def _jitter(self, target: torch.Tensor, step: int) -> torch.Tensor:
        """A random global colour change of each whole photo (gain and offset per channel,
        up to ``photo_jitter``), drawn from its own generator so that the other draws of the
        step do not move. The photo stays harmonious (foreground and background change
        together); a model trained on a handful of photos can no longer memorise their
        absolute colours and has to read the foreground against the background."""
        dev = target.device
        g = torch.Generator(device=dev).manual_seed(step_seed(self.seed, self.rank, step, 3))
        b, j = target.shape[0], self.photo_jitter
        gain = 1 + j * (2 * torch.rand(b, 3, 1, 1, generator=g, device=dev) - 1)
        bias = 0.5 * j * (2 * torch.rand(b, 3, 1, 1, generator=g, device=dev) - 1)
        return (target * gain + bias).clamp_(0, 1)

    def _synthesize(
        self, target: torch.Tensor, mask: torch.Tensor, g: torch.Generator, g_cpu: torch.Generator
    ) -> torch.Tensor:
        # one family per image, drawn on the CPU generator (host-side decision, no sync);
        # the reference photo is synthesize's default, the batch rolled by one
        fam = torch.randint(0, len(self.families), (target.shape[0],), generator=g_cpu).tolist()
        return synthesize(target, mask, [self.families[k] for k in fam], g)


def _resize_pair(sample: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(target, mask, composite)`` of a reader sample resized to ``size``² (the photos' rule)."""
    target, mask = resize_pair(sample[TARGET], sample[MASK], size)
    composite, _ = resize_pair(sample[COMPOSITE], sample[MASK], size)
    return target, mask, composite


def load_train_source(
    spec: SourceSpec,
    *,
    photo_size: int,
    device: torch.device,
    batch_size: int,
    crop_size: int,
    hflip: bool,
    families: tuple[str, ...],
    seed: int,
    rank: int = 0,
    world: int = 1,
    rule_masks: bool = False,
    photo_jitter: float = 0.0,
) -> TensorSource:
    """Decode the training split of ``spec`` once, resized to ``photo_size``², onto ``device``.

    ``rule_masks`` (photo sources only): replace the human masks as the benchmark's mask
    rule does (:func:`rharm_lib.data.mask_rule.with_rule_masks`, target iHarmony4's
    foreground sizes), so that training sees the test benchmark's foreground-size
    distribution. Decision: the rule's seed is fixed (0) -- the masks are part of the
    training set, like its split, not of a run's randomness -- and the chosen masks are
    cached under ``cache_root()/train_masks`` (the SLIC proposals cost about 0.2 s a photo
    once).

    Photos come from :func:`rharm_lib.data.photos.load_photos` (split ``"train"``). Pairs
    (iHarmony4 roots) are resized to ``photo_size``² (bicubic images, box-filtered mask
    thresholded at 0.5, as :func:`rharm_lib.data.imageio.resize_pair`), the usual iHarmony4
    training practice (aspect ratio not kept), decoded with a thread pool.
    """
    fams = tuple(families)
    if spec.kind == "photos":
        unknown = sorted(set(fams) - set(FAMILIES))
        if unknown:
            raise RharmInputError(
                f"unknown synthesis families {unknown}; choose from {sorted(FAMILIES)}"
            )
        ps = load_photos(spec.location, "train", size=photo_size)
        if rule_masks:
            ps = _rule_masks_cached(ps)
        images, masks, comps = torch.as_tensor(ps.images), torch.as_tensor(ps.masks), None
        fams = fams or tuple(FAMILIES)
    else:
        ds = IHDDataset(spec.location, "train", None)
        n, sz = len(ds), photo_size
        # preallocated: 65,742 iHarmony4 pairs at 256² are 30 GB of uint8; no second copy
        images = torch.empty(n, 3, sz, sz, dtype=torch.uint8)
        masks = torch.empty(n, 1, sz, sz, dtype=torch.uint8)
        comps = torch.empty(n, 3, sz, sz, dtype=torch.uint8)

        def fill(i: int) -> None:
            t, m, c = _resize_pair(ds[i], sz)
            images[i] = torch.tensor(t).permute(2, 0, 1)
            masks[i, 0] = torch.tensor(m)
            comps[i] = torch.tensor(c).permute(2, 0, 1)

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(fill, range(n)))
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return TensorSource(
        move(images),
        move(masks),
        move(comps),
        batch_size=batch_size,
        crop_size=crop_size,
        hflip=hflip,
        families=fams,
        seed=seed,
        rank=rank,
        world=world,
        photo_jitter=photo_jitter,
    )


def _rule_masks_cached(ps: PhotoSet) -> PhotoSet:
    """:func:`~rharm_lib.data.mask_rule.with_rule_masks` (seed 0), cached by content."""
    h = hashlib.sha256(f"rule-masks v{SAMPLER_VERSION} {MaskRuleConfig()}".encode())
    h.update(np.ascontiguousarray(ps.images).tobytes())
    h.update(np.ascontiguousarray(ps.masks).tobytes())
    path = cache_root() / "train_masks" / f"{h.hexdigest()[:20]}.npy"
    if path.is_file():
        masks = np.load(path)
        return PhotoSet(ps.images, torch.as_tensor(masks), list(ps.names))
    out = with_rule_masks(ps, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, np.asarray(out.masks))
    os.replace(tmp, path)
    return out


def eval_dataset(spec: SourceSpec, eval_data: str | os.PathLike | None = None) -> tuple[Any, str]:
    """The fixed test benchmark evaluated during training, as an ``IHDDataset``.

    Args:
        spec: the training source.
        eval_data: an explicit benchmark: ``"builtin"``, an iHarmony4-layout root, or a
            lalonde-layout folder (its test split made into a benchmark, seed 0, cached
            under :func:`rharm_lib.paths.cache_root`). ``None`` picks the one that goes with
            ``spec``: the built-in benchmark for ``builtin``, the test split of an iHarmony4
            root, the test split of a lalonde folder; for a pack file, the lalonde folder
            under :func:`rharm_lib.paths.data_root` when present, else the built-in one.

    Returns:
        ``(dataset, description)``.
    """
    if eval_data is None:
        if spec.kind == "pairs" or spec.location == "builtin":
            eval_data = spec.location
        elif Path(spec.location).is_dir():
            eval_data = spec.location
        else:
            lal = data_root() / "lalonde"
            eval_data = str(lal) if (lal / "images").is_dir() else "builtin"
    ev = str(eval_data)
    if ev == "builtin":
        return IHDDataset(benchmark.ensure_builtin_benchmark(), "test", None), "builtin"
    path = Path(ev)
    if (path / "images").is_dir() and (path / "masks").is_dir():
        key = path.resolve().as_posix().strip("/").replace("/", "_")
        out = cache_root() / "benchmarks" / f"{key}-test-seed0-v{benchmark.BENCHMARK_VERSION}"
        if not (out / "IHD_test.txt").is_file():
            try:
                benchmark.write_benchmark(
                    load_photos(path, "test", size=256), out, seed=0, source=ev
                )
            except RharmInputError:
                if not (out / "IHD_test.txt").is_file():  # another process finished it first
                    raise
        return IHDDataset(out, "test", None), f"{ev} (test split, benchmark seed 0)"
    if path.is_dir():
        return IHDDataset(path, "test", None), ev
    raise RharmInputError(
        f"evaluation data {ev!r}: not 'builtin', an iHarmony4 root or a lalonde folder"
    )
