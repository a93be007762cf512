"""The mask rule: which foreground each composite gets, so that sizes follow iHarmony4's.

iHarmony4's foregrounds are small (per-image fraction of the image: median 0.047, 10-90 %
0.012-0.257), the lalonde photos' human masks large (median 0.17). Each photo has one human
mask, so smaller foregrounds must come from elsewhere; the rule keeps the human mask wherever
the target distribution allows it and replaces it by a smaller (or larger) SLIC region of the
same photo (:func:`rharm_lib.data.regions.propose_region`) only where it must:

1. **Target**: the foreground-fraction distribution of the family's iHarmony4 subset
   (:mod:`rharm_lib.data.ihd_stats`; ``size_source="all"``: the whole test set), cut into
   ``bins`` equal-probability bins at its quantiles (in log area).
2. **Keep (maximal coupling)**: a photo whose human-mask fraction falls in bin ``j`` keeps it
   with probability ``min(1, (1/bins) / p_j)``, ``p_j`` the share of the photo set's human
   masks in that bin (a mask outside the target's range is never kept). This keeps the
   largest share of human masks that the target distribution allows (``sum_j min(1/bins,
   p_j)``) -- human masks stay preferred.
3. **Replace**: the others get a target area drawn from the shortfall ``max(0, 1/bins - p_j)``
   (a bin, then the target quantile function inside it) and a SLIC region of that area
   (+-``area_tolerance``), grown from colour-coherent superpixels (about
   ``superpixels_per_region`` of them: SLIC runs with ``clip(k / area, 200, 1000)``
   segments). If no proposal fits, the photo keeps its human mask (never an ellipse).

Deterministic: photo ``i`` draws its four uniforms from ``numpy.random.default_rng((seed,
family index, i))``; only the keep probabilities depend on the whole photo set (they are a
property of the set's mask sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import RharmInputError
from . import ihd_stats
from .photoset import PhotoSet
from .regions import N_SEGMENTS, propose_region

__all__ = [
    "MaskRuleConfig",
    "MaskSelection",
    "keep_probabilities",
    "select_masks",
    "with_rule_masks",
]


@dataclass(frozen=True)
class MaskRuleConfig:
    """How the foreground of each composite is chosen.

    ``enabled=False`` keeps every photo's human mask (sampler version 1's behaviour, the
    main alternative: the foregrounds are then 3-4x larger than iHarmony4's).
    """

    enabled: bool = True
    # "family": the family's iHarmony4 subset (ihd_stats.FAMILY_SUBSET); "all": the test set
    size_source: str = "family"
    # equal-probability bins of the target distribution (the resolution of the coupling)
    bins: int = 20
    # a region's area may be within [a / tol, a * tol] of its drawn area a
    area_tolerance: float = 1.25
    # SLIC segments are chosen so that a region spans about this many superpixels
    superpixels_per_region: float = 4.0
    max_segments: int = 1000

    def __post_init__(self) -> None:
        if self.size_source not in ("family", "all"):
            raise RharmInputError(
                f"size_source must be 'family' or 'all', got {self.size_source!r}"
            )
        if self.bins < 1 or self.area_tolerance <= 1:
            raise RharmInputError("MaskRuleConfig needs bins >= 1 and area_tolerance > 1")


@dataclass(frozen=True)
class MaskSelection:
    """The masks chosen for one family.

    Attributes:
        masks: ``(N,1,S,S)`` uint8 in ``{0,1}``.
        kind: ``N`` entries, ``"human"`` (the photo's own mask) or ``"region"`` (a SLIC region).
        target_area: ``(N,)`` float64, the drawn area of a replaced mask (NaN where kept).
        fallbacks: photos that were to be replaced but kept their human mask (no region fit).
    """

    masks: torch.Tensor
    kind: list[str]
    target_area: np.ndarray
    fallbacks: int


def _subset(family: str | None, cfg: MaskRuleConfig) -> str:
    if family is None or cfg.size_source == "all":
        return "All"
    if family not in ihd_stats.FAMILY_SUBSET:
        raise RharmInputError(
            f"unknown composite family {family!r}; known: {list(ihd_stats.FAMILY_SUBSET)}"
        )
    return ihd_stats.FAMILY_SUBSET[family]


def keep_probabilities(
    areas: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maximal coupling of the photo set's mask sizes to the target's bins.

    Args:
        areas: ``(N,)`` foreground fractions of the human masks.
        edges: ``(K+1,)`` increasing bin edges, the target's quantiles at ``0, 1/K, ..., 1``.

    Returns:
        ``(keep (N,), bin (N,) in -1..K-1, shortfall (K,))``: each photo's probability to keep
        its mask, its bin (-1 outside the target's range) and the target mass per bin that the
        kept masks leave to fill (``max(0, 1/K - p_j)``; sums to one minus the kept share).
    """
    areas = np.asarray(areas, dtype=np.float64)
    k = len(edges) - 1
    b = np.searchsorted(edges, areas, side="right") - 1
    b[areas == edges[-1]] = k - 1
    b[(areas < edges[0]) | (areas > edges[-1])] = -1
    n = max(len(areas), 1)
    p = np.bincount(b[b >= 0], minlength=k)[:k] / n
    keep = np.zeros(len(areas))
    inside = b >= 0
    keep[inside] = np.minimum(1.0, (1.0 / k) / p[b[inside]])
    return keep, b, np.maximum(0.0, 1.0 / k - p)


def select_masks(
    photos: PhotoSet,
    family: str | None,
    seed: int,
    cfg: MaskRuleConfig = MaskRuleConfig(),
    family_index: int = 0,
) -> MaskSelection:
    """Choose each photo's foreground for one family (see the module docstring for the rule).

    Args:
        photos: ``(N,3,S,S)`` uint8 photos with their ``(N,1,S,S)`` human masks.
        family: a composite family (its iHarmony4 subset sets the target) or ``None`` (All).
        seed: the benchmark (or epoch) seed.
        cfg: the rule's configuration.
        family_index: a number that separates the families' draws (the benchmark passes the
            family's index in :data:`~rharm_lib.data.synth.FAMILIES`).

    Returns:
        A :class:`MaskSelection` (masks on the CPU).
    """
    n = len(photos)
    human = photos.masks.cpu()
    if not cfg.enabled or n == 0:
        return MaskSelection(human.clone(), ["human"] * n, np.full(n, np.nan), 0)
    sub = _subset(family, cfg)
    edges = np.log(ihd_stats.quantile("fg_fraction", np.linspace(0, 1, cfg.bins + 1), sub))
    areas = human.flatten(1).float().mean(1).numpy().astype(np.float64)
    keep, _, short = keep_probabilities(np.log(np.maximum(areas, 1e-12)), edges)
    cum = np.cumsum(short) / max(short.sum(), 1e-12)
    out = human.clone()
    kind = ["human"] * n
    target = np.full(n, np.nan)
    fallbacks = 0
    images = photos.images.cpu().permute(0, 2, 3, 1).numpy()
    for i in range(n):
        # four uniforms per photo, whatever happens to it: keep?, bin, position in bin, region
        u = np.random.default_rng((int(seed), int(family_index), i)).random(4)
        if u[0] < keep[i] or short.sum() <= 0:
            continue
        j = int(min(np.searchsorted(cum, u[1], side="right"), cfg.bins - 1))
        a = float(ihd_stats.quantile("fg_fraction", (j + u[2]) / cfg.bins, sub))
        target[i] = a
        n_seg = int(np.clip(cfg.superpixels_per_region / a, N_SEGMENTS, cfg.max_segments))
        region = propose_region(
            images[i],
            seed=int(u[3] * 2**31),
            min_area=a / cfg.area_tolerance,
            max_area=min(1.0, a * cfg.area_tolerance),
            n_segments=n_seg,
        )
        if region is None:
            fallbacks += 1
            continue
        out[i, 0] = torch.from_numpy(region)
        kind[i] = "region"
    return MaskSelection(out, kind, target, fallbacks)


def with_rule_masks(
    photos: PhotoSet, seed: int, family: str | None = None, cfg: MaskRuleConfig = MaskRuleConfig()
) -> PhotoSet:
    """``photos`` with each human mask replaced as the mask rule decides (for training sets).

    Training draws a family per batch, so the default targets iHarmony4's whole test set
    (``family=None``). One-off CPU cost: one SLIC proposal per replaced photo (about 0.2 s
    each on an idle core at 256x256).
    """
    sel = select_masks(photos, family, seed, cfg)
    return PhotoSet(photos.images, sel.masks.to(photos.masks.device), list(photos.names))
