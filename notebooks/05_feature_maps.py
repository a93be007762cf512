# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Feature maps: the Fig. 10 analogue
#
# Background feature maps of the encoder (`enc{i}`) and of the decoder before the style
# fusion (`dec{i}_pre`) at matching levels, for a few benchmark images: the paper's
# argument for the *external* fusion is that the decoder's background features no longer
# carry the background's style as the encoder's do. The maps show the mean absolute
# activation over channels on the background (foreground blank), scaled per map. The
# table measures, per level, the correlation of the two maps' background channel means
# and how far the decoder's foreground channel means are from the encoder's background
# ones before and after the fusion (`rharm_lib/study/features.py`).
#
# Outputs: `figures/<profile>/fig10_feature_maps.png`, `results/<profile>/fig10_feature_stats.*`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt
import numpy as np

from rharm_lib.inference import load_network
from rharm_lib.study import exploration, features, plots, sources, tables
from rharm_lib.study.session import start_session

ctx = start_session(profile, seed, device, notebook="05_feature_maps")
P = ctx.profile
net, _ = load_network(sources.study_checkpoint(P))
net = net.to(ctx.device).eval()

# %%
bench = sources.benchmark_dataset(P.benchmark)
picks = exploration.spread_indices([it.subset for it in bench.items], P.feature_images)
samples = [bench[i] for i in picks]
_, feats = features.model_features(net, samples, ctx.device)
levels = features.feature_levels(feats)
print("levels with encoder and decoder maps:", levels)

# %%
stats = features.style_statistics(feats, names=[s["name"] for s in samples])
per_level = (
    stats.groupby("level")[["bg_mean_corr", "bg_std_ratio", "fg_gap_pre", "fg_gap_post"]]
    .mean()
    .reset_index()
)
per_level.insert(1, "channels", stats.groupby("level")["channels"].first().to_numpy())
tables.write_table(
    per_level,
    ctx.results_dir,
    "fig10_feature_stats",
    ctx.provenance(images=[s["name"] for s in samples]),
    title="Fig. 10 analogue: encoder vs decoder background statistics per level (mean over images)",
    note="bg_mean_corr: correlation over channels of the background channel means of enc{i} and dec{i}_pre; "
    "bg_std_ratio: std_bg(dec_pre)/std_bg(enc); fg_gap_pre/post: ||mu_fg(dec) - mu_bg(enc)|| / ||mu_bg(enc)|| "
    "before/after the fusion. Level 0 is the finest.",
    digits=3,
)
per_level

# %%
rows, labels = [], []
for b, s in enumerate(samples):
    row = [plots.outline(s["composite"], s["mask"])]
    for i in levels:
        for key in (f"enc{i}", f"dec{i}_pre"):
            e = features.background_energy(feats, key)[b]
            rgb = plt.get_cmap("viridis")(np.nan_to_num(e, nan=0.0))[..., :3]
            rgb[np.isnan(e)] = 1.0  # foreground blank
            rows_img = (rgb * 255).astype(np.uint8)
            row.append(rows_img)
    rows.append(row)
    labels.append(s["name"])
cols = ["composite"] + [f"{k}{i}" for i in levels for k in ("enc", "dec_pre ")]
fig = plots.image_grid(
    rows,
    col_labels=cols,
    row_labels=labels,
    title="Background feature maps: encoder vs decoder (foreground blank)",
)
plots.save_figure(fig, ctx.figures_dir, "fig10_feature_maps", ctx.provenance(images=labels))
plt.show()
