"""The region-wise contrastive loss L_HCL (Section III-B, eqs. 8–12), vectorised over the
K sampled locations and the batch.

Reading of the paper (our decisions, each switchable where it matters):

1. **Sampling map** (eq. 8): the mask resized to ``H/s × W/s`` (``s = sample_scale = 4``)
   with the project's one rule (:func:`rharm_lib.model.masks.resize_mask`: area
   fraction). A cell is a *foreground location* when its fraction is ≥ 0.5 and a
   *background location* when it is < 0.5. So that small objects are not dropped,
   an image with no cell ≥ 0.5 but some foreground uses its cells of largest fraction
   as foreground locations (likewise for a nearly full mask's background).
2. **Sampling** (eqs. 8–9): K foreground locations (where the queries/negatives are
   cut) and K background locations (the positives), each drawn uniformly among that
   region's locations **without replacement**. A region with r < K locations
   (``sampling="capped"``, default) fills only r slots; the other slots are masked out of
   eq. 11 (no query, no negative), so a duplicated patch never inflates the softmax
   (with replacement a query meets ~K/r copies of itself among its negatives: a floor
   of about log(K/r) whatever the network does). ``sampling="replacement"`` is the
   pre-fix rule. An image with no foreground or no background at all is *invalid*: it
   contributes 0 to L_HCL and is counted (``hcl_skipped``).
3. **Patches** (``patch_source``): ``map`` (default since issue #16, the paper's "crop 8×8
   patches around the negative locations in S^fg") or ``image``. ``image``: a P×P patch (P = 8) of the
   full-resolution image centred on the cell's centre, i.e. rows
   ``[s·i + s//2 - P//2, … + P)``; with s = 4, P = 8 that is the 4×4 cell plus a 2-pixel
   margin. ``map``: a P×P patch of the image area-downsampled to the sampling map, rows
   ``[i - P//2, i + P//2)`` of the map, i.e. image rows ``[s(i - P//2), s(i + P//2))``.
   Outside the image, patches are replicate-padded. :func:`patch_boxes` gives the
   exact boxes in image pixels for drawing. ``region_mask=True`` (default) cuts from
   ``H·M`` and ``Ĥ·(1−M)`` as the paper's ``H^fg`` / ``Ĥ^bg``: a patch sees only its own
   region (zeros elsewhere; the style feature weights its statistics by the region).
4. **Embedding**: one two-layer MLP (Linear, ReLU, Linear) shared by all patches, then L2
   normalisation; pixel patches are flattened channel-major (``C, P, P``), style patches
   are their 6 per-channel statistics (:func:`patch_features`).
5. **Queries and samples in eqs. 10–11**: one of the readings of
   :data:`~rharm_lib.losses.readings.READINGS` (which patch sets are the query ``v^fg``,
   the anchor ``v^bg``, the positive and the negatives). The default ``pred_negatives``:
   query ``v_k`` = output foreground patch k, positive = ground-truth background patch k,
   negatives = the other output foreground patches:

   ``l_k = -log( exp(v_k·v^+_k / τ) / (exp(v_k·v^+_k / τ) + Σ_j exp(v_k·v^-_j / τ)) )``  (eq. 11)

6. **Reduction** (eq. 12): mean over the filled slots k, then the sum over valid images
   divided by the batch size B (an invalid image contributes 0).

Coordinates: a location index ``idx`` is a flat index ``i·W_s + j`` into the
``(H_s, W_s) = (H // s, W // s)`` sampling map (at least 1×1); ``i`` is the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..model.masks import resize_mask
from .readings import NEGATIVES_READING, READINGS, Reading

__all__ = [
    "Locations",
    "HCLTerms",
    "patch_features",
    "PatchEmbedder",
    "sampling_map",
    "region_locations",
    "sample_locations",
    "patch_starts",
    "patch_boxes",
    "extract_patches",
    "embed",
    "embed_filled",
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


class Locations(NamedTuple):
    """The sampled locations of L_HCL (eqs. 8–9) for a batch.

    Attributes:
        neg_idx: ``(B,K)`` long, flat sampling-map indices of foreground locations (where
            the queries / negatives are cut).
        pos_idx: ``(B,K)`` long, background locations (the positives).
        valid: ``(B,)`` bool, the image has both regions (else L_HCL skips it).
        neg_ok, pos_ok: ``(B,K)`` bool, the slot holds a distinct drawn location (with
            ``sampling="capped"`` a region with r < K cells fills r slots; the index of an
            unfilled slot repeats slot 0 and must be ignored).
    """

    neg_idx: torch.Tensor
    pos_idx: torch.Tensor
    valid: torch.Tensor
    neg_ok: torch.Tensor
    pos_ok: torch.Tensor


def _draw(
    allowed: torch.Tensor, k: int, generator: torch.Generator | None, sampling: str = "capped"
) -> tuple[torch.Tensor, torch.Tensor]:
    """K uniform draws per row among ``allowed`` (B,N) bool -> ``(idx, ok)``, each (B,K).

    A row with ≥ K allowed entries: K distinct entries (top-K of random keys), all ok.
    A row with r < K: ``capped`` keeps the r distinct entries and marks the other slots
    not ok; ``replacement`` (the pre-fix rule) draws K with replacement, all ok.
    ``capped`` consumes one ``rand`` per call, so its draws do not depend on K beyond
    the first r slots; ``replacement`` reproduces the pre-fix stream exactly.
    """
    b, n = allowed.shape
    count = allowed.sum(dim=1, keepdim=True)
    keys = torch.rand(b, n, generator=generator, device=allowed.device)
    keys = keys.masked_fill(~allowed, -1.0)
    # sorted keys: allowed entries first, in random order, so the first r slots of a
    # draw are the same for every K >= r (the K sweep compares like with like)
    top = keys.topk(min(k, n), dim=1, sorted=True).indices
    if top.shape[1] < k:  # n < k
        top = top[:, torch.arange(k, device=top.device) % n]
    if sampling == "replacement":
        weights = torch.where(count > 0, allowed.float(), torch.ones_like(keys))
        repl = torch.multinomial(weights, k, replacement=True, generator=generator)
        return torch.where(count >= k, top, repl), torch.ones_like(top, dtype=torch.bool)
    ok = torch.arange(k, device=top.device)[None, :] < count
    return torch.where(ok, top, top[:, :1]), ok


def sample_locations(
    mask: torch.Tensor,
    k: int = 256,
    scale: int = 4,
    generator: torch.Generator | None = None,
    sampling: str = "capped",
) -> Locations:
    """Draw the K foreground and K background locations of every image (eqs. 8–9).

    Args:
        mask: ``(B,1,H,W)`` float in ``{0,1}`` (1 = foreground).
        k: locations per region.
        scale: sampling-map stride (map ``H//scale × W//scale``).
        generator: a ``torch.Generator`` on ``mask``'s device, for reproducible draws.
        sampling: ``capped`` (no duplicates: a region with r < K cells fills r slots) or
            ``replacement`` (duplicates; the pre-fix rule).

    Returns:
        :class:`Locations` (indices of invalid images are arbitrary and must be ignored).
    """
    fg, bg = region_locations(mask, scale)
    valid = fg.any(dim=1) & bg.any(dim=1)
    neg_idx, neg_ok = _draw(fg, k, generator, sampling)
    pos_idx, pos_ok = _draw(bg, k, generator, sampling)
    return Locations(neg_idx, pos_idx, valid, neg_ok & valid[:, None], pos_ok & valid[:, None])


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
    """Cut P×P patches at sampling-map locations (one unfold and one gather, no loop).

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
    k = idx.shape[1]
    map_size = _map_size(h, w, scale)
    src = image if source == "image" else F.interpolate(image, size=map_size, mode="area")
    src = F.pad(src, (patch, patch, patch, patch), mode="replicate")
    # Every grid location's patch as a column of one unfold (stride = the grid's step in
    # ``src`` pixels, starting at location (0, 0)'s corner of :func:`patch_starts` in the
    # padded source), then one gather of the K sampled columns: the same values as cutting
    # each patch, and cheap backward passes (scatter-add, col2im) where per-pixel advanced
    # indexing cost L_HCL most of its time on the CPU (issue 11).
    step = scale if source == "image" else 1
    y00, x00 = patch_starts(torch.zeros(1, 1, dtype=torch.long), map_size, patch, scale, source)
    oy, ox = int(y00) + patch, int(x00) + patch
    cols = F.unfold(src[..., oy:, ox:], patch, stride=step)  # (B, C·P·P, Lh·Lw)
    lw = (src.shape[-1] - ox - patch) // step + 1
    flat = (idx // map_size[1]) * lw + idx % map_size[1]  # (B,K) column of each patch
    out = cols.gather(2, flat[:, None, :].expand(b, c * patch * patch, k))  # (B, C·P·P, K)
    return out.transpose(1, 2).contiguous()  # (B,K,C·P·P), channel-major


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


def embed_filled(mlp: nn.Module, patches: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """:func:`embed`, running the MLP only on the slots that count (issue 11).

    With ``sampling="capped"`` a region with r < K locations fills r slots; every unfilled
    slot repeats slot 0's location (:class:`Locations`), so its patch, and therefore its
    embedding, is slot 0's. The MLP runs on the filled slots and slot 0 of every row, and
    the unfilled slots copy slot 0's embedding: the same ``(B,K,D)`` values as
    :func:`embed` up to float rounding, at a fraction of the MLP's cost when regions are
    small (on the CPU the MLP dominates L_HCL's cost). Unfilled slots are masked out of
    eq. 11 either way, so the gradients are the same too. On other devices (where picking
    the rows would synchronise with the host) this is :func:`embed`.

    Args:
        mlp: the shared embedder. patches: ``(B,K,F)``. ok: ``(B,K)`` bool, filled slots.

    Returns:
        ``(B,K,D)`` L2-normalised embeddings.
    """
    if patches.device.type != "cpu":
        return embed(mlp, patches)
    b, k, f = patches.shape
    need = ok.clone()
    need[:, 0] = True  # slot 0 of every row: the value the unfilled slots repeat
    if bool(need.all()):
        return embed(mlp, patches)
    rows = need.flatten().nonzero().squeeze(1)
    v_rows = embed(mlp, patches.reshape(b * k, f).index_select(0, rows))  # (N, D)
    v = v_rows.new_zeros(b * k, v_rows.shape[-1]).index_copy(0, rows, v_rows)
    v = v.view(b, k, -1)
    return torch.where(need[..., None], v, v[:, :1])


def patch_features(
    image: torch.Tensor,
    weight: torch.Tensor | None,
    idx: torch.Tensor,
    patch: int = 8,
    scale: int = 4,
    source: str = "image",
    feature: str = "pixels",
    eps: float = 1e-5,
) -> torch.Tensor:
    """What the shared MLP sees of each patch (the input of eqs. 8–9's ``MLP(φ(·))``).

    Args:
        image: ``(B,3,H,W)`` float sRGB.
        weight: ``(B,1,H,W)`` in [0,1], the patch's region (``M`` for foreground patches,
            ``1−M`` for background ones), or ``None`` (unmasked patches).
        idx: ``(B,K)`` flat sampling-map indices.
        patch, scale, source: see :func:`extract_patches`.
        feature: ``pixels``: the patch times its region weight (the paper's ``H^fg = H·M``),
            ``(B,K,3·P·P)``; ``style``: per-channel weighted mean and standard deviation
            over the patch's in-region pixels, ``(B,K,6)`` (means first).
        eps: variance / weight floor of the style statistics.

    Returns:
        ``(B,K,F)`` features.
    """
    b, k = idx.shape
    p = extract_patches(image, idx, patch, scale, source).view(b, k, 3, patch * patch)
    if weight is None:
        w = torch.ones_like(p[:, :, :1])
    else:
        w = extract_patches(weight.to(image.dtype), idx, patch, scale, source).view(b, k, 1, -1)
    if feature == "pixels":
        return (p * w).flatten(2)
    n = w.sum(dim=-1) + eps  # (B,K,1)
    mu = (p * w).sum(dim=-1) / n  # (B,K,3)
    var = (w * (p - mu[..., None]) ** 2).sum(dim=-1) / n
    return torch.cat([mu, torch.sqrt(var + eps)], dim=-1)


def info_nce(
    q: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    tau: float,
    exclude_diagonal: bool,
    anchor: torch.Tensor | None = None,
    neg_ok: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eqs. 10–11 for every query: ``(B,K,D)`` queries and positives, ``(B,N,D)`` negatives.

    ``ℓ_k = logsumexp(a_k·p_k/τ, q_k·n_1/τ, …) − a_k·p_k/τ`` with the anchor ``a = q``
    unless given (eq. 10's ``v^bg``). ``exclude_diagonal`` drops negative k from query k's
    sum (used when the negatives are the queries themselves); ``neg_ok`` ``(B,N)`` bool
    drops unfilled negative slots. Returns ``(B,K)`` losses.
    """
    a = q if anchor is None else anchor
    l_pos = (a * pos).sum(dim=-1, keepdim=True) / tau  # (B,K,1)
    l_neg = torch.bmm(q, neg.transpose(1, 2)) / tau  # (B,K,N)
    drop = torch.zeros_like(l_neg, dtype=torch.bool)
    if exclude_diagonal:
        drop = drop | torch.eye(q.shape[1], neg.shape[1], dtype=torch.bool, device=q.device)
    if neg_ok is not None:
        drop = drop | ~neg_ok[:, None, :]
    l_neg = l_neg.masked_fill(drop, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=-1)
    return torch.logsumexp(logits, dim=-1) - l_pos.squeeze(-1)


@dataclass(frozen=True)
class HCLTerms:
    """Everything L_HCL computed for a batch (``region_contrastive_loss(..., return_terms=True)``).

    Attributes:
        reading: the reading's name. locations: the :class:`Locations` used.
        query, positive, negative, anchor: ``(B,K,D)`` L2-normalised embeddings
            (``anchor`` is ``query`` for InfoNCE readings).
        per_query: ``(B,K)`` eq. 11 terms ``ℓ_k`` (0 where ``pair_ok`` is False).
        pair_ok: ``(B,K)`` bool, the term counts (query and positive slots filled).
        neg_ok: ``(B,K)`` bool, the negative slot counts in the softmax.
        per_image: ``(B,)`` mean of the counted terms (0 for a skipped image).
    """

    reading: str
    locations: Locations
    query: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    anchor: torch.Tensor
    per_query: torch.Tensor
    pair_ok: torch.Tensor
    neg_ok: torch.Tensor
    per_image: torch.Tensor


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
    reading: str | None = None,
    patch_source: str = "map",
    region_mask: bool = True,
    sampling: str = "capped",
    generator: torch.Generator | None = None,
    locations: Locations | tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    return_terms: bool = False,
):
    """L_HCL (eqs. 8–12) under one reading of eqs. 10–11 (module docstring, :data:`READINGS`).

    Args:
        pred: ``(B,3,H,W)`` harmonized output H (sRGB).
        target: ``(B,3,H,W)`` ground truth Ĥ (sRGB in [0,1]).
        mask: ``(B,1,H,W)`` float in ``{0,1}``.
        mlp: the shared embedder, ``(…, F) -> (…, D)`` with ``F = Reading.in_dim(patch)``.
        composite: ``(B,3,H,W)``; needed by readings that cut composite patches.
        k, patch, scale, tau, patch_source, region_mask, sampling: see :class:`LossConfig`.
        negatives: the legacy switch (``pred`` / ``composite``), used when ``reading`` is
            ``None``.
        reading: a key of :data:`READINGS`.
        generator: RNG for :func:`sample_locations`.
        locations: fixed :class:`Locations` (or a legacy ``(neg_idx, pos_idx, valid)``,
            every slot filled) instead of drawing.
        return_terms: also return the :class:`HCLTerms` (for the patch inspector).

    Returns:
        ``(loss, skipped)``: scalar loss (float32, or the inputs' dtype if float64) and
        the number of skipped images (long scalar); ``(loss, skipped, terms)`` with
        ``return_terms``.
    """
    name = reading if reading is not None else NEGATIVES_READING[negatives]
    spec: Reading = READINGS[name]
    if locations is None:
        locations = sample_locations(mask, k, scale, generator, sampling)
    elif not isinstance(locations, Locations):
        neg_idx, pos_idx, valid = locations
        full = valid[:, None].expand_as(neg_idx)
        locations = Locations(neg_idx, pos_idx, valid, full, full)
    images = {"pred": pred, "target": target, "composite": composite}
    m = mask.to(pred.dtype)
    region = {"fg": (locations.neg_idx, m), "bg": (locations.pos_idx, 1 - m)}
    ok = {"fg": locations.neg_ok, "bg": locations.pos_ok}
    vec: dict[tuple[str, str], torch.Tensor] = {}
    for src, reg in spec.patch_sets():
        if images[src] is None:
            raise ValueError(f"reading {name!r} needs the {src}")
        idx, w = region[reg]
        feats = patch_features(
            images[src], w if region_mask else None, idx, patch, scale, patch_source, spec.feature
        )
        vec[(src, reg)] = embed_filled(mlp, feats, ok[reg])
    q, v_pos, v_neg = vec[spec.query], vec[spec.positive], vec[spec.negative]
    anchor = vec[spec.anchor] if spec.anchor is not None else None
    neg_ok = ok[spec.negative[1]]
    pair_ok = ok[spec.query[1]] & ok[spec.positive[1]]
    if spec.anchor is not None:
        pair_ok = pair_ok & ok[spec.anchor[1]]
    per = info_nce(q, v_pos, v_neg, tau, spec.exclude_self, anchor, neg_ok)  # (B,K), eq. 11
    per = torch.where(pair_ok, per, torch.zeros_like(per))
    n_ok = pair_ok.sum(dim=1)
    per_image = per.sum(dim=1) / n_ok.clamp_min(1).to(per.dtype)  # eq. 12: mean over K ...
    valid = locations.valid & (n_ok > 0)
    per_image = torch.where(valid, per_image, torch.zeros_like(per_image))
    loss = per_image.sum() / pred.shape[0]  # ... then over the batch (skipped = 0)
    skipped = (~valid).sum()
    if not return_terms:
        return loss, skipped
    terms = HCLTerms(
        name, locations, q, v_pos, v_neg, q if anchor is None else anchor, per, pair_ok,
        neg_ok, per_image,
    )  # fmt: skip
    return loss, skipped, terms
