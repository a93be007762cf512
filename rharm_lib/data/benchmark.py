"""A fixed test benchmark in iHarmony4's exact layout, synthesised from real photos.

``write_benchmark(photos, out, seed)`` makes one composite per photo and family and writes::

    out/
      IHD_test.txt                      # <Subset>/composite_images/<name>.png, all subsets
      benchmark.json                    # seed, families, SynthConfig, counts (no dates)
      Transfer/  Histogram/  Retouch/  Relight/     # one subset per family
        <Subset>_test.txt               # composite file names of the subset
        composite_images/<real>_<maskid>_<compid>.png
        masks/<real>_<maskid>.png       # 255 = foreground
        real_images/<real>.png

``<real>`` is the photo's name with ``_`` replaced by ``-`` (so that readers that split
names on ``_`` -- as iHarmony4's own loaders do -- find the real image), ``<maskid>`` and
``<compid>`` are ``1``.

Decision -- PNG, not JPEG: iHarmony4 ships JPEGs, but a JPEG round trip adds compression
error to the composite's foreground *and* background, which would shift the input metrics
by an amount that depends on the quality setting, and JPEG bytes depend on the libjpeg
build. PNG is lossless: the composite's background is bit-identical to the real image, the
input metrics are exactly the synthesis's, and reruns write byte-identical files (PIL's PNG
writer stores no time stamp). File names therefore end in ``.png``.

Determinism: family ``k`` (its index in :data:`~rharm_lib.data.synth.FAMILIES`) uses a CPU
``torch.Generator`` seeded with ``seed * 1000 + k``; it first draws a random cyclic order of
the photos (each photo's reference for ``transfer``/``histogram`` is the next photo in that
order, never itself), then synthesises in chunks of :data:`CHUNK` photos.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import RharmInputError
from ..outputs import LOCK, MANIFEST, check_output_dir, publish_dir, tmp_sibling
from ..paths import cache_root
from ..seed import make_generator
from .builtin import load_builtin
from .mask_rule import MaskRuleConfig, select_masks
from .photoset import PhotoSet
from .synth import FAMILIES, SAMPLER_VERSION, SynthConfig, synthesize

__all__ = [
    "SUBSETS",
    "CHUNK",
    "BENCHMARK_VERSION",
    "make_composites",
    "write_benchmark",
    "ensure_builtin_benchmark",
    "check_benchmark_out",
    "tree_sha256",
    "real_name",
]

#: family -> subset directory name
SUBSETS: dict[str, str] = {
    "transfer": "Transfer",
    "histogram": "Histogram",
    "retouch": "Retouch",
    "relight": "Relight",
}
#: photos synthesised per call (fixed: part of what makes the benchmark reproducible)
CHUNK = 32
#: bump when the synthesis or the layout changes (it keys the built-in benchmark's cache and
#: is written into ``benchmark.json``); 2 = sampler version 2 (iHarmony4's per-image fMSE
#: distribution, foreground sizes by the mask rule, one mask per photo *and family*);
#: 3 = the same sampler run in float64, so that the written pixels do not depend on the
#: CPU's SIMD kernels (in float32 one value in ~9 M flipped by 1 between AVX-512 and scalar
#: kernels, which moved the input-composite row of the tables between machines)
BENCHMARK_VERSION = 3


#: the top-level names of a benchmark written before manifests existed
_LEGACY = ("IHD_test.txt", "benchmark.json", *SUBSETS.values())


def check_benchmark_out(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check, before any work, that a benchmark can be written at ``out``
    (:func:`rharm_lib.outputs.check_output_dir`): not a file, a writable parent, and an
    existing folder only with ``overwrite`` and only when it holds nothing but a benchmark
    rharm wrote (its manifest; for benchmarks that predate manifests, the benchmark's own
    top-level names). Raises :class:`RharmInputError` otherwise."""
    return check_output_dir(out, overwrite=overwrite, legacy=_LEGACY)


def real_name(name: str) -> str:
    """The real image's file stem for a photo name (``_`` -> ``-``)."""
    return name.replace("_", "-")


