"""The region-wise contrastive loss L_HCL (Section III-B, eqs. 8–12), vectorised over the
K sampled locations and the batch.

Reading of the paper (our decisions, each switchable where it matters):

1. **Sampling map** (eq. 8): the mask resized to ``H/s × W/s`` (``s = sample_scale = 4``)
   with the project's one rule (:func:`rharm_lib.model.masks.resize_mask`: area
   fraction). A cell is a *foreground location* when its fraction is ≥ 0.5 and a
   *background location* when it is < 0.5. So that small objects are not dropped,
   an image with no cell ≥ 0.5 but some foreground uses its cells of largest fraction
   as foreground locations (likewise for a nearly full mask's background).
2. **Sampling** (eqs. 9–10): K foreground locations (where the negatives/queries are
   cut) and K background locations (the positives), each drawn uniformly among that
   region's locations **without replacement**, or **with replacement** when the region
   has fewer than K locations. An image with no foreground or no background at all is
   *invalid*: it contributes 0 to L_HCL and is counted (``hcl_skipped``).
3. **Patches** (``patch_source``): ``image`` (default): a P×P patch (P = 8) of the
   full-resolution image centred on the cell's centre, i.e. rows
   ``[s·i + s//2 - P//2, … + P)``; with s = 4, P = 8 that is the 4×4 cell plus a 2-pixel
   margin. ``map``: a P×P patch of the image area-downsampled to the sampling map, rows
   ``[i - P//2, i + P//2)`` of the map, i.e. image rows ``[s(i - P//2), s(i + P//2))``.
   Outside the image, patches are replicate-padded. :func:`patch_boxes` gives the
   exact boxes in image pixels for drawing.
4. **Embedding**: one two-layer MLP (Linear, ReLU, Linear) shared by all patches, then L2
   normalisation; patches are flattened channel-major (``C, P, P``).
5. **Queries and samples in eq. 11**: the paper's negatives are patches of the
   harmonized output's foreground and its positives patches of the ground truth's
   background, and the loss "brings together" the two. We read eq. 11 as InfoNCE with
   the *harmonized foreground* as queries: for k = 1..K, query ``v_k = v^fg_k`` (output
   foreground patch k), positive ``v^+_k = v^bg_k`` (ground-truth background patch k) and
   negatives ``v^-`` the other foreground patches ``{v^fg_j, j ≠ k}`` of the output
   (``negatives="pred"``):

   ``l_k = -log( exp(v_k·v^+_k / τ) / (exp(v_k·v^+_k / τ) + Σ_j exp(v_k·v^-_j / τ)) )``  (eq. 11)

   The alternative reading (``negatives="composite"``) takes the negatives from the
   *composite's* foreground at the same K locations (all K, including the query's own
   location: the un-harmonized appearance of the very same patch is the hardest
   negative).
6. **Reduction** (eq. 12): mean over K, then the sum over valid images divided by the
   batch size B (an invalid image contributes 0).

Coordinates: a location index ``idx`` is a flat index ``i·W_s + j`` into the
``(H_s, W_s) = (H // s, W // s)`` sampling map (at least 1×1); ``i`` is the row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.masks import resize_mask

__all__ = [
    "PatchEmbedder",
    "sampling_map",
    "region_locations",
    "sample_locations",
    "patch_starts",
    "patch_boxes",
    "extract_patches",
    "embed",
    "info_nce",
    "region_contrastive_loss",
]


def _map_size(h: int, w: int, scale: int) -> tuple[int, int]:
    return max(1, h // scale), max(1, w // scale)


def sampling_map(mask: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The soft sampling map: ``(B,1,H,W)`` mask -> ``(B,1,H//scale,W//scale)`` fractions in [0,1]."""
    return resize_mask(mask, _map_size(mask.shape[-2], mask.shape[-1], scale))


