"""The harmonization network: a residual U-Net (after Hertz et al. 2019, "Blind visual
motif removal") with the paper's external style fusion and S²AM in the decoder.

Layout for ``L = len(cfg.widths)`` levels (5 in the paper):

- encoder level i: 3×3 conv (in -> w_i), norm, ReLU, then ``blocks[i]`` residual blocks
  ``y = ReLU(norm(conv3x3(x)) + x)``; 2×2 max-pooling between levels (level L-1 is the
  bottleneck, not pooled). Level 0's input is the composite mapped to [-1,1] and the mask.
- decoder level i (L-2 … 0): 2×2 stride-2 transposed conv (w_{i+1} -> w_i), concatenation
  with the encoder's skip ``E_i``, 3×3 conv (2 w_i -> w_i), norm, ReLU, ``blocks[i]``
  residual blocks; then the fusion layer (``D_i -> D_hat_i`` using ``E_i``, eqs. 4–7) on
  ``fusion_levels``; then S²AM on ``s2am_levels``.
- head: 1×1 conv (w_0 -> 3).

Output decision (``cfg.output``, ``cfg.copy_background``), ours since the paper does not
say: the network predicts a **residual** added to the composite (``out = I + head``; the
head is zero-initialised, so an untrained net returns the composite) and the background
is **copied** from the input, ``pred = M out + (1 - M) I`` with the full-resolution mask:
iHarmony4's background is unchanged between composite and target, so only the
foreground is learned. Both are switches (``output="image"``, ``copy_background=False``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..batch import check_images
from .config import ModelConfig
from .fusion import build_fusion
from .masks import resize_mask
from .s2am import S2AM

__all__ = ["HarmonizationNet", "build_model", "make_norm"]


def make_norm(kind: str) -> Callable[[int], nn.Module]:
    """``kind`` (``batch``/``instance``/``group``/``none``) -> a constructor ``norm(C)``."""
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=True)
    if kind == "group":
        return lambda c: nn.GroupNorm(8, c)
    return lambda c: nn.Identity()


def _conv_norm_act(cin: int, cout: int, norm) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True)
    )


class ResBlock(nn.Module):
    """``y = ReLU(norm(conv3x3(x)) + x)``; ``(B,C,h,w) -> (B,C,h,w)``."""

    def __init__(self, channels: int, norm):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)) + x)


class EncoderLevel(nn.Module):
    """3×3 conv, norm, ReLU and ``blocks`` residual blocks: ``(B,cin,h,w) -> (B,cout,h,w)``."""

    def __init__(self, cin: int, cout: int, blocks: int, norm):
        super().__init__()
        self.conv_in = _conv_norm_act(cin, cout, norm)
        self.blocks = nn.Sequential(*[ResBlock(cout, norm) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv_in(x))


class DecoderLevel(nn.Module):
    """Up-sample ``(B,cin,h/2,w/2)``, concat the skip ``(B,cout,h,w)``, conv, residual blocks."""

    def __init__(self, cin: int, cout: int, blocks: int, norm):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv_in = _conv_norm_act(2 * cout, cout, norm)
        self.blocks = nn.Sequential(*[ResBlock(cout, norm) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv_in(torch.cat([self.up(x), skip], dim=1)))


class HarmonizationNet(nn.Module):
    """Residual U-Net + external style fusion + S²AM (see the module docstring).

    ``forward(composite, mask, return_features=False)``:

    Args:
        composite: ``(B,3,H,W)`` float sRGB in ``[0,1]``; any H, W (padded internally to a
            multiple of ``cfg.multiple`` and cropped back).
        mask: ``(B,1,H,W)`` float in ``{0,1}`` (1 = foreground).
        return_features: also return the intermediate maps.

    Returns:
        ``pred`` ``(B,3,H,W)`` sRGB (not clamped), or ``(pred, features)`` where
        ``features`` maps ``enc{i}`` (encoder level i, before pooling), ``dec{i}_pre``
        (decoder level i before fusion), ``dec{i}`` (after fusion) and, on S²AM levels,
        ``att{i}`` (after S²AM) to ``(B,w_i,Hp/2^i,Wp/2^i)`` tensors, ``Hp, Wp`` being the
        padded size; ``mask_pad`` is the padded ``(B,1,Hp,Wp)`` mask.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        norm = make_norm(cfg.norm)
        w, n = cfg.widths, len(cfg.widths)
        self.encoder = nn.ModuleList(
            EncoderLevel(4 if i == 0 else w[i - 1], w[i], cfg.blocks[i], norm) for i in range(n)
        )
        # decoder[i] produces level i (0 = finest) from level i+1
        self.decoder = nn.ModuleList(
            DecoderLevel(w[i + 1], w[i], cfg.blocks[i], norm) for i in range(n - 1)
        )
        self.fusion = nn.ModuleList(
            build_fusion(cfg.fusion if i in cfg.fusion_levels else "none", w[i], cfg.eps)
            for i in range(n - 1)
        )
        self.s2am = nn.ModuleDict(
            {str(i): S2AM(w[i], norm, cfg.s2am_reduction) for i in cfg.s2am_levels}
            if cfg.use_s2am
            else {}
        )
        self.head = nn.Conv2d(w[0], 3, 1)
        if cfg.output == "residual":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _pad(self, x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
        if ph == 0 and pw == 0:
            return x
        mode = self.cfg.pad_mode
        if mode == "reflect" and (ph >= x.shape[-2] or pw >= x.shape[-1]):
            mode = "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(
        self, composite: torch.Tensor, mask: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        check_images(composite, mask)
        h, w = composite.shape[-2:]
        mult = self.cfg.multiple
        ph, pw = (-h) % mult, (-w) % mult
        comp_p = self._pad(composite, ph, pw)
        mask_p = self._pad(mask.to(composite.dtype), ph, pw)
        feats: dict[str, torch.Tensor] = {"mask_pad": mask_p}

        x = torch.cat([comp_p * 2 - 1, mask_p], dim=1)
        skips = []
        for i, level in enumerate(self.encoder):
            x = level(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
            feats[f"enc{i}"] = x
        d = skips[-1]
        for i in reversed(range(len(self.decoder))):
            d = self.decoder[i](d, skips[i])
            feats[f"dec{i}_pre"] = d
            m_i = resize_mask(mask_p, tuple(d.shape[-2:]))
            d = self.fusion[i](d, skips[i], m_i)
            feats[f"dec{i}"] = d
            if str(i) in self.s2am:
                d = self.s2am[str(i)](d, mask_p)
                feats[f"att{i}"] = d
        out = self.head(d)
        if self.cfg.output == "residual":
            out = comp_p + out
        out = out[..., :h, :w]
        if self.cfg.copy_background:
            m = mask.to(out.dtype)
            out = m * out + (1 - m) * composite.to(out.dtype)
        return (out, feats) if return_features else out


def build_model(cfg: ModelConfig) -> HarmonizationNet:
    """Build :class:`HarmonizationNet` from ``cfg`` (kept as ``net.cfg``)."""
    return HarmonizationNet(cfg)
