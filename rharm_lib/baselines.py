"""Classical baselines, the lower anchors of every table.

Each baseline is ``f(composite, mask) -> harmonized`` with ``composite`` ``(H,W,3)`` uint8
sRGB, ``mask`` ``(H,W)`` uint8 (foreground where ``> 0``) and an ``(H,W,3)`` uint8 sRGB
result whose background pixels are the composite's, bit for bit. :data:`BASELINES` is the
registry.

- ``composite``: the input itself (what every harmonization method must beat);
- ``reinhard``: Reinhard et al. 2001 colour transfer in CIELAB (D65): the foreground's
  per-channel mean and standard deviation are matched to the background's;
- ``histmatch``: per-channel (R, G, B) histogram matching of the foreground pixels to the
  background pixels (``skimage.exposure.match_histograms``).

Degenerate masks: an empty or full mask (no background or no foreground to use)
returns a copy of the composite. A foreground with zero standard deviation in a channel
(a one-pixel or flat region) gets only the mean shifted in ``reinhard`` (the scale is set
to 1 rather than dividing by 0); nothing produces NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from skimage.color import lab2rgb, rgb2lab
from skimage.exposure import match_histograms

from .errors import RharmInputError

__all__ = ["BASELINES", "composite_baseline", "reinhard", "histmatch"]

_STD_EPS = 1e-6


def _check(composite: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    composite, mask = np.asarray(composite), np.asarray(mask)
    if composite.dtype != np.uint8 or composite.ndim != 3 or composite.shape[2] != 3:
        raise RharmInputError(
            f"expected composite uint8 (H,W,3), got {composite.dtype} {composite.shape}"
        )
    if mask.shape != composite.shape[:2]:
        raise RharmInputError(
            f"expected mask (H,W) = {composite.shape[:2]} like composite {composite.shape}, got {mask.shape}"
        )
    return composite, mask > 0


def composite_baseline(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The identity: a copy of ``composite`` ``(H,W,3)`` uint8 (``mask`` only checked)."""
    composite, _ = _check(composite, mask)
    return composite.copy()


def reinhard(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer in CIELAB, foreground statistics to background statistics.

    Per Lab channel c: ``fg' = (fg - mean_fg) / std_fg * std_bg + mean_bg`` (population
    std; scale 1 where ``std_fg`` < 1e-6), then back to sRGB, clipped to ``[0,1]`` (colours
    pushed out of the sRGB gamut are clipped silently) and rounded to uint8.

    Args:
        composite: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` uint8, foreground where ``> 0``.

    Returns:
        ``(H,W,3)`` uint8 sRGB; background pixels equal ``composite``'s.
    """
    composite, fg = _check(composite, mask)
    out = composite.copy()
    if not fg.any() or fg.all():
        return out
    lab_fg = rgb2lab(composite[fg].astype(np.float64) / 255.0)  # (N,3) L*a*b*
    lab_bg = rgb2lab(composite[~fg].astype(np.float64) / 255.0)
    mu_f, sd_f = lab_fg.mean(0), lab_fg.std(0)
    mu_b, sd_b = lab_bg.mean(0), lab_bg.std(0)
    scale = np.where(sd_f > _STD_EPS, sd_b / np.maximum(sd_f, _STD_EPS), 1.0)
    lab_new = (lab_fg - mu_f) * scale + mu_b
    with warnings.catch_warnings():
        # out-of-gamut Lab values are expected here; they are clipped to [0,1] (documented)
        warnings.filterwarnings("ignore", message=".*negative Z values", category=UserWarning)
        rgb = np.clip(lab2rgb(lab_new), 0.0, 1.0)
    out[fg] = np.rint(rgb * 255.0).astype(np.uint8)
    return out


def histmatch(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel RGB histogram matching of the foreground pixels to the background pixels.

    Args:
        composite: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` uint8, foreground where ``> 0``.

    Returns:
        ``(H,W,3)`` uint8 sRGB (matched values rounded); background pixels unchanged.
    """
    composite, fg = _check(composite, mask)
    out = composite.copy()
    if not fg.any() or fg.all():
        return out
    # (N,1,3) "images" of pixels: only the foreground's and background's values matter.
    src = composite[fg].astype(np.float64)[:, None, :]
    ref = composite[~fg].astype(np.float64)[:, None, :]
    matched = match_histograms(src, ref, channel_axis=-1)[:, 0, :]
    out[fg] = np.rint(np.clip(matched, 0, 255)).astype(np.uint8)
    return out


#: registry: name -> ``f(composite uint8 (H,W,3), mask uint8 (H,W)) -> uint8 (H,W,3)``
BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "composite": composite_baseline,
    "reinhard": reinhard,
    "histmatch": histmatch,
}
