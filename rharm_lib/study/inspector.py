"""The patch inspector: an ipywidgets view of exactly what the region-wise contrastive loss
L_HCL samples (Section III-B, eqs. 8–12).

Choose an image of the benchmark; see the harmonized output with the K sampled *negative*
locations (foreground of the output, eq. 9) and the ground truth with the K *positive*
locations (its background, eq. 10) drawn as the patch boxes L_HCL cuts; sliders for K,
the patch size P and the sampling seed; a panel of patches and their embedding
similarities (eq. 11).

Exactness: the view calls the loss itself --
:func:`rharm_lib.losses.contrastive.region_contrastive_loss` with ``return_terms=True`` and
a CPU generator seeded with the slider's seed (the generator the loss would receive) --
and draws its sampled locations (:func:`~rharm_lib.losses.contrastive.patch_boxes`), its
embeddings and its per-query eq. 11 terms; so the shown L_HCL is the loss's value for this
image under the configured reading (a test checks it).
Two differences with training, both stated in the view: the harmonized output is the
network's uint8 output (background copied from the composite) rather than the float
training output, and the image is one at the benchmark's resolution rather than a crop.

The computation (:meth:`PatchInspector.compute`) is a pure function of the controls'
values; :meth:`PatchInspector.refresh` renders it (matplotlib, PNG bytes into an
``ipywidgets.Image``), so the callbacks can be tested headless.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import RharmInputError
from ..losses.config import LossConfig
from ..losses.contrastive import (
    PatchEmbedder,
    extract_patches,
    patch_boxes,
    region_contrastive_loss,
)
from ..seed import make_generator

__all__ = ["InspectorView", "compute_view", "render_view", "PatchInspector", "loss_from_checkpoint"]

#: colours: the mask outline, negative (foreground) boxes, positive boxes -- three hues
#: that stay distinct from each other and from typical object colours (a red object
#: hid red negative boxes)
OUTLINE_COLOR = "#ffd60a"
NEG_COLOR = "#ff00ff"
POS_COLOR = "#00e5ff"

#: one line on what L_HCL measures (shown under the controls)
CAPTION = (
    "L_HCL (eq. 11) is low when each query patch of the output's foreground embeds closer to "
    "its positive than to the negatives; the reading decides which patches those are."
)


@dataclass(frozen=True)
class InspectorView:
    """What the inspector shows for one image and one setting of the controls.

    Attributes:
        name: the sample's name; label: ``"family / name"`` (the name alone without a
            ``subset``).
        k, patch, seed: the controls' values.
        valid: the image has foreground and background locations (else L_HCL skips it).
        neg_idx, pos_idx: ``(K,)`` flat sampling-map indices of the foreground and
            background locations (as ``sample_locations``).
        neg_ok, pos_ok: ``(K,)`` bool, the slot holds a distinct location (a region with
            fewer than K cells fills fewer slots).
        neg_boxes, pos_boxes: ``(K,4)`` int ``(x0, y0, x1, y1)`` in image pixels, end
            exclusive (as ``patch_boxes``), of the negatives and of the positives (the
            positives sit at the foreground locations for a reading whose positive is a
            foreground patch).
        neg_patches, pos_patches: ``(K,P,P,3)`` float sRGB in [0,1] (as cut by
            ``extract_patches``, times the region mask when ``cfg.region_mask``).
        sim_pos: ``(K,K)`` cosine similarities query_k · positive_j.
        sim_neg: ``(K,K)`` cosine similarities query_k · negative_j (NaN: not a negative).
        loss_k: ``(K,)`` eq. 11 terms (0 for unfilled slots).
        loss: this image's L_HCL (eq. 12 for a batch of one), 0 if not valid.
        composite, harmonized, target: ``(H,W,3)`` uint8; mask ``(H,W)`` uint8 {0,1}.
    """

    name: str
    label: str
    k: int
    patch: int
    seed: int
    valid: bool
    neg_idx: np.ndarray
    pos_idx: np.ndarray
    neg_ok: np.ndarray
    pos_ok: np.ndarray
    neg_boxes: np.ndarray
    pos_boxes: np.ndarray
    neg_patches: np.ndarray
    pos_patches: np.ndarray
    sim_pos: np.ndarray
    sim_neg: np.ndarray
    loss_k: np.ndarray
    loss: float
    composite: np.ndarray
    harmonized: np.ndarray
    target: np.ndarray
    mask: np.ndarray


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def sample_label(sample: dict[str, Any], i: int = 0) -> str:
    """``"family / name"`` (the benchmark's subset is the composite family), else the name."""
    name = str(sample.get("name", i))
    return f"{sample['subset']} / {name}" if sample.get("subset") else name


@torch.no_grad()
def compute_view(
    sample: dict[str, Any],
    harmonized: np.ndarray,
    mlp: torch.nn.Module,
    cfg: LossConfig,
    k: int,
    patch: int,
    seed: int,
) -> InspectorView:
    """Run L_HCL itself on one image and keep what it sampled (pure function).

    Calls :func:`~rharm_lib.losses.contrastive.region_contrastive_loss` with
    ``return_terms=True`` and a CPU generator seeded with ``seed`` (the generator the loss
    would receive), so the view's locations, embeddings and eq. 11 terms are the loss's.

    Args:
        sample: a reader sample with ``composite``, ``target`` (H,W,3) uint8 and ``mask``
            (H,W) uint8 {0,1}.
        harmonized: ``(H,W,3)`` uint8, the network's output for the sample.
        mlp: the shared embedder, input ``cfg.reading_spec.in_dim(patch)``.
        cfg: the loss configuration (reading, ``sample_scale``, ``tau``, ``patch_source``,
            ``region_mask``, ``sampling``).
        k: K. patch: P. seed: seed of the CPU generator given to the loss.

    Returns:
        the :class:`InspectorView`.
    """
    comp, target, mask = sample["composite"], sample["target"], sample["mask"]
    if target is None:
        raise RharmInputError(f"{sample.get('name')}: the inspector needs a ground truth (target)")
    if harmonized.shape != comp.shape or target.shape != comp.shape or mask.shape != comp.shape[:2]:
        raise RharmInputError(
            f"{sample.get('name')}: composite {comp.shape}, harmonized {harmonized.shape}, "
            f"target {target.shape} and mask {mask.shape} must have one size"
        )
    scale, src, spec = cfg.sample_scale, cfg.patch_source, cfg.reading_spec
    h, w = mask.shape
    map_size = (max(1, h // scale), max(1, w // scale))
    m = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    images = {
        "pred": _to_tensor(harmonized),
        "target": _to_tensor(target),
        "composite": _to_tensor(comp),
    }
    loss, _, t = region_contrastive_loss(
        images["pred"], images["target"], m, mlp, images["composite"], k=k, patch=patch,
        scale=scale, tau=cfg.tau, reading=cfg.reading_name, patch_source=src,
        region_mask=cfg.region_mask, sampling=cfg.sampling, generator=make_generator(seed),
        return_terms=True,
    )  # fmt: skip
    loc = t.locations
    idx = {"fg": loc.neg_idx, "bg": loc.pos_idx}
    weight = {"fg": m, "bg": 1 - m}

    def cut(pset: tuple[str, str]) -> np.ndarray:
        image, region = pset
        p = extract_patches(images[image], idx[region], patch, scale, src)[0].view(k, 3, -1)
        if cfg.region_mask:
            p = p * extract_patches(weight[region], idx[region], patch, scale, src)[0].view(
                k, 1, -1
            )
        return p.reshape(k, 3, patch, patch).permute(0, 2, 3, 1).numpy()

    sim_neg = (t.query[0] @ t.negative[0].T).numpy()
    sim_neg[:, ~t.neg_ok[0].numpy()] = np.nan
    if spec.exclude_self:
        np.fill_diagonal(sim_neg, np.nan)  # a query is not its own negative
    ok = bool(loc.valid[0] & t.pair_ok[0].any())
    return InspectorView(
        name=str(sample.get("name", "")),
        label=sample_label(sample),
        k=k,
        patch=patch,
        seed=seed,
        valid=ok,
        neg_idx=loc.neg_idx[0].numpy(),
        pos_idx=idx[spec.positive[1]][0].numpy(),
        neg_ok=loc.neg_ok[0].numpy(),
        pos_ok=(loc.neg_ok if spec.positive[1] == "fg" else loc.pos_ok)[0].numpy(),
        neg_boxes=patch_boxes(loc.neg_idx, map_size, patch, scale, src)[0].numpy(),
        pos_boxes=patch_boxes(idx[spec.positive[1]], map_size, patch, scale, src)[0].numpy(),
        neg_patches=cut(spec.negative),
        pos_patches=cut(spec.positive),
        sim_pos=(t.query[0] @ t.positive[0].T).numpy(),
        sim_neg=sim_neg,
        loss_k=t.per_query[0].numpy(),
        loss=float(loss),
        composite=comp,
        harmonized=harmonized,
        target=target,
        mask=mask,
    )


def _mosaic(top: np.ndarray, bottom: np.ndarray, gap: int = 1) -> np.ndarray:
    """Two rows of ``(n,P,P,3)`` patches in one image, separated by white ``gap`` pixels."""
    n, p = top.shape[0], top.shape[1]
    out = np.ones((2 * p + 3 * gap, n * (p + gap) + gap, 3), np.float32)
    for r, patches in enumerate((top, bottom)):
        y = gap + r * (p + gap)
        for i in range(n):
            x = gap + i * (p + gap)
            out[y : y + p, x : x + p] = np.clip(patches[i], 0, 1)
    return out


_IMAGE_NAMES = {"pred": "output", "target": "ground truth", "composite": "composite"}


def render_view(
    view: InspectorView, cfg: LossConfig, max_patches: int = 8, output_label: str = "harmonized"
):
    """A matplotlib figure of ``view`` (constrained layout, integer ticks, a legend).

    Layout: row 1: composite (mask outline), the image whose foreground patches are the
    negatives with the negative boxes, the ground truth with the positive boxes, the K×K
    similarity matrix query·positive; row 2: up to ``max_patches`` negative and positive
    patches and the eq. 11 term per location.

    Args:
        view: the computed view. cfg: the loss configuration (titles, the reading).
        max_patches: patches shown per row. output_label: what the output panel is called.

    Returns:
        the figure; ``fig.axes[1].patches`` are the drawn negative boxes and
        ``fig.axes[2].patches`` the positive ones (one :class:`Rectangle` per filled slot).
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from .plots import outline

    spec = cfg.reading_spec
    names = dict(_IMAGE_NAMES, pred=output_label)
    neg_name = f"{names[spec.negative[0]]} {spec.negative[1]}"
    pos_name = f"{names[spec.positive[0]]} {spec.positive[1]}"
    # a bare Figure (not pyplot): never auto-displayed by the inline backend
    fig = Figure(figsize=(13, 6.8), layout="constrained")
    gs = fig.add_gridspec(2, 4, height_ratios=[3, 2])
    axes = [fig.add_subplot(gs[0, i]) for i in range(4)]
    rgb = tuple(int(OUTLINE_COLOR[i : i + 2], 16) for i in (1, 3, 5))
    axes[0].imshow(outline(view.composite, view.mask, color=rgb, width=2))
    axes[0].set_title(f"composite: {view.label}", fontsize=10)
    neg_img = view.harmonized if spec.negative[0] == "pred" else view.composite
    axes[1].imshow(view.target if spec.negative[0] == "target" else neg_img)
    axes[1].set_title(f"negatives: {neg_name} ({int(view.neg_ok.sum())})", fontsize=10)
    axes[2].imshow(view.target)
    axes[2].set_title(f"positives: {pos_name} ({int(view.pos_ok.sum())})", fontsize=10)
    if view.valid:
        for ax, boxes, okk, color in (
            (axes[1], view.neg_boxes, view.neg_ok, NEG_COLOR),
            (axes[2], view.pos_boxes, view.pos_ok, POS_COLOR),
        ):
            for x0, y0, x1, y1 in boxes[okk]:
                ax.add_patch(
                    Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.0, ec=color)
                )
    else:
        axes[1].text(
            0.5, 0.5, "no foreground or no background:\nL_HCL skips this image",
            transform=axes[1].transAxes, ha="center", va="center", color="white",
            bbox={"facecolor": "black", "alpha": 0.6},
        )  # fmt: skip
    im = axes[3].imshow(view.sim_pos, vmin=-1, vmax=1, cmap="coolwarm")
    axes[3].set_title("cos(query k, positive j)", fontsize=10)
    axes[3].set_xlabel("positive j", fontsize=9)
    axes[3].set_ylabel("query k", fontsize=9)
    for axis in (axes[3].xaxis, axes[3].yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(im, ax=axes[3], shrink=0.8)
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
    n = min(max_patches, view.k)
    ax = fig.add_subplot(gs[1, :3])
    ax.imshow(_mosaic(view.neg_patches[:n], view.pos_patches[:n]), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"first {n} patches: negatives (top, {neg_name}), positives (bottom)", fontsize=9)
    cos = " ".join(f"{view.sim_pos[i, i]:.2f}" for i in range(n))
    ax.set_xlabel(f"cos(query k, positive k): {cos}", fontsize=9)
    ax = fig.add_subplot(gs[1, 3])
    ax.plot(view.loss_k, ".", ms=4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"eq. 11 per slot k; L_HCL = {view.loss:.3f}", fontsize=9)
    ax.set_xlabel("slot k", fontsize=9)
    handles = [
        Line2D([], [], color=OUTLINE_COLOR, lw=2, label="mask outline"),
        Line2D([], [], color=NEG_COLOR, lw=2, label="negative patches"),
        Line2D([], [], color=POS_COLOR, lw=2, label="positive patches"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    fig.suptitle(
        f"L_HCL reading '{cfg.reading_name}': K={view.k}, P={view.patch}px, seed={view.seed}, "
        f"map 1/{cfg.sample_scale}, patches from the {cfg.patch_source}"
        f"{' (region-masked)' if cfg.region_mask else ''}, tau={cfg.tau}",
        fontsize=11,
    )
    return fig


def loss_from_checkpoint(path) -> tuple[torch.nn.Module, LossConfig]:
    """The trained L_HCL embedder and loss config stored in a training checkpoint.

    Returns:
        ``(mlp, cfg)``: the shared MLP (eval mode, CPU) and the run's :class:`LossConfig`.
    """
    from ..checkpoint import load_checkpoint
    from ..losses import HarmonizationLoss
    from ..train.config import config_from_dict

    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["train_config"]).loss
    loss = HarmonizationLoss(cfg)
    loss.load_state_dict(ckpt["loss"])
    return loss.mlp.eval(), cfg


class PatchInspector:
    """The ipywidgets patch inspector (see the module docstring).

    Args:
        samples: reader samples with ground truth (the benchmark; any indexable sequence,
            every item is reachable from the dropdown, labelled ``"family / name"``).
        harmonize: ``f(composite uint8 (H,W,3), mask uint8 (H,W)) -> uint8 (H,W,3)`` (a
            :class:`~rharm_lib.inference.Harmonizer`); ``None`` shows the composite as the
            output (an untrained view).
        mlp: the trained embedder (:func:`loss_from_checkpoint`); when its input width does
            not fit the patch size chosen, a fresh embedder seeded with the slider's seed
            is used, and the status line says why.
        cfg: the loss configuration.
        k: initial K. max_k: the K slider's maximum.
        dpi: resolution of the rendered PNG.

    Attributes:
        image, k, patch, seed: the controls (``Dropdown``, ``IntSlider`` x3; sliders
            render on release, ``continuous_update=False``).
        image_out: an ``ipywidgets.Image`` holding the rendered PNG.
        caption: an ``ipywidgets.HTML`` line on what L_HCL measures, with the colour legend.
        status: an ``ipywidgets.HTML`` line (validity, L_HCL, notes).
        view: the last :class:`InspectorView`; ``figure``: the last matplotlib figure.
        widget: the whole inspector (a ``VBox``) to display.
    """

    def __init__(
        self,
        samples: Sequence[dict[str, Any]],
        harmonize: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
        mlp: torch.nn.Module | None = None,
        cfg: LossConfig | None = None,
        k: int = 16,
        max_k: int = 256,
        dpi: int = 110,
    ):
        import ipywidgets as W

        if len(samples) == 0:
            raise RharmInputError("the patch inspector needs at least one sample")
        self.samples = samples
        self.harmonize = harmonize
        self.cfg = cfg or LossConfig()
        self.dpi = dpi
        self._trained_mlp = mlp
        self._cache: dict[int, np.ndarray] = {}
        names = [(sample_label(samples[i], i), i) for i in range(len(samples))]
        wide = {"description_width": "initial"}
        self.image = W.Dropdown(options=names, value=0, description="Family / name", style=wide)
        self.k = W.IntSlider(
            value=k, min=1, max=max_k, description="K, patches per region",
            continuous_update=False, style=wide,
        )  # fmt: skip
        self.patch = W.IntSlider(
            value=self.cfg.patch, min=2, max=32, step=2, description="patch size (px)",
            continuous_update=False, style=wide,
        )  # fmt: skip
        self.seed = W.IntSlider(
            value=0, min=0, max=999, description="sampling seed", continuous_update=False,
            style=wide,
        )  # fmt: skip
        self.image_out = W.Image(format="png")
        legend = " ".join(
            f'<span style="color:{c}">&#9632;</span> {t}'
            for c, t in (
                (OUTLINE_COLOR, "mask outline"),
                (NEG_COLOR, "negative patches"),
                (POS_COLOR, "positive patches"),
            )
        )
        self.caption = W.HTML(f"{CAPTION}<br>{legend}")
        self.status = W.HTML()
        for c in (self.image, self.k, self.patch, self.seed):
            c.observe(self._on_change, names="value")
        self.widget = W.VBox(
            [
                self.image,
                W.HBox([self.k, self.patch, self.seed]),
                self.caption,
                self.status,
                self.image_out,
            ]
        )
        self.view: InspectorView | None = None
        self.figure = None
        self.refresh()

    def _on_change(self, _change) -> None:
        self.refresh()

    def harmonized(self, i: int) -> np.ndarray:
        """The (cached) harmonized output of sample ``i``."""
        if i not in self._cache:
            s = self.samples[i]
            out = (
                s["composite"]
                if self.harmonize is None
                else self.harmonize(s["composite"], s["mask"])
            )
            self._cache[i] = np.asarray(out, dtype=np.uint8)
        return self._cache[i]

    def embedder(self) -> tuple[torch.nn.Module, str | None]:
        """``(mlp, reason)``: the trained MLP and ``None`` when it fits the chosen patch
        size, else a fresh one and why (no checkpoint / patch size differs)."""
        p = self.patch.value
        in_dim = self.cfg.reading_spec.in_dim(p)
        if self._trained_mlp is None:
            reason = "untrained embedder: no checkpoint given"
        elif self._trained_mlp.net[0].in_features != in_dim:
            reason = f"untrained embedder: patch size {p} px differs from the trained {self.cfg.patch} px"
        else:
            return self._trained_mlp, None
        torch.manual_seed(self.seed.value)
        return PatchEmbedder(in_dim, self.cfg.mlp_hidden, self.cfg.mlp_out).eval(), reason

    def compute(self) -> InspectorView:
        """The view for the controls' current values (no drawing)."""
        i = self.image.value
        mlp, _ = self.embedder()
        return compute_view(
            self.samples[i],
            self.harmonized(i),
            mlp,
            self.cfg,
            self.k.value,
            self.patch.value,
            self.seed.value,
        )

    def refresh(self) -> None:
        """Recompute and redraw (the callback of every control)."""
        view = self.compute()
        _, reason = self.embedder()
        label = "harmonized" if self.harmonize is not None else "composite (no model)"
        fig = render_view(view, self.cfg, output_label=label)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)
        self.image_out.value = buf.getvalue()
        notes = [
            f"L_HCL of this image = {view.loss:.4f}"
            if view.valid
            else "skipped by L_HCL: the image has no foreground or no background location"
        ]
        if view.valid and int(view.neg_ok.sum()) < view.k:
            notes.append(f"only {int(view.neg_ok.sum())} foreground cells: fewer slots than K")
        notes.append("trained embedder" if reason is None else reason)
        if self.harmonize is None:
            notes.append("no model: the composite stands for the output")
        self.status.value = " · ".join(notes)
        self.view, self.figure = view, fig
