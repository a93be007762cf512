"""Full-resolution harmonization with bounded memory (issue 11): the network runs at a
*working size* and its colour change is carried to the image's own resolution by a cheap
transform (``fast``), or the network runs at full resolution in overlapping tiles
(``tiled``). ``native`` (the network on the whole image at once) lives in
:class:`rharm_lib.inference.Harmonizer`; this module needs only a ``predict`` callable.

Conventions: ``composite`` ``(H,W,3)`` uint8 sRGB; ``mask`` ``(H,W)`` uint8, foreground
where ``> 0``; results ``(H,W,3)`` uint8 sRGB whose background pixels are the input's,
bit for bit (they are never converted to float). ``predict(composite (1,3,h,w) float32
[0,1], mask (1,1,h,w) float32 {0,1}) -> (1,3,h,w) float32 [0,1]`` is
:meth:`Harmonizer.predict` (background = input's).

**Fast mode** (:func:`harmonize_fast`):

1. Downsample the composite with PIL's box filter (area average, the correct
   anti-alias for a large reduction) so that its long side is ``working_size``; the mask
   with the same filter gives the foreground fraction ``f`` of each working pixel, and the
   network sees ``f >= 0.5``. An image whose long side is ``<= working_size`` is not
   resized: fast mode is then exactly native mode.
2. ``pred = predict(composite_lo, mask_lo)``.
3. Fit a colour transform ``composite_lo -> pred`` on the foreground (weights ``w = f`` on
   working pixels with ``f >= 0.5``), one of :data:`LIFTS`:

   - ``local_affine`` (default, chosen by measurement; see README "Full-resolution
     harmonization"): at every working pixel a 3×4 affine colour map
     ``p = c + A' c + b`` fitted by weighted least squares in the ``(2r+1)²`` window
     around it, ridge-regularised towards the identity (``eps ||A'||²``: where the window
     has little colour variance the map becomes a pure offset, so texture is kept, unlike
     the plain guided filter which regularises towards a constant), then the
     coefficients averaged over the window again, weighted by each window's foreground
     weight. This is the guided filter of He et al. (2013) with a colour guide, fitted
     between the composite and the network's output rather than predicted (PCT-Net
     predicts such per-pixel transforms with a head; we fit them, so any network works).
   - ``global_affine``: one 3×4 affine over the whole foreground (the same fit with an
     infinite window).
   - ``offset``: a per-pixel colour offset (the residual ``pred - composite``), the
     weighted window mean: mask-normalised residual upsampling.

   Windows without foreground weight take the global fit, so the coefficient map is
   defined everywhere and no background colour can leak into the foreground's edge.
4. Upsample the coefficient maps bilinearly (``align_corners=False``, separably, exactly
   ``F.interpolate``'s sampling) to full resolution and apply them to the full-resolution
   composite, one band of rows at a time (:func:`apply_transform`), on foreground pixels
   only. Edges stay sharp because the full-resolution pixels, not the upsampled
   prediction, carry the detail.

**Tiled mode** (:func:`harmonize_tiled`): the network at full resolution on overlapping
tiles, blended with linear ramps, streamed by tile rows. The model is not local: the style
fusion (eqs. 4–7) uses masked channel statistics of whole feature maps and S²AM's channel
attention uses global average/max pooling. Decision (``stats="global"``, default): those
statistics are recorded once from a pass of the network on the whole image downsampled to
``stats_size`` (default 1024) and replayed in every tile (:func:`frozen_statistics`), so
each tile is normalised with the image's statistics, not its own. ``stats="tile"`` lets
each tile use its own statistics (the alternative; measured in README). Residual
differences to native mode come from the statistics being those of a smaller image, and
from the convolutions' context cut at tile borders (hidden by the overlap). Limitation: a
model configured with ``norm="instance"`` or ``"group"`` (per-image statistics inside the
norm layers; the presets use ``batch``, local in eval mode) is normalised per tile. An image
that fits in one tile runs natively.

Memory: the full-resolution work is done in bands of about ``band_pixels`` pixels, so
besides the input, the mask and the output (each the image's own uint8 size, the mask a
third of it) only the working-size network and O(band) float buffers are alive.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import RharmInputError

__all__ = [
    "MODES",
    "LIFTS",
    "FullResConfig",
    "Predictor",
    "check_pair",
    "downsample",
    "fit_transform",
    "apply_transform",
    "linear_weights",
    "harmonize_fast",
    "harmonize_tiled",
    "frozen_statistics",
    "boundary_band",
    "as_arrays",
]

#: harmonization modes: ``fast`` (working size + lift), ``native`` (whole image), ``tiled``
MODES = ("fast", "native", "tiled")
#: colour transforms that carry the working-size change to full resolution (module docstring)
LIFTS = ("local_affine", "global_affine", "offset")

#: ``predict(composite (1,3,h,w) float32 [0,1], mask (1,1,h,w) {0,1}) -> (1,3,h,w) [0,1]``
Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FullResConfig:
    """Options of the full-resolution modes.

    Attributes:
        working_size: long side (pixels) at which ``fast`` runs the network.
        lift: a key of :data:`LIFTS`.
        radius: window radius ``r`` of ``local_affine``/``offset``, in working pixels.
        eps: ridge weight towards the identity map (colour variance units, [0,1]² scale).
        band_pixels: about this many full-resolution pixels per streamed band.
        tile: tile side of ``tiled`` (full-resolution pixels; rounded up to a multiple of 16).
        overlap: overlap of neighbouring tiles (pixels), blended with linear ramps;
            at most ``tile // 4`` is used.
        stats: ``global`` (statistics of a ``stats_size`` pass replayed in every tile) or
            ``tile`` (each tile's own statistics).
        stats_size: long side of the statistics pass of ``tiled`` (1024: measured closer
            to native than 512 or per-tile statistics; README).
    """

    working_size: int = 512
    lift: str = "local_affine"
    radius: int = 4
    eps: float = 1e-3
    band_pixels: int = 1 << 20
    tile: int = 1024
    overlap: int = 128
    stats: str = "global"
    stats_size: int = 1024

    def __post_init__(self) -> None:
        if self.working_size < 16 or self.stats_size < 16:
            raise RharmInputError(
                f"working_size and stats_size must be >= 16, got {self.working_size}, "
                f"{self.stats_size}"
            )
        if self.lift not in LIFTS:
            raise RharmInputError(f"unknown lift {self.lift!r}; expected one of {LIFTS}")
        if self.radius < 0 or self.eps <= 0 or self.band_pixels < 1:
            raise RharmInputError(
                f"need radius >= 0, eps > 0, band_pixels >= 1; got {self.radius}, "
                f"{self.eps}, {self.band_pixels}"
            )
        if self.tile < 32 or self.overlap < 0:
            raise RharmInputError(
                f"need tile >= 32 and overlap >= 0; got {self.tile}, {self.overlap}"
            )
        if self.stats not in ("global", "tile"):
            raise RharmInputError(f"stats must be 'global' or 'tile', got {self.stats!r}")


def check_pair(composite: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a composite/mask pair at the public boundary.

    Returns:
        ``(composite (H,W,3) uint8 C-contiguous, mask (H,W) bool)``.

    Raises:
        RharmInputError: wrong dtype, number of dimensions, or sizes that disagree.
    """
    composite = np.ascontiguousarray(composite)
    mask = np.asarray(mask)
    if composite.dtype != np.uint8 or composite.ndim != 3 or composite.shape[2] != 3:
        raise RharmInputError(
            f"expected composite uint8 (H,W,3), got {composite.dtype} {composite.shape}"
        )
    if composite.shape[0] == 0 or composite.shape[1] == 0:
        raise RharmInputError(f"empty composite {composite.shape}")
    if mask.shape != composite.shape[:2]:
        raise RharmInputError(f"expected mask (H,W) = {composite.shape[:2]}, got {mask.shape}")
    return composite, mask > 0


def _lo_size(h: int, w: int, long_side: int) -> tuple[int, int]:
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def downsample(
    composite: np.ndarray, mask: np.ndarray, long_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter ``composite`` and ``mask`` so that the long side is ``long_side``.

    Args:
        composite: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` bool (or uint8 {0,1}).
        long_side: target long side; images already this small are returned as they are.

    Returns:
        ``(composite_lo (h,w,3) uint8, fraction (h,w) float32 in [0,1])``: the mask's
        foreground fraction per working pixel (quantised to 1/255).
    """
    h, w = composite.shape[:2]
    m8 = np.asarray(mask, dtype=bool).view(np.uint8) * np.uint8(255)
    if max(h, w) <= long_side:
        return composite, m8.astype(np.float32) / 255
    lh, lw = _lo_size(h, w, long_side)
    lo = np.asarray(Image.fromarray(composite).resize((lw, lh), Image.BOX))
    frac = np.asarray(Image.fromarray(m8).resize((lw, lh), Image.BOX), dtype=np.float32) / 255
    return lo, frac


def _box_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sum over the ``(2r+1)²`` window (zero outside) of ``(K,h,w)``, by cumulative sums."""
    if r == 0:
        return x
    c = np.pad(x, ((0, 0), (r + 1, r), (r + 1, r))).cumsum(1).cumsum(2)
    s = 2 * r + 1
    return c[:, s:, s:] - c[:, :-s, s:] - c[:, s:, :-s] + c[:, :-s, :-s]


def _solve_affine(stats: np.ndarray, eps: float, affine: bool) -> np.ndarray:
    """Ridge least squares of ``r = A' c + b`` from window sums.

    Args:
        stats: ``(K,N)`` float64 window sums ``[w, w c (3), w r (3)]`` (``K = 7``) and,
            when ``affine``, ``w c c^T`` (9, row-major) and ``w r c^T`` (9): ``K = 25``.
        eps: ridge weight towards ``A' = 0``.
        affine: fit ``A'`` (else ``A' = 0``, ``b`` = mean residual).

    Returns:
        ``(12,N)`` float64: ``A'`` row-major (9) then ``b`` (3); NaN where ``w = 0``.
    """
    n = stats.shape[1]
    wsum = stats[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(wsum > 0, 1.0 / wsum, np.nan)
        mc, mr = stats[1:4] * inv, stats[4:7] * inv  # (3,N)
        out = np.zeros((12, n))
        if not affine:
            out[9:] = mr
            return out
        # centred covariances, (N,) arrays: S = Ccc + eps I (symmetric), R = Crc
        sc = [[stats[7 + 3 * i + j] * inv - mc[i] * mc[j] for j in range(3)] for i in range(3)]
        for i in range(3):
            sc[i][i] = sc[i][i] + eps
        rc = [[stats[16 + 3 * i + j] * inv - mr[i] * mc[j] for j in range(3)] for i in range(3)]
        # A' S = R  =>  A' = R S^-1, S^-1 = adj(S) / det(S) (closed form; S is SPD)
        (s00, s01, s02), (_, s11, s12), (_, _, s22) = sc
        i00, i11, i22 = s11 * s22 - s12 * s12, s00 * s22 - s02 * s02, s00 * s11 - s01 * s01
        i01, i02, i12 = s02 * s12 - s01 * s22, s01 * s12 - s02 * s11, s01 * s02 - s00 * s12
        det = s00 * i00 + s01 * i01 + s02 * i02
        sinv = [[i00, i01, i02], [i01, i11, i12], [i02, i12, i22]]
        for i in range(3):
            for j in range(3):
                out[3 * i + j] = (
                    rc[i][0] * sinv[0][j] + rc[i][1] * sinv[1][j] + rc[i][2] * sinv[2][j]
                ) / det
            out[9 + i] = mr[i] - (
                out[3 * i] * mc[0] + out[3 * i + 1] * mc[1] + out[3 * i + 2] * mc[2]
            )
    return out


def _moments(c: np.ndarray, r_: np.ndarray, w: np.ndarray, affine: bool) -> np.ndarray:
    """Per-pixel weighted moments ``(25 or 7, h, w)`` float64 (see :func:`_solve_affine`)."""
    wc, wr = w * c, w * r_
    parts = [w[None], wc, wr]
    if affine:
        parts += [wc[i : i + 1] * c[j] for i in range(3) for j in range(3)]
        parts += [wr[i : i + 1] * c[j] for i in range(3) for j in range(3)]
    return np.concatenate(parts, 0)


def fit_transform(
    composite_lo: torch.Tensor | np.ndarray,
    pred_lo: torch.Tensor | np.ndarray,
    weight: torch.Tensor | np.ndarray,
    lift: str = "local_affine",
    radius: int = 4,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Fit the colour transform ``composite_lo -> pred_lo`` on the weighted foreground.

    Computed in float64 NumPy (many small element-wise operations on a working-size
    image: single-threaded NumPy avoids thread synchronisation per operation).

    Args:
        composite_lo: ``(3,h,w)`` float sRGB in [0,1].
        pred_lo: ``(3,h,w)`` float sRGB in [0,1], the network's output.
        weight: ``(h,w)`` float >= 0, the foreground weight of each pixel.
        lift: a key of :data:`LIFTS`.
        radius: window radius of the local lifts (working pixels).
        eps: ridge weight towards the identity map.

    Returns:
        float32 coefficients of ``p = c + A' c + b``: ``(12,h,w)`` with ``A'`` row-major in
        channels 0–8 and ``b`` in 9–11 (``local_affine``), ``(12,1,1)`` (``global_affine``)
        or ``(3,h,w)``, ``b`` only (``offset``). Every pixel has finite coefficients (the
        identity when the weight is zero everywhere).
    """
    c, p, w = (
        np.asarray(x.detach().cpu().double() if isinstance(x, torch.Tensor) else x, np.float64)
        for x in (composite_lo, pred_lo, weight)
    )
    affine = lift != "offset"
    mom = _moments(c, p - c, w, affine)  # (K,h,w)
    k, h, wd = mom.shape
    glob = _solve_affine(mom.sum(axis=(1, 2))[:, None], eps, affine)  # (12,1)
    glob = np.nan_to_num(glob, nan=0.0)  # no foreground at all: the identity
    if lift == "global_affine":
        return torch.from_numpy(glob.reshape(12, 1, 1)).float()
    sums = _box_sum(mom, radius)  # window sums
    coef = _solve_affine(sums.reshape(k, -1), eps, affine).reshape(12, h, wd)
    # the guided filter's second average: each pixel's map is the weighted mean of the maps
    # of the windows covering it (weight = the window's foreground weight)
    ww = sums[0]
    coef = np.where(ww[None] > 0, coef, 0.0)
    num = _box_sum(coef * ww[None], radius)
    den = _box_sum(ww[None], radius)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.where(den[None] > 0, num / den[None], glob[:, :, None])
    coef = coef if affine else coef[9:]
    return torch.from_numpy(np.ascontiguousarray(coef, dtype=np.float32))


def linear_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of 1-D linear resampling, ``align_corners=False``.

    ``src = (i + 0.5) n_in / n_out - 0.5`` clamped at 0 (PyTorch's rule), so that
    ``out[i] = x[i0] (1 - l) + x[i1] l`` equals ``F.interpolate(mode="bilinear")``.

    Returns:
        ``(i0, i1, l)``: int64 ``(n_out,)``, int64 ``(n_out,)``, float32 ``(n_out,)``.
    """
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def _bands(h: int, w: int, band_pixels: int) -> Iterator[tuple[int, int]]:
    step = max(1, band_pixels // max(w, 1))
    for y0 in range(0, h, step):
        yield y0, min(h, y0 + step)


def apply_transform(
    composite: np.ndarray,
    mask: np.ndarray,
    coef: torch.Tensor,
    band_pixels: int = 1 << 20,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply coefficient maps at full resolution, one band of rows at a time.

    Args:
        composite: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` bool, the pixels to change.
        coef: ``(12,h,w)`` (affine) or ``(3,h,w)`` (offset) float32 from
            :func:`fit_transform`, upsampled bilinearly (``align_corners=False``) to
            ``(H,W)``; a ``1x1`` map is constant.
        band_pixels: about this many pixels per band (bounds the float buffers).
        out: where to write (default: a copy of ``composite``); its background is
            left untouched.

    Returns:
        ``(H,W,3)`` uint8: ``round(clamp(c + A' c + 255 b, 0, 255))`` with ``c`` on the
        0–255 scale, on the mask; the input elsewhere (bit for bit).
    """
    hh, ww = composite.shape[:2]
    if out is None:
        out = composite.copy()
    k, ch, cw = coef.shape
    if k not in (3, 12):
        raise RharmInputError(f"expected coefficients (12,h,w) or (3,h,w), got {tuple(coef.shape)}")
    # work on the 0-255 scale: A' is unitless, b is scaled once here
    coef = coef.float().clone()
    coef[-3:] *= 255.0
    if ch == 1 and cw == 1:  # one map for the whole image: a 3x3 matrix product per pixel
        m = torch.eye(3)
        if k == 12:
            m = m + coef[:9, 0, 0].reshape(3, 3)
        mt, b = m.T.contiguous(), coef[-3:, 0, 0]
    else:
        # bilinear resampling (align_corners=False) as two sparse-as-dense matrix products:
        # columns for the needed coefficient rows, then rows (exactly F.interpolate's sampling)
        rx = _resample_matrix(ww, cw)  # (cw, W)
        ri0, ri1, rl = linear_weights(hh, ch)
    for y0, y1 in _bands(hh, ww, band_pixels):
        mb = mask[y0:y1]
        cols = np.flatnonzero(mb.any(axis=0))
        if cols.size == 0:
            continue
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        nb, nw = y1 - y0, x1 - x0
        c8 = torch.from_numpy(np.array(composite[y0:y1, x0:x1]))  # (b,w,3) uint8
        if ch == 1 and cw == 1:
            res = torch.addmm(b, c8.reshape(-1, 3).float(), mt).reshape(nb, nw, 3)
        else:
            a0, a1 = int(ri0[y0:y1].min()), int(ri1[y0:y1].max()) + 1
            nr = a1 - a0
            gx = coef[:, a0:a1].reshape(k * nr, cw) @ rx[:, x0:x1]  # (K*r, w)
            gx = gx.reshape(k, nr, nw).transpose(0, 1).reshape(nr, k * nw)
            ry = torch.zeros(nb, nr)
            rows = torch.arange(nb)
            lw = torch.from_numpy(rl[y0:y1])
            ry.index_put_((rows, torch.from_numpy(ri0[y0:y1] - a0)), 1 - lw, accumulate=True)
            ry.index_put_((rows, torch.from_numpy(ri1[y0:y1] - a0)), lw, accumulate=True)
            g = (ry @ gx).reshape(nb, k, nw)  # (b,K,w): the maps at these pixels
            c = c8.permute(0, 2, 1).contiguous().float()  # (b,3,w)
            res = c + g[:, -3:]  # c + b
            if k == 12:  # + A' c
                for i in range(3):
                    for jj in range(3):
                        res[:, i].addcmul_(g[:, 3 * i + jj], c[:, jj])
            res = res.permute(0, 2, 1)
        res8 = res.clamp_(0, 255).round_().to(torch.uint8).numpy()
        np.copyto(out[y0:y1, x0:x1], res8, where=mb[:, x0:x1, None])
    return out


def _resample_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """``(n_in, n_out)`` float32 matrix of 1-D linear resampling (:func:`linear_weights`)."""
    i0, i1, lw = linear_weights(n_out, n_in)
    m = torch.zeros(n_in, n_out)
    cols = torch.arange(n_out)
    m.index_put_((torch.from_numpy(i0), cols), torch.from_numpy(1 - lw), accumulate=True)
    m.index_put_((torch.from_numpy(i1), cols), torch.from_numpy(lw), accumulate=True)
    return m


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(h,w,3)`` uint8 -> ``(1,3,h,w)`` float32 in [0,1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None].float().div_(255)


def _native(predict: Predictor, composite: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """The network on the whole image, rounded; background copied (as ``Harmonizer()``)."""
    pred = predict(_to_tensor(composite), torch.from_numpy(fg.astype(np.float32))[None, None])
    p8 = pred[0].mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    out = composite.copy()
    np.copyto(out, p8, where=fg[:, :, None])
    return out


def harmonize_fast(
    predict: Predictor,
    composite: np.ndarray,
    mask: np.ndarray,
    cfg: FullResConfig = FullResConfig(),
) -> np.ndarray:
    """Fast mode: the network at ``cfg.working_size``, lifted to full resolution.

    Args:
        predict: see :data:`Predictor`.
        composite: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` foreground where ``> 0``.
        cfg: options (working size, lift, window, bands).

    Returns:
        ``(H,W,3)`` uint8; background bit-identical to ``composite``.
    """
    composite, fg = check_pair(composite, mask)
    h, w = fg.shape
    if max(h, w) <= cfg.working_size:  # small enough: exactly native mode
        return _native(predict, composite, fg)
    if not fg.any():
        return composite.copy()
    lo, frac = downsample(composite, fg, cfg.working_size)
    m_lo = frac >= 0.5
    c_lo = _to_tensor(lo)
    if m_lo.any():
        pred = predict(c_lo, torch.from_numpy(m_lo.astype(np.float32))[None, None])[0].cpu()
    else:  # the foreground vanishes at the working size: nothing to learn from
        pred = c_lo[0]
    weight = torch.from_numpy(frac * m_lo)
    coef = fit_transform(c_lo[0], pred.float(), weight, cfg.lift, cfg.radius, cfg.eps)
    return apply_transform(composite, fg, coef, cfg.band_pixels)


def boundary_band(mask: np.ndarray, width: int = 4) -> np.ndarray:
    """Foreground pixels within ``width`` pixels (chessboard distance) of the background.

    The band where an upsampled transform would show a halo. Pixels on the image border
    are not counted as boundary.

    Args:
        mask: ``(H,W)`` foreground where ``> 0``.
        width: band width in pixels.

    Returns:
        ``(H,W)`` bool.
    """
    fg = torch.from_numpy(np.asarray(mask) > 0)[None, None].float()
    bg_near = F.max_pool2d(
        F.pad(1 - fg, (width,) * 4, mode="replicate"), 2 * width + 1, stride=1
    )  # 1 where a background pixel is within `width`
    return ((bg_near[0, 0] > 0) & (fg[0, 0] > 0)).numpy()


# --- tiled mode ------------------------------------------------------------------------


class _StatsTape:
    """Recorded global statistics of one forward pass, replayed in call order."""

    def __init__(self) -> None:
        self.items: list = []
        self.pos = 0
        self.recording = True

    def take(self, compute: Callable[[], object]) -> object:
        if self.recording:
            v = compute()
            self.items.append(v)
            return v
        if self.pos >= len(self.items):
            raise RuntimeError("statistics replay ran past the recorded pass")
        v = self.items[self.pos]
        self.pos += 1
        return v


@contextlib.contextmanager
def frozen_statistics(net: torch.nn.Module, tape: _StatsTape) -> Iterator[_StatsTape]:
    """Record (``tape.recording``) or replay the network's whole-image statistics.

    Patches, for the duration of the ``with`` block, the masked statistics of the fusion
    layers (:func:`rharm_lib.model.fusion.masked_mean_std` and the "has a background"
    test, eqs. 4–5) and the global pooled descriptors of S²AM's channel attentions
    (:func:`rharm_lib.model.s2am.pooled_descriptors`). In
    replay, every call returns the value recorded at the same position of the recording
    pass, so a tile is normalised with the whole image's statistics. Not thread-safe
    (module-level functions are swapped).
    """
    from .model import fusion as fusion_mod
    from .model import s2am as s2am_mod

    saved_mms, saved_has = fusion_mod.masked_mean_std, fusion_mod._has_region
    saved_pool = s2am_mod.pooled_descriptors

    def mms(x, weight, eps=1e-5):
        m, s = tape.take(lambda: saved_mms(x, weight, eps))
        return m.to(x.dtype), s.to(x.dtype)

    def has(weight):
        return tape.take(lambda: saved_has(weight))

    def pooled(x):
        avg, mx = tape.take(lambda: saved_pool(x))
        return avg.to(x.dtype), mx.to(x.dtype)

    fusion_mod.masked_mean_std, fusion_mod._has_region = mms, has
    s2am_mod.pooled_descriptors = pooled
    try:
        yield tape
    finally:
        fusion_mod.masked_mean_std, fusion_mod._has_region = saved_mms, saved_has
        s2am_mod.pooled_descriptors = saved_pool


def _starts(n: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: stride ``tile - overlap``, the last one flush with the end."""
    if n <= tile:
        return [0]
    stride = tile - overlap
    k = math.ceil((n - tile) / stride)
    s = [i * stride for i in range(k)] + [n - tile]
    return sorted(set(s))


def _ramp(n: int, lo_overlap: int, hi_overlap: int) -> np.ndarray:
    """Blending weights ``(n,)``: linear ramps over the overlaps, 1 inside (never 0)."""
    r = np.ones(n, np.float32)
    if lo_overlap > 0:
        r[:lo_overlap] = (np.arange(lo_overlap) + 1) / (lo_overlap + 1)
    if hi_overlap > 0:
        r[n - hi_overlap :] = np.minimum(
            r[n - hi_overlap :], (np.arange(hi_overlap, 0, -1)) / (hi_overlap + 1)
        )
    return r


def harmonize_tiled(
    predict: Predictor,
    net: torch.nn.Module,
    composite: np.ndarray,
    mask: np.ndarray,
    cfg: FullResConfig = FullResConfig(),
) -> np.ndarray:
    """Tiled native mode: the network at full resolution on overlapping tiles.

    Args:
        predict: see :data:`Predictor` (it must run ``net``).
        net: the network inside ``predict`` (its statistics are recorded/replayed).
        composite: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` foreground where ``> 0``.
        cfg: ``tile``, ``overlap``, ``stats``, ``stats_size``.

    Returns:
        ``(H,W,3)`` uint8, background bit-identical; equal to native mode when the image
        fits in one tile. Tiles are blended with linear ramps over their overlaps and
        written one tile row at a time (float buffers of ``tile x W`` pixels).
    """
    composite, fg = check_pair(composite, mask)
    h, w = fg.shape
    tile = -(-cfg.tile // 16) * 16
    out = composite.copy()
    if not fg.any():
        return out
    if h <= tile and w <= tile:  # one tile: exactly native mode
        return _native(predict, composite, fg)
    tape = _StatsTape()
    ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    if cfg.stats == "global":
        lo, frac = downsample(composite, fg, cfg.stats_size)
        m_lo = torch.from_numpy((frac >= 0.5).astype(np.float32))[None, None]
        with frozen_statistics(net, tape):
            predict(_to_tensor(lo), m_lo)
        tape.recording = False
        ctx = frozen_statistics(net, tape)
    ov = min(cfg.overlap, tile // 4)
    ys, xs = _starts(h, tile, ov), _starts(w, tile, ov)
    carry: np.ndarray | None = None  # accumulated (rows, W, 4) still owed by the last row
    carry_y = 0
    with ctx:
        for iy, y0 in enumerate(ys):
            y1 = min(h, y0 + tile)
            acc = np.zeros((y1 - y0, w, 4), np.float32)  # r, g, b, weight
            if carry is not None:
                acc[: carry.shape[0] - (y0 - carry_y)] += carry[y0 - carry_y :]
            ry = _ramp(
                y1 - y0,
                (ys[iy - 1] + tile - y0) if iy > 0 else 0,
                (y1 - ys[iy + 1]) if iy + 1 < len(ys) else 0,
            )
            for ix, x0 in enumerate(xs):
                x1 = min(w, x0 + tile)
                tfg = fg[y0:y1, x0:x1]
                rx = _ramp(
                    x1 - x0,
                    (xs[ix - 1] + tile - x0) if ix > 0 else 0,
                    (x1 - xs[ix + 1]) if ix + 1 < len(xs) else 0,
                )
                wt = ry[:, None] * rx[None, :]
                if tfg.any():
                    tape.pos = 0
                    pred = predict(
                        _to_tensor(composite[y0:y1, x0:x1]),
                        torch.from_numpy(tfg.astype(np.float32))[None, None],
                    )[0]
                    p = pred.permute(1, 2, 0).cpu().numpy()
                else:
                    p = composite[y0:y1, x0:x1].astype(np.float32) / 255
                acc[:, x0:x1, :3] += p * wt[:, :, None]
                acc[:, x0:x1, 3] += wt
            done = (ys[iy + 1] - y0) if iy + 1 < len(ys) else (y1 - y0)
            for r0 in range(0, done, 64):  # finish in small row chunks: few temporaries
                r1 = min(done, r0 + 64)
                blend = acc[r0:r1, :, :3] / acc[r0:r1, :, 3:]
                b8 = np.rint(np.clip(blend, 0, 1, out=blend) * 255).astype(np.uint8)
                np.copyto(out[y0 + r0 : y0 + r1], b8, where=fg[y0 + r0 : y0 + r1, :, None])
            carry, carry_y = acc, y0
    return out


def as_arrays(composite, mask) -> tuple[np.ndarray, np.ndarray]:
    """NumPy or PIL inputs -> ``(composite (H,W,3) uint8, mask (H,W) uint8 {0,1})``.

    A PIL composite is converted to RGB (alpha dropped); a PIL mask is read like
    :func:`rharm_lib.data.imageio.load_mask` (grayscale, ``>= 128``, or as is when all
    values are 0/1). A NumPy mask is foreground where ``> 0``.

    Raises:
        RharmInputError: via :func:`check_pair` on bad dtypes or shapes.
    """
    if isinstance(composite, Image.Image):
        composite = np.asarray(composite.convert("RGB"))
    if isinstance(mask, Image.Image):
        m = np.asarray(mask if mask.mode in ("L", "1") else mask.convert("L"), dtype=np.uint8)
        mask = m if (m.size == 0 or m.max() <= 1) else (m >= 128)
    composite, fg = check_pair(composite, mask)
    return composite, fg.view(np.uint8)
