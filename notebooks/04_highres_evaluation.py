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
# # 04 · High-resolution evaluation: the Table IV analogue
#
# PSNR (and fMSE) at 256, 512 and 1024 pixels (long side) on composites made from
# high-resolution photos with generated region masks (`data_root()/highres` in the `gpu`
# profile; the built-in photos, upsampled, in `ci`). The composite of a photo is
# synthesised at each resolution with the same seed, so the three versions share one
# appearance change (`rharm_lib/study/sources.py`). Every method gets the image at that
# size and metrics are computed there (no resizing to 256). The network runs twice over:
# in native mode (on the whole image) and in the fast full-resolution mode at each of the
# profile's working sizes (the network at the working size, its colour change lifted to the
# image's size by per-pixel affine colour maps; `rharm_lib/fullres.py`, issue 11). Each
# method's wall-clock time per image is reported too (`time_s@<size>`, median over the
# photos; this machine, under its load of the moment).
#
# Outputs: `results/<profile>/table4_highres.*`, `figures/<profile>/table4_highres_*`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt

from rharm_lib.study import methods, plots, reported, sources, tables
from rharm_lib.study.session import start_session

ctx = start_session(profile, seed, device, notebook="04_highres_evaluation")
P = ctx.profile
print(P.note)
checkpoint = sources.study_checkpoint(P)

# %% [markdown]
# ## Photos and region masks

# %%
photos = sources.highres_photos(P.highres_source, P.highres_count, seed=ctx.seed)
print(f"{len(photos)} photos from {P.highres_source!r}: " + ", ".join(n for n, _, _ in photos))
compared = methods.study_methods(
    checkpoint, ctx.device, "ours (native)", fast_working_sizes=P.highres_working_sizes
)
print("compared:", ", ".join(compared))

# %% [markdown]
# ## Evaluation at each resolution

# %%
long, table, examples = methods.highres_evaluation(
    photos, P.highres_sizes, compared, ctx.results_dir, seed=ctx.seed
)
tables.write_table(
    table,
    ctx.results_dir,
    "table4_highres",
    ctx.provenance(
        source=P.highres_source,
        photos=[n for n, _, _ in photos],
        sizes=list(P.highres_sizes),
        working_sizes=list(P.highres_working_sizes),
    ),
    title="Table IV analogue: PSNR, fMSE and seconds per image at each resolution (long side), "
    "metrics at that resolution",
    note=f"{P.note}. {len(photos)} photos from `{P.highres_source}`, one composite each (families cycled), "
    + (
        "region masks from rharm_lib.data.regions"
        if P.highres_source == "highres"
        else "the committed built-in masks"
    )
    + "; methods and metrics at the image's own resolution. `ours (native)`: the network on "
    "the whole image; `ours (fast@W)`: the network at long side W, its colour change lifted "
    "to full resolution (`rharm_lib.fullres`; identical to native when the image is no larger "
    "than W). `time_s@S`: median wall-clock seconds per image of the method alone, on "
    f"{ctx.device} under the machine's load of the moment (not compared by `rharm study --check`).",
    digits={f"{methods.TIME_COLUMN}@{s}": 3 for s in P.highres_sizes},
)
reported.write_reported_blocks(ctx.results_dir, ctx.provenance(citation=reported.CITATION), ("IV",))
table

# %% [markdown]
# ## The fast mode against native mode (issue 11's quality bar)
#
# At each size the fast mode must be within 0.3 dB PSNR and 5 % fMSE of native mode on the
# same composites, or better; at sizes no larger than the working size the two are the
# same computation.

# %%
bar = methods.fast_vs_native(long)
tables.write_table(
    bar,
    ctx.results_dir,
    "table4_fast_vs_native",
    ctx.provenance(source=P.highres_source, sizes=list(P.highres_sizes)),
    title="Fast mode vs native mode on the high-resolution composites (mean over photos)",
    note=f"{P.note}. `psnr_diff_db` = fast - native; `fmse_ratio` = fast / native; the bar "
    "(issue 11): within 0.3 dB PSNR and 5 % fMSE of native, or better.",
)
bar

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
for label, g in long.groupby("method", sort=False):
    style = "s--" if "fast@" in label else "o-"
    axes[0].plot(g["size"], g["psnr"], style, label=label)
    axes[1].plot(g["size"], g["fmse"], style, label=label)
    axes[2].plot(g["size"], g[methods.TIME_COLUMN], style, label=label)
axes[2].set_yscale("log")
for ax, name in zip(axes, ("PSNR (dB)", "fMSE", "seconds per image"), strict=True):
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(P.highres_sizes), [str(s) for s in P.highres_sizes])
    ax.set_xlabel("long side (pixels)")
    ax.set_ylabel(name)
axes[0].legend(fontsize=8)
fig.tight_layout()
plots.save_figure(fig, ctx.figures_dir, "table4_highres_psnr", ctx.provenance(), pdf=True)
plt.show()

# %% [markdown]
# ## One photo at the largest resolution

# %%
s = examples[max(P.highres_sizes)]
outs = [m(s) for m in list(compared.values())[1:]]
fig = plots.image_grid(
    [[plots.outline(s["composite"], s["mask"], width=3), *outs, s["target"]]],
    col_labels=["composite", *list(compared)[1:], "real"],
    row_labels=[f"{s['name']} ({s['subset']})"],
    cell_inches=3.0,
)
plots.save_figure(fig, ctx.figures_dir, "table4_highres_example", ctx.provenance(image=s["name"]))
plt.show()