def make_composites(
    photos: PhotoSet,
    family: str,
    seed: int = 0,
    cfg: SynthConfig = SynthConfig(),
    device: str | torch.device = "cpu",
    mask_cfg: MaskRuleConfig = MaskRuleConfig(),
) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """One composite per photo for one family, as the benchmark makes them.

    Args:
        photos: the photo set (``(N,3,S,S)`` uint8 images, ``(N,1,S,S)`` masks).
        family: a name in :data:`~rharm_lib.data.synth.FAMILIES`.
        seed: the benchmark seed.
        cfg: the synthesis configuration.
        device: where to synthesise (the benchmark uses the CPU).
        mask_cfg: the mask rule (:mod:`rharm_lib.data.mask_rule`) choosing each foreground.

    Returns:
        ``(composites (N,3,S,S) uint8 sRGB, references, masks (N,1,S,S) uint8 {0,1})`` where
        ``references[i]`` is the index of the photo whose region served as reference for
        photo ``i`` and ``masks`` are the foregrounds the mask rule chose.
    """
    if family not in FAMILIES:
        raise RharmInputError(f"unknown composite family {family!r}; known: {list(FAMILIES)}")
    n = len(photos)
    k = FAMILIES.index(family)
    masks = select_masks(photos, family, seed, mask_cfg, family_index=k).masks
    chosen = PhotoSet(photos.images, masks, list(photos.names))
    g = make_generator(seed * 1000 + k, device)
    order = torch.randperm(n, generator=g, device=device).cpu()
    ref = torch.empty(n, dtype=torch.long)
    if n:
        ref[order] = torch.roll(order, -1)
    out = torch.empty_like(photos.images)
    for start in range(0, n, CHUNK):
        sl = slice(start, min(start + CHUNK, n))
        # float64: a float32 synthesis rounds a few values differently on CPUs with other
        # SIMD kernels (AVX-512 vs AVX2 vs scalar), which moved the benchmark by one pixel
        # value between machines; in float64 a value would have to land within ~1e-13 of a
        # rounding boundary to flip
        t, m = (x.double() for x in chosen.float_batch(sl))
        r, rm = (x.double() for x in chosen.float_batch(ref[sl]))
        comp = synthesize(
            t.to(device),
            m.to(device),
            family,
            g,
            reference=r.to(device),
            ref_mask=rm.to(device),
            cfg=cfg,
        )
        out[sl] = (comp * 255.0).round().to(torch.uint8).cpu()
    return out, ref.tolist(), masks


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _config_record(
    photos: PhotoSet,
    seed: int,
    families: Sequence[str],
    cfg: SynthConfig,
    source: str,
    mask_cfg: MaskRuleConfig = MaskRuleConfig(),
) -> dict:
    return {
        "benchmark_version": BENCHMARK_VERSION,
        "sampler_version": SAMPLER_VERSION,
        "mask_rule": dataclasses.asdict(mask_cfg),
        "source": source,
        "seed": seed,
        "families": list(families),
        "subsets": [SUBSETS[f] for f in families],
        "photos": len(photos),
        "size": photos.size,
        "synth_config": dataclasses.asdict(cfg),
        "format": "png",
        "naming": "<real>_<maskid>_<compid>.png, <real> = photo name with '_' -> '-'",
    }


