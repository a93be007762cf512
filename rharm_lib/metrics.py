"""Paper-convention metrics: MSE, PSNR, SSIM, fMSE, fSSIM (the iHarmony4 protocol).

The protocol (also in README.md, section "Evaluation protocol"):

1. **Size.** Images are evaluated at ``eval_size`` x ``eval_size`` (default 256, as
   iHarmony4 methods report): the prediction and the target are resized with PIL
   bilinear when they are not already that size; the mask with PIL nearest, then
   binarised at 0.5. ``eval_size=None`` keeps the native resolution (the paper's
   high-resolution Table IV at 512/1024).
2. **Quantisation.** A prediction is clamped to ``[0,255]`` and rounded to uint8, as if
   saved to a PNG, *before* any resizing.
3. **Per image**, on the 0-255 scale in float64, with ``p`` = prediction, ``t`` = target,
   ``m`` = mask (H,W) in {0,1}:

   - ``mse``  = mean over H·W·3 of (p - t)²;
   - ``psnr`` = 10·log10(255² / mse), capped at :data:`PSNR_CAP` dB (reached at mse = 0,
     where the formula is infinite);
   - ``psnr_peak`` = 10·log10(max(t)² / (mse + 1e-6)): saic-vul's ``PSNRMetric``
     (iharm/inference/metrics.py), which uses the target's own maximum as the peak; a
     black target (max 0) uses a peak of 1 so that the value stays finite;
   - ``fmse`` = Σ m·(p - t)² / (3·Σ m);
   - ``ssim``: Wang et al. 2004 with an 11x11 Gaussian window of σ = 1.5, K1 = 0.01,
     K2 = 0.03, data range 255, population (not sample) covariances, per channel then
     averaged, over the "valid" region (5-pixel border excluded), exactly as
     ``skimage.metrics.structural_similarity`` computes it;
   - ``fssim`` = the mean of the SSIM map over the foreground pixels and the 3 channels.
     Decision: the *full* SSIM map is used (border pixels included, computed by skimage
     with reflected padding) so that a foreground touching the border is not dropped;
     with a full mask fSSIM therefore differs from SSIM by the border only.

4. **Pooling.** The image-weighted (per-image) mean per subset and over all images
   (``All``). An image whose mask has no foreground pixel at the evaluation size gets NaN
   for ``fmse`` and ``fssim``; it is left out of those two means and counted in
   ``n_fg_skipped``. Nothing becomes NaN otherwise (constant images, full masks,
   one-pixel masks included).

Reused rather than re-written: scikit-image's ``structural_similarity`` (the SSIM map, a
well-tested implementation of Wang et al.'s formula with their Gaussian window) and PIL's
resampling (the filters iHarmony4 loaders use). MSE/PSNR/fMSE are one line of NumPy each.
Tests cross-check everything against ``skimage.metrics`` and a float64 NumPy/SciPy
re-computation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image
from skimage.metrics import structural_similarity

from .errors import RharmInputError

__all__ = [
    "EVAL_SIZE",
    "PSNR_CAP",
    "METRICS",
    "SUMMARY_COLUMNS",
    "PROTOCOL",
    "to_uint8",
    "resize_image",
    "resize_mask",
    "prepare_for_eval",
    "image_metrics",
    "summarize",
    "summary_markdown",
]

#: default evaluation size (iHarmony4 convention)
EVAL_SIZE = 256
#: PSNR in dB given when MSE is 0 (and the upper bound of ``psnr``)
PSNR_CAP = 100.0
#: per-image metric keys, in table order
METRICS = ("mse", "psnr", "psnr_peak", "fmse", "ssim", "fssim")
#: columns of ``summary.csv``
SUMMARY_COLUMNS = ("subset", "n", *METRICS, "n_fg_skipped")
#: metrics that are NaN for an image without foreground
FG_METRICS = ("fmse", "fssim")

_PEAK_EPS = 1e-6  # saic-vul's PSNRMetric epsilon
_SSIM_KW = dict(
    gaussian_weights=True,  # 11x11 window: radius int(3.5 * 1.5 + 0.5) = 5
    sigma=1.5,
    use_sample_covariance=False,
    K1=0.01,
    K2=0.03,
    data_range=255,
    channel_axis=-1,
    full=True,
)

#: the protocol as a JSON-able record (copied into every provenance.json)
PROTOCOL = {
    "eval_size": EVAL_SIZE,
    "resize_images": "PIL bilinear (prediction, target, and composite when methods run at eval size)",
    "resize_mask": "PIL nearest, binarised at 0.5",
    "quantisation": "prediction clamped to [0,255] and rounded to uint8 before resizing",
    "mse": "mean over H*W*3, 0-255 scale",
    "psnr": f"10*log10(255^2/mse), capped at {PSNR_CAP} dB",
    "psnr_peak": "10*log10(max(target)^2/(mse+1e-6)) (saic-vul PSNRMetric)",
    "fmse": "sum(m*(p-t)^2)/(3*sum(m))",
    "ssim": "Wang 2004, Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, range 255, population "
    "covariance, per channel then averaged, border-cropped mean (skimage structural_similarity)",
    "fssim": "mean of the full SSIM map over foreground pixels and channels",
    "pooling": "image-weighted mean per subset and over all images (All); images without "
    "foreground get NaN fmse/fssim, are excluded from those means and counted in n_fg_skipped",
}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clamp to ``[0,255]`` and round to uint8, as if saved to a PNG.

    Args:
        image: ``(H,W,3)`` array on the 0-255 scale (uint8 passes through unchanged;
            floats are rounded half to even by ``np.rint``).

    Returns:
        ``(H,W,3)`` uint8.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number):
        raise RharmInputError(f"expected a numeric image, got dtype {image.dtype}")
    out = np.rint(np.clip(image.astype(np.float64), 0.0, 255.0))
    out[np.isnan(out)] = 0  # NaN would otherwise become an arbitrary uint8
    return out.astype(np.uint8)


def resize_image(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize an sRGB uint8 image to ``size`` x ``size`` with PIL bilinear.

    Args:
        image: ``(H,W,3)`` uint8.
        size: the side in pixels; ``None`` or the image's own size returns it unchanged.

    Returns:
        ``(size,size,3)`` uint8.
    """
    if size is None or image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def resize_mask(mask: np.ndarray, size: int | None) -> np.ndarray:
    """Resize a mask with PIL nearest and binarise at 0.5.

    Args:
        mask: ``(H,W)`` uint8 in ``{0,1}`` or ``{0,255}`` (values above 1 are read on the
            0-255 scale), or float in ``[0,1]``.
        size: the side in pixels, or ``None`` to keep the size (only binarised).

    Returns:
        ``(size,size)`` uint8 in ``{0,1}``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RharmInputError(f"expected a mask of shape (H,W), got {mask.shape}")
    if mask.dtype == np.bool_:
        m = mask.astype(np.float32)
    elif np.issubdtype(mask.dtype, np.integer):
        m = mask.astype(np.float32)
        if m.size and m.max() > 1:
            m /= 255.0
    else:
        m = mask.astype(np.float32)
    if size is not None and m.shape != (size, size):
        m = np.asarray(Image.fromarray(m, mode="F").resize((size, size), Image.NEAREST))
    return (m >= 0.5).astype(np.uint8)


def prepare_for_eval(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray, size: int | None = EVAL_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bring a prediction, its target and its mask to the evaluation convention.

    Args:
        pred: ``(H',W',3)`` uint8, or float on the 0-255 scale (clamped and rounded first);
            it may differ in size from ``target`` when ``size`` is given (e.g. a method run
            at 256 on a 300x200 target), and must equal it when ``size`` is ``None``.
        target: ``(H,W,3)`` uint8 sRGB.
        mask: ``(H,W)`` in ``{0,1}`` (see :func:`resize_mask`), the target's size.
        size: evaluation side (default 256); ``None`` = native resolution.

    Returns:
        ``(pred, target, mask)``: ``(S,S,3)`` uint8, ``(S,S,3)`` uint8, ``(S,S)`` uint8 {0,1}.

    Raises:
        RharmInputError: quoting the shapes when they disagree.
    """
    pred, target, mask = np.asarray(pred), np.asarray(target), np.asarray(mask)
    if target.ndim != 3 or target.shape[2] != 3 or target.dtype != np.uint8:
        raise RharmInputError(f"expected target uint8 (H,W,3), got {target.dtype} {target.shape}")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise RharmInputError(f"expected prediction (H,W,3), got {pred.shape}")
    if size is None and pred.shape != target.shape:
        raise RharmInputError(
            f"prediction shape {pred.shape} differs from target shape {target.shape}"
        )
    if mask.shape != target.shape[:2]:
        raise RharmInputError(f"mask shape {mask.shape} does not match target shape {target.shape}")
    pred = to_uint8(pred)
    return resize_image(pred, size), resize_image(target, size), resize_mask(mask, size)


