"""Object-like region masks for photos that have none (the high-resolution set, Table IV).

``region_mask(image, seed)`` proposes one connected region covering ``min_area..max_area``
of the image, built from an unsupervised over-segmentation:

1. the image is reduced to a working size (long side :data:`WORK_SIDE`, bicubic);
2. SLIC superpixels (:func:`skimage.segmentation.slic`, ~:data:`N_SEGMENTS` segments, in
   CIELab, connectivity enforced) and their mean Lab colours and adjacency are computed;
3. a target area is drawn uniformly in ``[min_area, max_area]``; a seed superpixel is drawn
   (probability proportional to its area) among those whose centre lies in the central 80 %
   of the image, so that the region is not a sliver along a border;
4. the region grows greedily by the *adjacent* superpixel whose mean colour is closest to
   the region's mean colour (so it follows a coherent, object-like surface: a building, a
   sky, a field, a flower) until it reaches the target area; a superpixel that would take it
   past ``max_area`` is skipped;
5. holes are filled, the outline smoothed (closing then opening with a disk of radius 3
   working pixels), the mask is resized to the image's size (box filter, threshold 0.5) and
   reduced to its largest connected component.

If the result is outside ``[min_area, max_area]`` the proposal is redrawn (up to
:data:`MAX_TRIES` times from the same seeded stream); the last resort is an ellipse of the
target area at the seed superpixel's centre, so the function always returns a valid mask.
Everything is deterministic for a given image and seed (SLIC has no random state; the draws
come from ``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.segmentation import slic

from ..errors import RharmInputError

__all__ = ["region_mask", "propose_region", "WORK_SIDE", "N_SEGMENTS", "MAX_TRIES"]

#: long side of the image the segmentation runs on
WORK_SIDE = 256
#: SLIC's target number of superpixels
N_SEGMENTS = 200
#: redraws before the ellipse fallback
MAX_TRIES = 12
#: structuring element of the closing/opening that smooths the outline (radius 3 px)
_DISK = np.hypot(*np.mgrid[-3:4, -3:4]) <= 3.0


def _adjacency(labels: np.ndarray, n: int) -> list[set[int]]:
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
    ):
        diff = a != b
        pairs = np.unique(np.stack([a[diff], b[diff]], axis=1), axis=0)
        for i, j in pairs:
            adj[int(i)].add(int(j))
            adj[int(j)].add(int(i))
    return adj


def _largest_component(m: np.ndarray) -> np.ndarray:
    lab, k = ndimage.label(m)
    if k <= 1:
        return m.astype(np.uint8)
    sizes = ndimage.sum_labels(m, lab, index=np.arange(1, k + 1))
    return (lab == 1 + int(np.argmax(sizes))).astype(np.uint8)


def _grow(
    labels: np.ndarray,
    area: np.ndarray,
    colour: np.ndarray,
    adj: list[set[int]],
    seed_seg: int,
    target: float,
    max_area: float,
) -> np.ndarray:
    """Greedy colour-coherent growth from ``seed_seg``; returns the chosen segment ids."""
    total = float(area.sum())
    region = {seed_seg}
    cur = float(area[seed_seg])
    csum = colour[seed_seg] * area[seed_seg]
    skipped: set[int] = set()
    while cur / total < target:
        frontier = sorted(set().union(*(adj[s] for s in region)) - region - skipped)
        if not frontier:
            break
        mean = csum / cur
        fr = np.asarray(frontier)
        dist = np.linalg.norm(colour[fr] - mean, axis=1)
        best = int(fr[int(np.argmin(dist))])
        if (cur + area[best]) / total > max_area:
            skipped.add(best)
            continue
        region.add(best)
        cur += float(area[best])
        csum = csum + colour[best] * area[best]
    return np.asarray(sorted(region))


def _ellipse(h: int, w: int, cy: float, cx: float, frac: float) -> np.ndarray:
    """A filled ellipse (aspect of the image) of area ``frac`` centred near (cy, cx)."""
    ry, rx = np.sqrt(frac / np.pi) * h, np.sqrt(frac / np.pi) * w
    cy = float(np.clip(cy, ry, h - ry))
    cx = float(np.clip(cx, rx, w - rx))
    yy, xx = np.mgrid[0:h, 0:w]
    return ((((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2) <= 1).astype(np.uint8)


def region_mask(
    image: np.ndarray,
    seed: int,
    min_area: float = 0.05,
    max_area: float = 0.5,
    n_segments: int = N_SEGMENTS,
) -> np.ndarray:
    """One connected, object-like region of ``image``.

    Args:
        image: ``(H,W,3)`` uint8 sRGB photograph, any size.
        seed: selects the region (the same image and seed give the same mask).
        min_area: smallest fraction of the image the region covers.
        max_area: largest fraction of the image the region covers.
        n_segments: SLIC's target number of superpixels (more for smaller regions).

    Returns:
        ``(H,W)`` uint8 in ``{0,1}``: one 4-connected component (1 = the region) covering
        ``min_area..max_area`` of the image (within one working-size pixel of rounding);
        an ellipse of a drawn area when no proposal fits (see the module docstring).
    """
    m, fallback = _propose(image, seed, min_area, max_area, n_segments)
    return m if m is not None else fallback


def propose_region(
    image: np.ndarray,
    seed: int,
    min_area: float = 0.05,
    max_area: float = 0.5,
    n_segments: int = N_SEGMENTS,
) -> np.ndarray | None:
    """As :func:`region_mask`, but ``None`` instead of the ellipse when no proposal fits.

    The benchmark's mask rule (:mod:`rharm_lib.data.mask_rule`) uses it: an ellipse is not
    an object, so there the photo keeps its human mask instead.
    """
    return _propose(image, seed, min_area, max_area, n_segments)[0]


def _propose(
    image: np.ndarray, seed: int, min_area: float, max_area: float, n_segments: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(region or None, the ellipse fallback)``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise RharmInputError(
            f"expected an (H,W,3) uint8 image, got {image.dtype} {tuple(image.shape)}"
        )
    if not 0 < min_area < max_area <= 1:
        raise RharmInputError(
            f"expected 0 < min_area < max_area <= 1, got {min_area} and {max_area}"
        )
    h, w = image.shape[:2]
    s = WORK_SIDE / max(h, w)
    wh, ww = max(8, round(h * s)), max(8, round(w * s))
    small = np.asarray(Image.fromarray(image).resize((ww, wh), Image.BICUBIC))
    labels = slic(small, n_segments=int(n_segments), compactness=10, start_label=0, channel_axis=-1)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    lab = rgb2lab(small).reshape(-1, 3)
    colour = (
        np.stack([np.bincount(flat, weights=lab[:, c], minlength=n) for c in range(3)], axis=1)
        / np.maximum(area, 1)[:, None]
    )
    yy, xx = np.mgrid[0:wh, 0:ww]
    cy = np.bincount(flat, weights=yy.ravel(), minlength=n) / np.maximum(area, 1)
    cx = np.bincount(flat, weights=xx.ravel(), minlength=n) / np.maximum(area, 1)
    central = (np.abs(cy / wh - 0.5) < 0.4) & (np.abs(cx / ww - 0.5) < 0.4) & (area > 0)
    candidates = np.flatnonzero(central) if central.any() else np.flatnonzero(area > 0)
    adj = _adjacency(labels, n)
    rng = np.random.default_rng(seed)
    lo, hi = min_area, max_area
    target, seed_seg = lo, int(candidates[0])
    for _ in range(MAX_TRIES):
        target = float(rng.uniform(lo, hi))
        p = area[candidates] / area[candidates].sum()
        seed_seg = int(rng.choice(candidates, p=p))
        region = _grow(labels, area, colour, adj, seed_seg, target, hi)
        m_small = ndimage.binary_fill_holes(np.isin(labels, region))
        # smooth the superpixel staircase into an object-like outline
        m_small = ndimage.binary_opening(
            ndimage.binary_closing(m_small, _DISK, border_value=0), _DISK, border_value=0
        )
        m_small = ndimage.binary_fill_holes(m_small)
        m = np.asarray(Image.fromarray(m_small.astype(np.float32)).resize((w, h), Image.BOX))
        m = _largest_component(m >= 0.5)
        frac = float(m.mean())
        if lo <= frac <= hi:
            return m, m
    # last resort: an ellipse of the target area where the last seed superpixel was
    return None, _ellipse(h, w, cy[seed_seg] / s, cx[seed_seg] / s, target)
