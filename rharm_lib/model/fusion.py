"""Region-wise normalisation layers for the decoder: the paper's external style fusion
and its ablation alternatives, behind one registry (:data:`FUSIONS`).

Every layer has the signature ``layer(dec, enc, mask) -> dec_hat`` where

- ``dec``: ``(B,C,h,w)`` decoder feature ``D_i`` at decoder level ``i``;
- ``enc``: ``(B,C,h,w)`` encoder feature ``E_i`` at the same level (the skip
  connection's source, same channels and size);
- ``mask``: ``(B,1,h,w)`` soft foreground weight in ``[0,1]``, already resized with
  :func:`rharm_lib.model.masks.resize_mask`.

Statistics are computed over the masked region only (:func:`masked_mean_std`, with an
``eps``), in float32 even under bf16 autocast; the result is cast back to ``dec``'s dtype.

Registry:

- ``none``: identity (plain ResUNet).
- ``adain``: AdaIN (Huang & Belongie 2017) used *decoder-internally*: the decoder's
  foreground is re-styled with the decoder's own background statistics; the
  background is left as is; no learned parameters.
- ``rain``: RAIN (Ling et al. 2021, RainNet): foreground re-styled with the decoder's
  own background statistics, background standardised with its own statistics, then a
  learned per-channel affine on each region, initialised at identity.
- ``sf``: the paper's external style fusion (eqs. 4–7) in the AdaIN form: like RAIN,
  but the foreground is re-styled with the background statistics of the *encoder*
  feature ``E_i``: ``F^fg = σ_E^bg (D − μ_D^fg)/σ_D^fg + μ_E^bg`` (the default; the
  paper's Fig. 1 says the fusion "conspires with AdaIN").
- ``sf_literal``: eq. 4 as printed, ``F^fg = (D^fg − μ_E^bg)/σ_E^bg``: the decoder's
  foreground *normalised by* the encoder background's statistics (no decoder-foreground
  statistics); eqs. 5–7 as in ``sf``.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import masked_mean_std

__all__ = [
    "FUSIONS",
    "NoFusion",
    "AdaINFusion",
    "RAINFusion",
    "StyleFusion",
    "LiteralStyleFusion",
    "build_fusion",
]


class NoFusion(nn.Module):
    """Identity: ``dec`` is returned unchanged (the plain ResUNet)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()

    def forward(self, dec: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return dec


class AdaINFusion(nn.Module):
    """Decoder-internal AdaIN restricted to the foreground (no parameters).

    ``D^fg <- sigma_D^bg (D - mu_D^fg) / sigma_D^fg + mu_D^bg`` on the foreground,
    ``D^bg`` unchanged. Images without background (full mask) are passed through.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, dec: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        d, m = _up(dec), _up(mask).to(_up(dec).dtype)
        mu_fg, sd_fg = masked_mean_std(d, m, self.eps)
        mu_bg, sd_bg = masked_mean_std(d, 1 - m, self.eps)
        fg = (d - mu_fg) / sd_fg * sd_bg + mu_bg
        out = m * fg + (1 - m) * d
        out = torch.where(_has_region(1 - m), out, d)
        return out.to(dec.dtype)


class _RegionAffine(nn.Module):
    """The learned affine psi (eqs. 6–7): ``psi(x) = x (1 + gamma) + beta`` per channel.

    The paper says "scale and bias initialised at 0"; read literally (``gamma x + beta``
    with ``gamma = 0``) the decoder would output zeros at initialisation, so we follow
    RainNet's residual form ``(1 + gamma)``: psi starts as the identity.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.gamma_fg = nn.Parameter(torch.zeros(channels))
        self.beta_fg = nn.Parameter(torch.zeros(channels))
        self.gamma_bg = nn.Parameter(torch.zeros(channels))
        self.beta_bg = nn.Parameter(torch.zeros(channels))

    @staticmethod
    def _psi(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        g, b = gamma.to(x.dtype)[None, :, None, None], beta.to(x.dtype)[None, :, None, None]
        return x * (1 + g) + b


def _up(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors to float32 (statistics); float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _channel(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``(C,)`` parameter as ``(1,C,1,1)`` in ``like``'s dtype."""
    return p.to(like.dtype)[None, :, None, None]


def _has_region(weight: torch.Tensor) -> torch.Tensor:
    """``(B,1,1,1)`` bool: the soft region has any weight at all."""
    return weight.sum(dim=(2, 3), keepdim=True) > 0


class StyleFusion(_RegionAffine):
    """The paper's external style fusion (Section III-A, eqs. 4–7).

    With ``m`` the soft mask at this level, ``(mu_E^bg, sigma_E^bg)`` the masked channel
    statistics of the encoder feature's background and ``(mu_D^r, sigma_D^r)`` those of
    the decoder feature's region ``r``:

    - eq. 4: ``F^fg = sigma_E^bg (D - mu_D^fg) / sigma_D^fg + mu_E^bg``
    - eq. 5: ``F^bg = (D - mu_D^bg) / sigma_D^bg``
    - eqs. 6–7: ``psi_r(F^r) = F^r (1 + gamma_r) + beta_r`` (``gamma, beta`` init 0)
    - ``D_hat = m psi_fg(F^fg) + (1 - m) psi_bg(F^bg)`` (the paper's ⊕).

    An image with no background at this level (full mask: no style reference) is
    passed through unchanged, so it can never produce NaN or a collapsed feature.
    """

    external: bool = True

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels)
        self.eps = eps

    def _foreground(self, d, mu_fg, sd_fg, mu_ref, sd_ref) -> torch.Tensor:
        """Eq. 4, AdaIN form: ``σ_ref (D − μ_D^fg)/σ_D^fg + μ_ref``."""
        return (d - mu_fg) / sd_fg * sd_ref + mu_ref

    def _foreground_affine(self, mu_fg, sd_fg, mu_ref, sd_ref):
        """Eq. 4 as a per-channel affine map ``F^fg = a D + b``: ``(a, b)``, each (B,C,1,1)
        (``a = σ_ref/σ_D^fg``, ``b = μ_ref − a μ_D^fg``; the same map as :meth:`_foreground`)."""
        a = sd_ref / sd_fg
        return a, mu_ref - a * mu_fg

    def forward(self, dec: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        d, m = _up(dec), _up(mask).to(_up(dec).dtype)
        ref = _up(enc).to(d.dtype) if self.external else d
        bg = 1 - m
        mu_ref, sd_ref = masked_mean_std(ref, bg, self.eps)  # E_i^bg (eq. 4)
        mu_fg, sd_fg = masked_mean_std(d, m, self.eps)
        mu_bg, sd_bg = masked_mean_std(d, bg, self.eps)
        # Eqs. 4-7 map D, in each region, by a per-channel affine map; compose them on the
        # (B,C,1,1) statistics and blend the two maps by the mask, so that the full-size
        # work is two blends and one multiply-add (issue 11: the training step's overhead).
        # ``D_hat = m psi_fg(F^fg) + (1-m) psi_bg(F^bg) = D lerp(A_bg, A_fg, m) + lerp(B_bg,
        # B_fg, m)``: the same values as the literal chain up to float rounding (tested
        # against a float64 transcription of eqs. 4-7).
        a_fg, b_fg = self._foreground_affine(mu_fg, sd_fg, mu_ref, sd_ref)  # eq. 4
        a_bg = 1 / sd_bg  # eq. 5: F^bg = (D - mu_bg) / sd_bg
        b_bg = -mu_bg * a_bg
        g_fg, g_bg = (1 + _channel(g, d) for g in (self.gamma_fg, self.gamma_bg))
        beta_fg, beta_bg = (_channel(b, d) for b in (self.beta_fg, self.beta_bg))
        scale_fg, shift_fg = a_fg * g_fg, b_fg * g_fg + beta_fg  # eq. 6
        scale_bg, shift_bg = a_bg * g_bg, b_bg * g_bg + beta_bg  # eq. 7
        scale = torch.lerp(scale_bg, scale_fg, m)  # (B,C,h,w)
        shift = torch.lerp(shift_bg, shift_fg, m)
        out = torch.addcmul(shift, d, scale)  # the paper's ⊕ of the two regions
        out = torch.where(_has_region(bg), out, d)
        return out.to(dec.dtype)


class LiteralStyleFusion(StyleFusion):
    """Eq. 4 as printed: ``F^fg = (D − μ_E^bg)/σ_E^bg`` (the decoder's foreground
    standardised with the encoder background's channel statistics); eqs. 5–7 and the
    recombination as :class:`StyleFusion`. With ψ at identity the fused foreground's
    mean is ``(μ_D^fg − μ_E^bg)/σ_E^bg``, not ``μ_E^bg``: the encoder background is a
    normaliser, the style is left to ψ's learned affine (eq. 6)."""

    def _foreground(self, d, mu_fg, sd_fg, mu_ref, sd_ref) -> torch.Tensor:
        return (d - mu_ref) / sd_ref  # eq. 4, literal

    def _foreground_affine(self, mu_fg, sd_fg, mu_ref, sd_ref):
        a = 1 / sd_ref  # eq. 4, literal: a D + b = (D - mu_ref) / sd_ref
        return a, -mu_ref * a


class RAINFusion(StyleFusion):
    """RAIN (RainNet): :class:`StyleFusion` with the decoder's own background as reference."""

    external = False


#: fusion name -> layer class, all constructed as ``cls(channels, eps)``
FUSIONS: dict[str, type[nn.Module]] = {
    "none": NoFusion,
    "adain": AdaINFusion,
    "rain": RAINFusion,
    "sf": StyleFusion,
    "sf_literal": LiteralStyleFusion,
}


def build_fusion(name: str, channels: int, eps: float = 1e-5) -> nn.Module:
    """Construct the fusion layer registered under ``name`` (see :data:`FUSIONS`)."""
    try:
        cls = FUSIONS[name]
    except KeyError:
        from ..errors import RharmInputError

        raise RharmInputError(
            f"unknown fusion {name!r}; expected one of {sorted(FUSIONS)}"
        ) from None
    return cls(channels, eps)