def image_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Per-image metrics at the size given (see the module docstring for the conventions).

    Call :func:`prepare_for_eval` first to apply the resizing protocol.

    Args:
        pred: ``(H,W,3)`` uint8 sRGB prediction.
        target: ``(H,W,3)`` uint8 sRGB ground truth.
        mask: ``(H,W)`` uint8 in ``{0,1}``, 1 = foreground.

    Returns:
        ``{"mse", "psnr", "psnr_peak", "fmse", "ssim", "fssim"}`` as floats; ``fmse`` and
        ``fssim`` are NaN when the mask has no foreground pixel.

    Raises:
        RharmInputError: on a dtype or shape that is not as above, or an image smaller than
            the 11x11 SSIM window.

    >>> t = np.zeros((16, 16, 3), np.uint8); m = np.zeros((16, 16), np.uint8); m[4:8, 4:8] = 1
    >>> r = image_metrics(t, t, m); r["mse"], r["psnr"], r["fmse"], r["ssim"]
    (0.0, 100.0, 0.0, 1.0)
    """
    pred, target, mask = np.asarray(pred), np.asarray(target), np.asarray(mask)
    if pred.dtype != np.uint8 or target.dtype != np.uint8:
        raise RharmInputError(
            f"expected uint8 pred and target, got {pred.dtype} and {target.dtype}"
        )
    if target.ndim != 3 or target.shape[2] != 3 or pred.shape != target.shape:
        raise RharmInputError(
            f"expected pred and target of one shape (H,W,3), got {pred.shape} and {target.shape}"
        )
    if mask.shape != target.shape[:2]:
        raise RharmInputError(f"mask shape {mask.shape} does not match image shape {target.shape}")
    if min(target.shape[:2]) < 11:
        raise RharmInputError(f"image {target.shape} is smaller than the 11x11 SSIM window")
    p = pred.astype(np.float64)
    t = target.astype(np.float64)
    m = (mask > 0).astype(np.float64)
    sq = (p - t) ** 2
    mse = float(sq.mean())
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))
    peak = max(float(t.max()), 1.0)
    psnr_peak = 10.0 * math.log10(peak**2 / (mse + _PEAK_EPS))
    n_fg = float(m.sum())
    # skimage returns the border-cropped mean (Wang's "valid" region) and the full map.
    ssim, smap = structural_similarity(t, p, **_SSIM_KW)
    if n_fg > 0:
        fmse = float((sq * m[:, :, None]).sum() / (3.0 * n_fg))
        fssim = float((smap * m[:, :, None]).sum() / (3.0 * n_fg))
    else:
        fmse = fssim = float("nan")
    return {
        "mse": mse,
        "psnr": float(psnr),
        "psnr_peak": float(psnr_peak),
        "fmse": fmse,
        "ssim": float(ssim),
        "fssim": fssim,
    }


def summarize(per_image: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Pool per-image metrics into one row per subset plus ``All``.

    Args:
        per_image: one row per image with a ``subset`` column and the :data:`METRICS`.
        order: subset order of the rows (default: order of first appearance).

    Returns:
        DataFrame with :data:`SUMMARY_COLUMNS`: ``n`` = images, each metric the image-weighted
        mean; ``fmse``/``fssim`` skip NaN (images without foreground), and
        ``n_fg_skipped`` counts the images skipped. The last row is ``All``.

    Raises:
        RharmInputError: when ``per_image`` is empty or misses a column.
    """
    missing = [c for c in ("subset", *METRICS) if c not in per_image.columns]
    if missing:
        raise RharmInputError(f"per-image table lacks columns {missing}")
    if len(per_image) == 0:
        raise RharmInputError("no images to summarise")
    subsets = list(order) if order is not None else list(dict.fromkeys(per_image["subset"]))
    groups = [(s, per_image[per_image["subset"] == s]) for s in subsets]
    groups.append(("All", per_image))
    rows = []
    for name, g in groups:
        row: dict[str, object] = {"subset": name, "n": int(len(g))}
        for k in METRICS:
            vals = g[k].to_numpy(dtype=np.float64)
            ok = ~np.isnan(vals)
            row[k] = float(vals[ok].mean()) if ok.any() else float("nan")
        row["n_fg_skipped"] = int(g["fmse"].isna().sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


_FORMATS = {"mse": "{:.2f}", "psnr": "{:.2f}", "psnr_peak": "{:.2f}", "fmse": "{:.2f}",
            "ssim": "{:.4f}", "fssim": "{:.4f}"}  # fmt: skip


def summary_markdown(summary: pd.DataFrame, title: str | None = None) -> str:
    """A Markdown table of a :func:`summarize` result (MSE/fMSE/PSNR 2 decimals, SSIM 4).

    Args:
        summary: the output of :func:`summarize`.
        title: optional first line (e.g. the method and data).

    Returns:
        The Markdown text, ending with a newline.
    """
    header = ["subset", "n", "MSE", "PSNR", "PSNR (peak)", "fMSE", "SSIM", "fSSIM", "no-fg"]
    lines = []
    if title:
        lines += [title, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * 8) + "|"]
    for _, r in summary.iterrows():
        cells = [str(r["subset"]), str(int(r["n"]))]
        cells += ["nan" if pd.isna(r[k]) else _FORMATS[k].format(r[k]) for k in METRICS]
        cells.append(str(int(r.get("n_fg_skipped", 0))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
