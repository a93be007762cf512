"""iHarmony4-style composite synthesis: change the masked region's appearance, keep the rest.

A harmonization pair is made the way iHarmony4 made its pairs: the real photograph is the
ground truth (``target``), and the composite is the same photograph whose foreground
(``mask == 1``) has been given another appearance. Four families model iHarmony4's four
subsets:

- ``transfer`` (HCOCO-like): Reinhard colour transfer in CIELab -- the foreground's per-channel
  mean and standard deviation are moved towards those of another photo's masked region.
- ``histogram`` (HFlickr-like): a lookup-table transfer -- per RGB channel, the foreground's
  histogram is matched to another photo's masked region (mid-rank CDF -> reference quantile).
- ``retouch`` (HAdobe5k-like): a photographic edit as an expert would make it -- exposure,
  white balance (temperature, tint), contrast, gamma, saturation and an S/anti-S tone curve.
- ``relight`` (Hday2night-like): a strong illumination change -- a linear-light gain of
  -3.0..+1.5 EV with a colour cast (warm or cool), and a gamma change.

Magnitude model (the calibration, sampler version :data:`SAMPLER_VERSION`): each composite
draws its *foreground* error -- the input fMSE on the 0..255 scale -- from iHarmony4's per-image
distribution of input fMSE (:mod:`rharm_lib.data.ihd_stats`: the family's subset, HCOCO /
HFlickr / HAdobe5k / Hday2night, or All with ``magnitude_source="all"``) by inverse transform
of one uniform, and the family's edit ``d = edited - target`` is scaled by one factor per image
to meet it (amplified by at most ``amplify_max``; fMSE at most ``fmse_max``). Every composite
therefore has a visible foreground change at the rate iHarmony4 has one (its smallest input
fMSE is 39). The foreground size is not decided here but by the mask rule
(:mod:`rharm_lib.data.mask_rule`), which the benchmark applies before calling
:func:`synthesize`.

Everything is pure torch, batched (a Python loop over at most the four families, never over
images), the same code on CPU and GPU, and deterministic for a given ``torch.Generator``: each
image draws the same fixed number of uniforms whatever its family, so one image's composite
does not depend on the families of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..batch import check_images
from ..errors import RharmInputError
from . import ihd_stats

__all__ = [
    "FAMILIES",
    "SAMPLER_VERSION",
    "SynthConfig",
    "synthesize",
    "target_fmse",
    "rgb_to_lab",
    "lab_to_rgb",
    "measure_throughput",
]

#: the composite families, in the order of the benchmark's subsets
FAMILIES: tuple[str, ...] = ("transfer", "histogram", "retouch", "relight")

#: version of the composite sampler (edits, magnitude model and the mask rule of
#: :mod:`rharm_lib.data.mask_rule`): 1 = image MSE log-normal scaled to iHarmony4's means;
#: 2 = per-image fMSE from iHarmony4's per-image quantiles, foreground size by the mask rule.
#: The benchmark writes it into its manifest (``benchmark.json``), so a change renames it.
SAMPLER_VERSION = 2

#: how many uniforms each image draws (the same for every family, for determinism)
_N_UNIFORMS = 12
#: refinement steps of the magnitude scaling (clipping makes the MSE non-quadratic in scale)
_MAGNITUDE_STEPS = 3


@dataclass(frozen=True)
class SynthConfig:
    """Parameter ranges of the four families and of the magnitude model.

    Ranges are ``(low, high)`` of a uniform draw. ``*_ev`` are photographic stops
    (a factor ``2**ev`` in linear light). MSE thresholds are on the 0..255 scale.

    The defaults are the calibrated values (``rharm data calibrate``).
    """

    # transfer (Reinhard, CIELab): std ratios are clipped to [1/r, r]
    transfer_std_ratio_max: float = 2.0
    # retouch (an expert's global edit)
    retouch_exposure_ev: tuple[float, float] = (-1.2, 1.2)
    retouch_temperature: tuple[float, float] = (-0.4, 0.4)
    retouch_tint: tuple[float, float] = (-0.15, 0.15)
    retouch_contrast: tuple[float, float] = (0.6, 1.5)
    retouch_gamma: tuple[float, float] = (0.65, 1.5)
    retouch_saturation: tuple[float, float] = (0.4, 1.8)
    retouch_tone_curve: tuple[float, float] = (-1.0, 1.0)
    # relight (day <-> night-like illumination change)
    relight_ev: tuple[float, float] = (-3.0, 1.5)
    relight_cast: tuple[float, float] = (-0.5, 0.5)
    relight_gamma: tuple[float, float] = (0.85, 1.3)
    # False: keep each family's raw edit at full strength (no magnitude model); the main
    # alternative to the calibration, far stronger than iHarmony4 for transfer/histogram
    calibrated_magnitude: bool = True
    # where each composite's target fMSE is drawn from: "family" = the per-image input fMSE
    # distribution of the family's iHarmony4 subset (ihd_stats.FAMILY_SUBSET), "all" = of
    # iHarmony4's whole test set for every family
    magnitude_source: str = "family"
    # an edit too faint for its drawn fMSE is amplified by at most this factor
    amplify_max: float = 4.0
    # plausibility ceiling on the foreground MSE (0..255 scale; 15000 = RMS error 122 levels;
    # iHarmony4's largest input fMSE is 20,037, its 99.9th percentile about 13,000)
    fmse_max: float = 15000.0

    def __post_init__(self) -> None:
        if self.magnitude_source not in ("family", "all"):
            raise RharmInputError(
                f"magnitude_source must be 'family' or 'all', got {self.magnitude_source!r}"
            )


# --- colour spaces -------------------------------------------------------------------------

# sRGB (D65) linear RGB -> XYZ, the matrix scikit-image uses
_RGB2XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 luminance weights of linear RGB


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(min=0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-12) ** (1 / 2.4) - 0.055)


def _apply_matrix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # m (3,3), x (B,3,H,W) -> (B,3,H,W)
    return torch.einsum("ij,bjhw->bihw", m, x)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (D65) to CIELab, as :func:`skimage.color.rgb2lab`.

    Args:
        rgb: ``(B,3,H,W)`` float sRGB in ``[0,1]``.

    Returns:
        ``(B,3,H,W)`` Lab: L in ``[0,100]``, a and b roughly in ``[-128,127]``.
    """
    m = torch.tensor(_RGB2XYZ, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    xyz = _apply_matrix(m, _srgb_to_linear(rgb)) / white
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELab to sRGB (D65), the inverse of :func:`rgb_to_lab`, clamped to ``[0,1]``.

    Args:
        lab: ``(B,3,H,W)`` float Lab.

    Returns:
        ``(B,3,H,W)`` float sRGB in ``[0,1]``.
    """
    m_inv = torch.linalg.inv(torch.tensor(_RGB2XYZ, dtype=torch.float64)).to(lab)
    white = torch.tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    fy = (lab[:, 0:1] + 16) / 116
    fx = fy + lab[:, 1:2] / 500
    fz = fy - lab[:, 2:3] / 200
    f = torch.cat([fx, fy, fz], dim=1)
    xyz = torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * white
    return _linear_to_srgb(_apply_matrix(m_inv, xyz)).clamp(0, 1)


# --- helpers --------------------------------------------------------------------------------


def _masked_mean_std(x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and std of ``x`` over ``m``; zeros for an empty mask."""
    n = m.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    mean = (x * m).sum(dim=(2, 3), keepdim=True) / n
    var = (((x - mean) ** 2) * m).sum(dim=(2, 3), keepdim=True) / n
    return mean, var.sqrt()


def _lerp_range(u: torch.Tensor, rng: tuple[float, float]) -> torch.Tensor:
    return rng[0] + (rng[1] - rng[0]) * u


def _col(u: torch.Tensor, j: int, rng: tuple[float, float]) -> torch.Tensor:
    """Column ``j`` of the uniforms ``u`` (B,K) mapped to ``rng``, shaped (B,1,1,1)."""
    return _lerp_range(u[:, j], rng).view(-1, 1, 1, 1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _white_balance_gains(temp: torch.Tensor, tint: torch.Tensor) -> torch.Tensor:
    """Per-channel linear gains (B,3,1,1) for a temperature (+ warm) and tint (+ magenta) shift,
    normalised to keep the luminance of grey unchanged."""
    gains = torch.cat([1 + temp, 1 - tint, 1 - temp], dim=1).clamp(min=0.05)
    return gains / _luma(gains)


# --- the four families ----------------------------------------------------------------------


def _transfer(t, m, ref, ref_m, u, cfg: SynthConfig):
    """Reinhard et al. 2001 colour transfer in CIELab: the foreground's per-channel mean and
    std become the reference region's (``(x - mu_f) * sd_r / sd_f + mu_r``, ratio clipped);
    the strength comes later, from the magnitude model."""
    lab = rgb_to_lab(t)
    ref_lab = rgb_to_lab(ref)
    mu_f, sd_f = _masked_mean_std(lab, m)
    mu_r, sd_r = _masked_mean_std(ref_lab, ref_m)
    r = cfg.transfer_std_ratio_max
    ratio = (sd_r / sd_f.clamp(min=1e-3)).clamp(1 / r, r)
    out = lab_to_rgb((lab - mu_f) * ratio + mu_r)
    # an empty reference region carries no statistics: leave the foreground as it is
    has_ref = (ref_m.sum(dim=(1, 2, 3)) > 0).view(-1, 1, 1, 1)
    return torch.where(has_ref, out, t)


def _histogram(t, m, ref, ref_m, u, cfg: SynthConfig):
    """Per-channel histogram specification (a lookup table per image and channel)."""
    b, c, h, w = t.shape
    levels = 256
    x = t.reshape(b, c, h * w)
    mf = m.reshape(b, 1, h * w).expand(b, c, h * w)
    # source: the foreground's mid-rank CDF at each of 256 levels, counted with searchsorted
    # on its sorted values (deterministic on every device, unlike a scatter_add histogram)
    fs, _ = torch.sort(torch.where(mf > 0.5, x.clamp(0, 1), torch.full_like(x, 2.0)), dim=2)
    edges = (torch.arange(levels + 1, device=t.device, dtype=t.dtype) - 0.5) / (levels - 1)
    cum = torch.searchsorted(fs, edges.expand(b, c, levels + 1).contiguous())  # count < edge
    cum_le, cum_lt = cum[..., 1:], cum[..., :-1]  # values rounding to <= v, to < v
    hist = (cum_le - cum_lt).to(t.dtype)
    n_f = hist.sum(dim=2, keepdim=True).clamp(min=1.0)
    q = (cum_le.to(t.dtype) - 0.5 * hist) / n_f  # (b,c,256) in [0,1]
    # reference: its region's sorted values give the quantile function directly
    rm = ref_m.reshape(b, 1, h * w).expand(b, c, h * w) > 0.5
    rv = torch.where(rm, ref.reshape(b, c, h * w), torch.full_like(x, 2.0))
    rs, _ = torch.sort(rv, dim=2)
    n_r = rm.sum(dim=2, keepdim=True)  # (b,c,1)
    pos = q * (n_r - 1).clamp(min=0).to(t.dtype)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=(n_r - 1).clamp(min=0))
    frac = pos - lo.to(t.dtype)
    lut = torch.gather(rs, 2, lo) * (1 - frac) + torch.gather(rs, 2, hi) * frac
    identity = torch.linspace(0, 1, levels, dtype=t.dtype, device=t.device).expand(b, c, levels)
    lut = torch.where(n_r > 0, lut, identity)
    # apply the LUT with linear interpolation between levels (exact on the uint8 grid)
    pos_x = x.clamp(0, 1) * (levels - 1)
    lo_x = pos_x.floor().long().clamp(max=levels - 2)
    fx = pos_x - lo_x.to(t.dtype)
    mapped = torch.gather(lut, 2, lo_x) * (1 - fx) + torch.gather(lut, 2, lo_x + 1) * fx
    return mapped.reshape(b, c, h, w)


def _tone_curve(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """An S-curve (k > 0, more contrast in the mid-tones) or its inverse (k < 0)."""
    s = x * x * (3 - 2 * x)  # smoothstep
    return x + k * (s - x)


def _retouch(t, m, ref, ref_m, u, cfg: SynthConfig):
    """An expert's global edit: exposure and white balance in linear light, then contrast,
    gamma, saturation and a tone curve in sRGB."""
    lin = _srgb_to_linear(t)
    ev = _col(u, 0, cfg.retouch_exposure_ev)
    gains = _white_balance_gains(_col(u, 1, cfg.retouch_temperature), _col(u, 2, cfg.retouch_tint))
    x = _linear_to_srgb(lin * (2.0**ev) * gains).clamp(0, 1)
    x = ((x - 0.5) * _col(u, 3, cfg.retouch_contrast) + 0.5).clamp(0, 1)
    x = x.clamp(min=1e-6) ** _col(u, 4, cfg.retouch_gamma)
    y = _luma(x)
    x = (y + _col(u, 5, cfg.retouch_saturation) * (x - y)).clamp(0, 1)
    return _tone_curve(x, _col(u, 6, cfg.retouch_tone_curve))


def _relight(t, m, ref, ref_m, u, cfg: SynthConfig):
    """A strong illumination change: a gain in linear light with a colour cast, and a gamma."""
    lin = _srgb_to_linear(t)
    ev = _col(u, 0, cfg.relight_ev)
    cast = _col(u, 1, cfg.relight_cast)
    gains = _white_balance_gains(cast, 0.3 * _col(u, 2, cfg.relight_cast))
    x = _linear_to_srgb(lin * (2.0**ev) * gains).clamp(0, 1)
    return x.clamp(min=1e-6) ** _col(u, 3, cfg.relight_gamma)


_Family = Callable[..., torch.Tensor]

#: family name -> raw edit ``f(target, mask, reference, ref_mask, uniforms, cfg)``
_FAMILY_FNS: dict[str, _Family] = {
    "transfer": _transfer,
    "histogram": _histogram,
    "retouch": _retouch,
    "relight": _relight,
}


def _log_fmse_table(cfg: SynthConfig, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(4, 101)`` log of iHarmony4's input-fMSE percentiles, one row per family."""
    rows = [
        np.log(
            ihd_stats.percentiles(
                "fmse", ihd_stats.FAMILY_SUBSET[f] if cfg.magnitude_source == "family" else "All"
            )
        )
        for f in FAMILIES
    ]
    return torch.tensor(np.stack(rows), dtype=torch.float64).to(device=device, dtype=dtype)


def target_fmse(u: torch.Tensor, fam_index: torch.Tensor, cfg: SynthConfig) -> torch.Tensor:
    """Each composite's target foreground MSE: iHarmony4's quantile function at ``u``.

    The quantile function is piecewise log-linear between the stored percentiles 0..100 %
    (:func:`rharm_lib.data.ihd_stats.quantile`), so ``u ~ U(0,1)`` gives a draw from
    iHarmony4's per-image input-fMSE distribution (inverse transform sampling).

    Args:
        u: ``(B,)`` uniforms in ``[0,1]``.
        fam_index: ``(B,)`` long, index of each image's family in :data:`FAMILIES`.
        cfg: picks the family's subset or All (``magnitude_source``).

    Returns:
        ``(B,)`` target fMSE on the 0..255 scale, capped at ``cfg.fmse_max``.
    """
    table = _log_fmse_table(cfg, u.dtype, u.device)
    pos = u.clamp(0, 1) * 100.0
    lo = pos.floor().long().clamp(max=99)
    frac = pos - lo.to(u.dtype)
    rows = table[fam_index]
    logv = (
        rows.gather(1, lo[:, None])[:, 0] * (1 - frac)
        + rows.gather(1, lo[:, None] + 1)[:, 0] * frac
    )
    return torch.exp(logv).clamp(max=cfg.fmse_max)


def _magnitude(
    t: torch.Tensor,
    edited: torch.Tensor,
    m: torch.Tensor,
    u: torch.Tensor,
    fam_index: torch.Tensor,
    cfg: SynthConfig,
) -> torch.Tensor:
    """Scale each image's edit to its drawn foreground MSE, within the amplification limit.

    iHarmony4's composites were filtered to visible but plausible shifts: its per-image input
    fMSE runs from 39 to 20,037 with median 905, and its log is nearly uncorrelated with the
    foreground's size (correlation 0.13 over the 7,404 test images), so the fMSE, drawn
    independently of the mask, is what the draw fixes; ``MSE = fMSE * area`` follows.
    """
    d = (edited - t) * m
    n = m.sum(dim=(1, 2, 3))
    tiny = torch.finfo(t.dtype).tiny
    target = target_fmse(u[:, _N_UNIFORMS - 1], fam_index, cfg)
    has_edit = (d != 0).flatten(1).any(dim=1)
    scale = torch.ones_like(target)
    # clipping to [0,1] eats part of a scaled edit: a few secant steps on the achieved fMSE
    for _ in range(_MAGNITUDE_STEPS):
        out = (t + scale.view(-1, 1, 1, 1) * d).clamp(0, 1)
        fmse = ((out - t) * 255.0).pow(2).sum(dim=(1, 2, 3)) / (3 * n).clamp(min=1.0)
        scale = scale * (target / fmse.clamp(min=tiny)).sqrt()
        scale = torch.where(has_edit, scale.clamp(max=cfg.amplify_max), torch.ones_like(scale))
    return (t + scale.view(-1, 1, 1, 1) * d).clamp(0, 1)


def _family_indices(family: str | Sequence[str], b: int) -> list[str]:
    names = [family] * b if isinstance(family, str) else list(family)
    if len(names) != b:
        raise RharmInputError(f"expected {b} family names (one per image), got {len(names)}")
    bad = sorted({f for f in names if f not in _FAMILY_FNS})
    if bad:
        raise RharmInputError(f"unknown composite family {bad}; known: {list(FAMILIES)}")
    return names


def synthesize(
    target: torch.Tensor,
    mask: torch.Tensor,
    family: str | Sequence[str],
    generator: torch.Generator,
    reference: torch.Tensor | None = None,
    ref_mask: torch.Tensor | None = None,
    cfg: SynthConfig = SynthConfig(),
) -> torch.Tensor:
    """Make composites: the foreground's appearance changed, the background untouched.

    Args:
        target: ``(B,3,H,W)`` float32 sRGB in ``[0,1]``, the real photographs (ground truth).
        mask: ``(B,1,H,W)`` float or uint8 in ``{0,1}``, 1 = the foreground to change.
        family: one of :data:`FAMILIES`, or a sequence of ``B`` such names (one per image).
        generator: a ``torch.Generator`` on the tensors' device; all randomness comes from it.
        reference: ``(B,3,H,W)`` float32 sRGB in ``[0,1]``, photos whose masked region gives the
            statistics for ``transfer`` and ``histogram``; default the batch rolled by one
            (image ``i`` takes image ``i-1``'s region; with ``B == 1`` the image itself).
        ref_mask: ``(B,1,H,W)`` in ``{0,1}``, the regions of ``reference``; default ``mask``
            rolled with it.
        cfg: the parameter ranges and the magnitude model.

    Returns:
        ``(B,3,H,W)`` float32 sRGB in ``[0,1]``, on the 1/255 grid (it is what a uint8 file
        holds); bit-identical to ``target`` where ``mask == 0``.
    """
    check_images(target, mask)
    b = target.shape[0]
    names = _family_indices(family, b)
    if generator.device.type != target.device.type:
        raise RharmInputError(
            f"generator is on {generator.device} but the images are on {target.device}"
        )
    m = (mask > 0.5).to(target.dtype)
    if reference is None:
        reference = torch.roll(target, 1, dims=0)
        ref_m = torch.roll(m, 1, dims=0) if ref_mask is None else (ref_mask > 0.5).to(m)
    else:
        check_images(reference, ref_mask if ref_mask is not None else mask)
        if tuple(reference.shape) != tuple(target.shape):
            raise RharmInputError(
                f"expected reference of shape {tuple(target.shape)} like target, "
                f"got {tuple(reference.shape)}"
            )
        ref_m = (ref_mask > 0.5).to(m) if ref_mask is not None else m
    u = torch.rand((b, _N_UNIFORMS), generator=generator, device=target.device, dtype=target.dtype)
    edited = torch.empty_like(target)
    for fam in FAMILIES:
        sel = [i for i, f in enumerate(names) if f == fam]
        if not sel:
            continue
        if len(sel) == b:
            edited = _FAMILY_FNS[fam](target, m, reference, ref_m, u, cfg)
            break
        ix = torch.tensor(sel, device=target.device)
        edited[ix] = _FAMILY_FNS[fam](target[ix], m[ix], reference[ix], ref_m[ix], u[ix], cfg)
    fam_index = torch.tensor([FAMILIES.index(f) for f in names], device=target.device)
    if cfg.calibrated_magnitude:
        out = _magnitude(target, edited, m, u, fam_index, cfg)
    else:
        out = edited.clamp(0, 1)
    out = torch.round(out * 255.0) / 255.0
    return torch.where(m > 0.5, out, target)


def measure_throughput(
    batch: int = 32,
    size: int = 256,
    device: str | torch.device = "cpu",
    iters: int = 5,
    family: str | Sequence[str] | None = None,
    seed: int = 0,
) -> float:
    """Composites per second of :func:`synthesize` on random photos and masks.

    Args:
        batch: images per call.
        size: side of the square images.
        device: where to run.
        iters: timed calls (after one warm-up call).
        family: one family, a sequence of ``batch`` names, or ``None`` for the four families
            in turn across the batch (the training mix).
        seed: seeds the random inputs and the generator.

    Returns:
        Composites per second (synchronised on CUDA).
    """
    import time

    dev = torch.device(device)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    target = torch.rand((batch, 3, size, size), generator=g, device=dev)
    target = torch.round(target * 255) / 255
    yy = torch.linspace(-1, 1, size, device=dev).view(1, 1, size, 1)
    xx = torch.linspace(-1, 1, size, device=dev).view(1, 1, 1, size)
    radius = 0.2 + 0.6 * torch.rand((batch, 1, 1, 1), generator=g, device=dev)
    mask = ((yy**2 + xx**2) < radius**2).float()
    fam = [FAMILIES[i % len(FAMILIES)] for i in range(batch)] if family is None else family

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    synthesize(target, mask, fam, g)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        synthesize(target, mask, fam, g)
    sync()
    return batch * iters / (time.perf_counter() - t0)
