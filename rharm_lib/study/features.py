"""Feature-map analysis for the Fig. 10 analogue (notebook 05): encoder vs decoder
background features at matching levels, and how close the decoder's foreground style
gets to the encoder's background style before and after the external style fusion.

Inputs are the ``features`` dict of ``net(composite, mask, return_features=True)``
(:class:`rharm_lib.model.HarmonizationNet`): ``enc{i}`` and ``dec{i}_pre`` / ``dec{i}``
``(B,C_i,h_i,w_i)`` float maps and ``mask_pad`` ``(B,1,Hp,Wp)``. The mask is resized to
each level with the model's one rule (:func:`rharm_lib.model.masks.resize_mask`, area
fraction); a cell is background when its foreground fraction is < 0.5. Channel
statistics are region statistics (:func:`rharm_lib.model.masks.masked_mean_std`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch

from ..errors import RharmInputError
from ..model.masks import masked_mean_std, resize_mask

__all__ = ["model_features", "feature_levels", "background_energy", "style_statistics"]


@torch.no_grad()
def model_features(net: torch.nn.Module, samples, device: str = "cpu"):
    """Run ``net`` on reader samples of one size and return its prediction and feature maps.

    Args:
        net: a :class:`~rharm_lib.model.HarmonizationNet` (eval mode).
        samples: reader samples ``{"composite" (H,W,3) uint8, "mask" (H,W) uint8}``, one size.
        device: where to run.

    Returns:
        ``(pred (B,3,H,W) float, features dict)`` on ``device``.
    """
    shapes = {s["composite"].shape for s in samples}
    if len(shapes) != 1:
        raise RharmInputError(f"model_features needs samples of one size, got {sorted(shapes)}")
    comp = torch.stack(
        [torch.from_numpy(np.array(s["composite"], dtype=np.float32)) for s in samples]
    )
    mask = torch.stack([torch.from_numpy(np.array(s["mask"], dtype=np.float32)) for s in samples])
    comp = comp.permute(0, 3, 1, 2).div(255.0).to(device)
    mask = mask[:, None].to(device)
    return net(comp, mask, return_features=True)


def feature_levels(features: dict[str, torch.Tensor]) -> list[int]:
    """Levels ``i`` (0 = finest) that have ``enc{i}``, ``dec{i}_pre`` and ``dec{i}``."""
    levels = sorted(int(m.group(1)) for k in features if (m := re.fullmatch(r"enc(\d+)", k)))
    return [i for i in levels if f"dec{i}_pre" in features and f"dec{i}" in features]


def _level_mask(features: dict[str, torch.Tensor], feat: torch.Tensor) -> torch.Tensor:
    if "mask_pad" not in features:
        raise RharmInputError("features lack 'mask_pad' (call the model with return_features=True)")
    return resize_mask(features["mask_pad"].float(), tuple(feat.shape[-2:]))


def background_energy(features: dict[str, torch.Tensor], key: str) -> np.ndarray:
    """Mean absolute activation over channels, on the background only.

    Args:
        features: the model's feature dict.
        key: e.g. ``enc1`` or ``dec1_pre``.

    Returns:
        ``(B,h,w)`` float64: ``mean_c |f|`` scaled to ``[0,1]`` per image over its
        background cells; foreground cells (fraction >= 0.5) are NaN (drawn blank).
        A constant map becomes 0; an image without background is all NaN.
    """
    if key not in features:
        raise RharmInputError(f"no feature map {key!r}; have {sorted(features)}")
    f = features[key].detach().float()
    e = f.abs().mean(dim=1).cpu().double().numpy()  # (B,h,w)
    fg = (_level_mask(features, f)[:, 0] >= 0.5).cpu().numpy()
    out = np.full_like(e, np.nan)
    for b in range(e.shape[0]):
        bg = ~fg[b]
        if not bg.any():
            continue
        v = e[b][bg]
        lo, hi = v.min(), v.max()
        out[b][bg] = (v - lo) / (hi - lo) if hi > lo else 0.0
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-8)


@torch.no_grad()
def style_statistics(
    features: dict[str, torch.Tensor], names: list[str] | None = None
) -> pd.DataFrame:
    """Per image and level: how the decoder's style relates to the encoder's background.

    Columns: ``image, level, channels``;
    ``bg_mean_corr``: Pearson correlation over channels of the background channel means
    of ``enc{i}`` and ``dec{i}_pre`` (do the two carry the same background style?);
    ``bg_std_ratio``: mean over channels of std_bg(dec_pre) / std_bg(enc);
    ``fg_gap_pre`` / ``fg_gap_post``: ``||mu_fg(D) - mu_bg(E)|| / ||mu_bg(E)||`` with D the
    decoder map before (``dec{i}_pre``) and after (``dec{i}``) the fusion, i.e. how far the
    decoder's foreground channel means are from the encoder's background ones (eq. 4 pulls
    them together up to the learned affine ψ of eq. 6).
    Images without foreground or background give NaN in the affected columns.
    """
    levels = feature_levels(features)
    if not levels:
        raise RharmInputError(f"no matching enc{{i}}/dec{{i}} levels in {sorted(features)}")
    rows = []
    for i in levels:
        enc, pre, post = (
            features[k].detach().double() for k in (f"enc{i}", f"dec{i}_pre", f"dec{i}")
        )
        m = _level_mask(features, enc).double()
        fg_w, bg_w = (m >= 0.5).double(), (m < 0.5).double()
        has_fg = fg_w.sum(dim=(1, 2, 3)) > 0
        has_bg = bg_w.sum(dim=(1, 2, 3)) > 0
        mu_e, sd_e = (t.flatten(1) for t in masked_mean_std(enc, bg_w))
        mu_p, sd_p = (t.flatten(1) for t in masked_mean_std(pre, bg_w))
        mu_pre_fg = masked_mean_std(pre, fg_w)[0].flatten(1)
        mu_post_fg = masked_mean_std(post, fg_w)[0].flatten(1)
        corr = _cos(mu_e - mu_e.mean(1, keepdim=True), mu_p - mu_p.mean(1, keepdim=True))
        norm_e = mu_e.norm(dim=1).clamp_min(1e-12)
        gap_pre = (mu_pre_fg - mu_e).norm(dim=1) / norm_e
        gap_post = (mu_post_fg - mu_e).norm(dim=1) / norm_e
        ratio = (sd_p / sd_e.clamp_min(1e-12)).mean(dim=1)
        for b in range(enc.shape[0]):
            nan = float("nan")
            rows.append(
                {
                    "image": names[b] if names else str(b),
                    "level": i,
                    "channels": enc.shape[1],
                    "bg_mean_corr": float(corr[b]) if has_bg[b] else nan,
                    "bg_std_ratio": float(ratio[b]) if has_bg[b] else nan,
                    "fg_gap_pre": float(gap_pre[b]) if has_bg[b] and has_fg[b] else nan,
                    "fg_gap_post": float(gap_post[b]) if has_bg[b] and has_fg[b] else nan,
                }
            )
    return pd.DataFrame(rows)