def write_benchmark(
    photos: PhotoSet,
    out: str | os.PathLike,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    cfg: SynthConfig = SynthConfig(),
    source: str = "",
    overwrite: bool = False,
    mask_cfg: MaskRuleConfig = MaskRuleConfig(),
) -> Path:
    """Write the benchmark (one composite per photo and family) in iHarmony4's layout.

    The tree is written into a temporary sibling directory (``.<name>.tmp-<pid>``) and
    renamed into place with a manifest of its files (:func:`rharm_lib.outputs.publish_dir`),
    so an interrupted run never leaves a half-written benchmark at ``out``; ``overwrite``
    replaces only a benchmark rharm wrote (:func:`check_benchmark_out`), never a folder
    holding other files.

    Args:
        photos: the (test) photos with their masks.
        out: the benchmark root to create.
        seed: the benchmark seed.
        families: which families (subsets) to write, in order.
        cfg: the synthesis configuration.
        source: a description of the photos' origin, stored in ``benchmark.json``.
        mask_cfg: the mask rule choosing each composite's foreground (per family).
        overwrite: replace an existing ``out``; otherwise an existing ``out`` is an error.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.
    """
    out = Path(out)
    families = list(families)
    bad = [f for f in families if f not in SUBSETS]
    if bad or not families:
        raise RharmInputError(f"unknown or no families {bad}; known: {list(FAMILIES)}")
    if len(photos) == 0:
        raise RharmInputError("no photos to make a benchmark from")
    check_benchmark_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        images = photos.images.permute(0, 2, 3, 1).numpy()
        reals = [real_name(n) for n in photos.names]
        if len(set(reals)) != len(reals):
            raise RharmInputError("photo names collide once '_' is replaced by '-'")
        real_png = [_png_bytes(im) for im in images]
        all_lines = []
        for fam in families:
            sub = SUBSETS[fam]
            d = tmp / sub
            for part in ("composite_images", "masks", "real_images"):
                (d / part).mkdir(parents=True)
            comps, _, fam_masks = make_composites(photos, fam, seed, cfg, mask_cfg=mask_cfg)
            comps_np = comps.permute(0, 2, 3, 1).numpy()
            masks_np = fam_masks[:, 0].numpy()
            lines = []
            for i, r in enumerate(reals):
                fname = f"{r}_1_1.png"
                (d / "composite_images" / fname).write_bytes(_png_bytes(comps_np[i]))
                (d / "masks" / f"{r}_1.png").write_bytes(_png_bytes(masks_np[i] * 255))
                (d / "real_images" / f"{r}.png").write_bytes(real_png[i])
                lines.append(fname)
            (d / f"{sub}_test.txt").write_text("\n".join(lines) + "\n")
            all_lines += [f"{sub}/composite_images/{x}" for x in lines]
        (tmp / "IHD_test.txt").write_text("\n".join(all_lines) + "\n")
        rec = _config_record(photos, seed, families, cfg, source, mask_cfg)
        (tmp / "benchmark.json").write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        # another process may have finished the same benchmark meanwhile: never delete a
        # finished tree that is not ours to replace
        if out.exists() and not overwrite:
            raise RharmInputError(f"{out} already exists (written concurrently)")
        try:
            publish_dir(tmp, out, "rharm data synth", legacy=_LEGACY)
        except OSError:
            if out.exists() and not overwrite:
                raise RharmInputError(f"{out} already exists (written concurrently)") from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def tree_sha256(root: str | os.PathLike) -> str:
    """SHA-256 over a tree's sorted relative paths and file contents (the benchmark checksum).

    For each regular file in sorted order of its POSIX relative path: the path, a NUL byte,
    the file's own SHA-256 hex digest, a newline. rharm's bookkeeping files (the manifest
    and lock of :mod:`rharm_lib.outputs`) are left out, so the checksum is the data's.
    """
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*"), key=lambda q: q.relative_to(root).as_posix()):
        if p.is_file() and p.name not in (MANIFEST, LOCK):
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).hexdigest().encode() + b"\n")
    return h.hexdigest()


def ensure_builtin_benchmark(seed: int = 0, size: int = 256) -> Path:
    """The built-in test benchmark, built once and cached under ``cache_root()``.

    The cache key hashes the benchmark version, seed, size, the synthesis configuration and
    the built-in photos' and masks' bytes, so a change to any of them builds a new one.

    Returns:
        The benchmark root (iHarmony4 layout, readable by ``rharm evaluate --data``).
    """
    photos = load_builtin("test", size)
    h = hashlib.sha256()
    h.update(json.dumps(_config_record(photos, seed, FAMILIES, SynthConfig(), "builtin")).encode())
    h.update(photos.images.numpy().tobytes())
    h.update(photos.masks.numpy().tobytes())
    h.update("\n".join(photos.names).encode())
    out = cache_root() / "benchmarks" / f"builtin-test-{h.hexdigest()[:16]}"
    if (out / "IHD_test.txt").is_file():
        return out
    try:
        write_benchmark(photos, out, seed=seed, source="builtin")
    except RharmInputError:
        # another process finished it first
        if not (out / "IHD_test.txt").is_file():
            raise
    return out