def region_locations(mask: torch.Tensor, scale: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background locations of the sampling map (rule 1 above).

    Args:
        mask: ``(B,1,H,W)`` float in ``{0,1}``.
        scale: sampling-map stride.

    Returns:
        ``(fg, bg)``, each ``(B, H_s·W_s)`` bool.
    """
    frac = sampling_map(mask.float(), scale).flatten(1)
    hi = frac.amax(dim=1, keepdim=True)
    lo = frac.amin(dim=1, keepdim=True)
    fg = (frac >= 0.5) | ((frac == hi) & (hi > 0))
    bg = (frac < 0.5) | ((frac == lo) & (lo < 1))
    return fg, bg


def _draw(allowed: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """K uniform draws per row among ``allowed`` (B,N) bool: without replacement when the
    row has ≥ K allowed entries (top-K of random keys), else with replacement."""
    b, n = allowed.shape
    count = allowed.sum(dim=1, keepdim=True)
    keys = torch.rand(b, n, generator=generator, device=allowed.device)
    keys = keys.masked_fill(~allowed, -1.0)
    top = keys.topk(min(k, n), dim=1).indices
    if top.shape[1] < k:  # n < k: every row takes the replacement branch below
        top = top[:, torch.arange(k, device=top.device) % n]
    weights = torch.where(count > 0, allowed.float(), torch.ones_like(keys))
    repl = torch.multinomial(weights, k, replacement=True, generator=generator)
    return torch.where(count >= k, top, repl)


def sample_locations(
    mask: torch.Tensor, k: int = 256, scale: int = 4, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw the K foreground and K background locations of every image (eqs. 9–10).

    Args:
        mask: ``(B,1,H,W)`` float in ``{0,1}`` (1 = foreground).
        k: locations per region.
        scale: sampling-map stride (map ``H//scale × W//scale``).
        generator: a ``torch.Generator`` on ``mask``'s device, for reproducible draws.

    Returns:
        ``(neg_idx, pos_idx, valid)``: ``neg_idx`` ``(B,K)`` long, flat indices of
        foreground locations (where negatives/queries are cut), ``pos_idx`` ``(B,K)`` long,
        background locations (positives), ``valid`` ``(B,)`` bool: the image has both
        regions (indices of invalid images are arbitrary and must be ignored).
    """
    fg, bg = region_locations(mask, scale)
    valid = fg.any(dim=1) & bg.any(dim=1)
    neg_idx = _draw(fg, k, generator)
    pos_idx = _draw(bg, k, generator)
    return neg_idx, pos_idx, valid


def patch_starts(
    idx: torch.Tensor,
    map_size: tuple[int, int],
    patch: int = 8,
    scale: int = 4,
    source: str = "image",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corner of each patch, in the source's own pixels (image or map).

    Args:
        idx: ``(B,K)`` flat sampling-map indices.
        map_size: ``(H_s, W_s)`` of the sampling map.
        patch: P. scale: s. source: ``image`` or ``map``.

    Returns:
        ``(y0, x0)``, each ``(B,K)`` long (may be negative: replicate padding).
    """
    ws = map_size[1]
    i, j = idx // ws, idx % ws
    if source == "image":
        off = scale // 2 - patch // 2
        return i * scale + off, j * scale + off
    return i - patch // 2, j - patch // 2


def patch_boxes(
    idx: torch.Tensor,
    map_size: tuple[int, int],
    patch: int = 8,
    scale: int = 4,
    source: str = "image",
) -> torch.Tensor:
    """Patch boxes in full-resolution image pixels, for drawing what L_HCL sees.

    Returns:
        ``(B,K,4)`` long ``(x0, y0, x1, y1)``, end exclusive: the patch covers rows
        ``y0 .. y1-1`` and columns ``x0 .. x1-1`` (parts outside the image are replicate
        padding).
    """
    y0, x0 = patch_starts(idx, map_size, patch, scale, source)
    unit = 1 if source == "image" else scale
    return torch.stack([x0 * unit, y0 * unit, (x0 + patch) * unit, (y0 + patch) * unit], dim=-1)


def extract_patches(
    image: torch.Tensor, idx: torch.Tensor, patch: int = 8, scale: int = 4, source: str = "image"
) -> torch.Tensor:
    """Cut P×P patches at sampling-map locations (one gather, no loop).

    Args:
        image: ``(B,C,H,W)`` float (sRGB in [0,1] for the loss).
        idx: ``(B,K)`` flat indices into the ``H//scale × W//scale`` sampling map.
        patch: P. scale: s.
        source: ``image`` (cut from ``image``) or ``map`` (cut from ``image``
            area-downsampled to the sampling map).

    Returns:
        ``(B,K,C·P·P)``, flattened channel-major (C, then rows, then columns).
    """
    b, c, h, w = image.shape
    map_size = _map_size(h, w, scale)
    src = image if source == "image" else F.interpolate(image, size=map_size, mode="area")
    y0, x0 = patch_starts(idx, map_size, patch, scale, source)
    src = F.pad(src, (patch, patch, patch, patch), mode="replicate")
    ar = torch.arange(patch, device=image.device)
    rows = (y0 + patch)[..., None] + ar  # (B,K,P)
    cols = (x0 + patch)[..., None] + ar
    bi = torch.arange(b, device=image.device)[:, None, None, None]
    out = src[bi, :, rows[:, :, :, None], cols[:, :, None, :]]  # (B,K,P,P,C)
    return out.permute(0, 1, 4, 2, 3).reshape(b, idx.shape[1], c * patch * patch)


class PatchEmbedder(nn.Module):
    """The shared two-layer MLP of L_HCL: ``(…, in_dim) -> (…, out_dim)`` (not normalised)."""

    def __init__(self, in_dim: int, hidden: int = 256, out: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def embed(mlp: nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """``(B,K,C·P·P)`` patches -> ``(B,K,D)`` L2-normalised embeddings ``v``."""
    return F.normalize(mlp(patches), dim=-1, eps=1e-8)


def info_nce(
    q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float, exclude_diagonal: bool
) -> torch.Tensor:
    """Eq. 11 for every query: ``(B,K,D)`` queries and positives, ``(B,N,D)`` negatives.

    ``exclude_diagonal`` drops negative k from query k's sum (used when the negatives are
    the queries themselves). Returns ``(B,K)`` losses ``-log softmax`` of the positive.
    """
    l_pos = (q * pos).sum(dim=-1, keepdim=True) / tau  # (B,K,1)
    l_neg = torch.bmm(q, neg.transpose(1, 2)) / tau  # (B,K,N)
    if exclude_diagonal:
        eye = torch.eye(q.shape[1], neg.shape[1], dtype=torch.bool, device=q.device)
        l_neg = l_neg.masked_fill(eye, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=-1)
    return torch.logsumexp(logits, dim=-1) - l_pos.squeeze(-1)


def region_contrastive_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    mlp: nn.Module,
    composite: torch.Tensor | None = None,
    *,
    k: int = 256,
    patch: int = 8,
    scale: int = 4,
    tau: float = 0.07,
    negatives: str = "pred",
    patch_source: str = "image",
    generator: torch.Generator | None = None,
    locations: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_HCL (eqs. 8–12) with the readings documented in the module docstring.

    Args:
        pred: ``(B,3,H,W)`` harmonized output H (sRGB).
        target: ``(B,3,H,W)`` ground truth Ĥ (sRGB in [0,1]).
        mask: ``(B,1,H,W)`` float in ``{0,1}``.
        mlp: the shared embedder, ``(…, 3·P²) -> (…, D)``.
        composite: ``(B,3,H,W)``; needed when ``negatives="composite"``.
        k, patch, scale, tau, negatives, patch_source: see :class:`LossConfig`.
        generator: RNG for :func:`sample_locations`.
        locations: a fixed ``(neg_idx, pos_idx, valid)`` instead of drawing.

    Returns:
        ``(loss, skipped)``: scalar loss (float32, or the inputs' dtype if float64) and
        the number of invalid images (long scalar).
    """
    if locations is None:
        locations = sample_locations(mask, k, scale, generator)
    neg_idx, pos_idx, valid = locations
    q = embed(mlp, extract_patches(pred, neg_idx, patch, scale, patch_source))  # v^fg (queries)
    v_pos = embed(
        mlp, extract_patches(target, pos_idx, patch, scale, patch_source)
    )  # v^bg (eq. 10)
    if negatives == "pred":
        v_neg, excl = q, True  # eq. 9: negatives from the output's foreground
    else:
        if composite is None:
            raise ValueError("negatives='composite' needs the composite")
        v_neg, excl = (
            embed(mlp, extract_patches(composite, neg_idx, patch, scale, patch_source)),
            False,
        )
    per = info_nce(q, v_pos, v_neg, tau, excl)  # (B,K), eq. 11
    per_image = per.mean(dim=1)  # eq. 12: over K ...
    per_image = torch.where(valid, per_image, torch.zeros_like(per_image))
    loss = per_image.sum() / pred.shape[0]  # ... then over the batch (invalid = 0)
    return loss, (~valid).sum()
