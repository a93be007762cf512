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
# # 01 · Data exploration: the benchmark
#
# The fixed test benchmark of this profile (iHarmony4 layout, one subset per composite
# family): sample grids per family, the distributions of foreground area and appearance
# shift, and the metrics of the *input composite* next to iHarmony4's reported row
# (the paper's Tables II/III). Last, the patch inspector shows where the region-wise
# contrastive loss samples its patches.
#
# Outputs: `figures/<profile>/benchmark_*`, `figures/<profile>/hcl_patch_inspector_untrained.png`,
# `results/<profile>/benchmark_statistics.*`, `results/<profile>/table2_3_input_composite.*`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt
import pandas as pd

from rharm_lib.evaluate import evaluate, resolve_method
from rharm_lib.study import exploration, plots, reported, sources, tables
from rharm_lib.study.session import in_study_run, start_session

ctx = start_session(profile, seed, device, notebook="01_data_exploration")
P = ctx.profile
print(P.note)

# %% [markdown]
# ## The benchmark

# %%
bench = sources.benchmark_dataset(P.benchmark)
stats = exploration.composite_statistics(bench)
print(f"{len(bench)} composites; per subset:")
print(stats.groupby("subset").size().to_string())

# %% [markdown]
# ## Sample grids per family
# Each row: the composite (mask outlined in red), the real image, and the absolute
# difference ×4 (zero outside the mask by construction).

# %%
for subset, rows in stats.groupby("subset", sort=True):
    picks = rows.index[: min(4, len(rows))]
    grid = []
    for i in picks:
        s = bench[int(i)]
        diff = exploration.abs_difference(s["composite"], s["target"], gain=4)
        grid.append([plots.outline(s["composite"], s["mask"]), s["target"], diff])
    fig = plots.image_grid(
        grid,
        col_labels=["composite", "real", "|difference| x4"],
        row_labels=[bench[int(i)]["name"] for i in picks],
        title=f"{subset}: {len(rows)} composites",
    )
    plots.save_figure(fig, ctx.figures_dir, f"benchmark_samples_{subset.lower()}", ctx.provenance())
    plt.show()

# %% [markdown]
# ## Foreground area and shift magnitude
# `fg_fraction`: the mask's share of the image; `shift_de`: mean CIE76 ΔE*ab between the
# composite and the real image over the foreground; `shift_dl`: mean signed ΔL*.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
# every photo appears once per family with the same mask: the areas are those of the photos
first = sorted(stats["subset"].unique())[0]
axes[0].hist(stats.loc[stats["subset"] == first, "fg_fraction"], bins=20, range=(0, 1))
axes[0].set_xlabel("foreground fraction of the image")
axes[0].set_ylabel("photo masks")
by_family = dict(list(stats.groupby("subset", sort=True)))
plots.box_strip(axes[1], {k: v["shift_de"] for k, v in by_family.items()})
axes[1].set_ylabel("mean ΔE*ab over the foreground")
plots.box_strip(axes[2], {k: v["shift_dl"] for k, v in by_family.items()})
axes[2].axhline(0, color="gray", lw=0.8)
axes[2].set_ylabel("mean ΔL* over the foreground\n(composite − real)")
fig.suptitle(f"{P.benchmark} benchmark: {len(stats)} composites")
fig.tight_layout()
plots.save_figure(fig, ctx.figures_dir, "benchmark_distributions", ctx.provenance(), pdf=True)
plt.show()

summary_stats = exploration.summarize_statistics(stats)
tables.write_table(
    summary_stats,
    ctx.results_dir,
    "benchmark_statistics",
    ctx.provenance(benchmark=P.benchmark),
    title="Benchmark statistics per family (foreground area and appearance shift)",
    note="Means (and medians) over the composites of each family; `All` pools every composite. "
    "Shifts measured at the stored resolution on the foreground only.",
)
summary_stats

# %% [markdown]
# ## Input-composite metrics next to iHarmony4's reported row
# Our numbers use the paper's conventions (README, "Evaluation protocol"): images resized to 256²,
# MSE over H·W·3 on 0–255, PSNR per image then averaged, fMSE over the foreground.

# %%
per_image, summary = evaluate(
    bench,
    resolve_method("composite"),
    ctx.results_dir / "eval" / "benchmark_composite",
    eval_size=P.eval_size,
)
ours = summary.assign(method="input composite", source=f"measured: {P.benchmark} benchmark")
rep = reported.reported_table()
rep = rep[rep["method"] == "input composite"]
cols = ["source", "method", "subset", "mse", "psnr", "fmse", "ssim", "fssim"]
table = pd.concat([ours, rep], ignore_index=True)[
    [c for c in cols if c in ours.columns or c in rep.columns]
]
tables.write_table(
    table,
    ctx.results_dir,
    "table2_3_input_composite",
    ctx.provenance(benchmark=P.benchmark, reported_citation=reported.CITATION),
    title="Input composite: this benchmark (measured) vs iHarmony4 (reported, not reproduced)",
    note="Rows with source `reported, not reproduced` are the paper's published iHarmony4 numbers "
    f"({reported.CITATION}); they are not computed here. n/a = not in the paper.",
)
table

# %% [markdown]
# ## The patch inspector
# Where L_HCL samples: K negative locations in the foreground (red) and K positive
# locations in the ground truth's background (green), cut as P×P patches. Here, before
# any training, the composite stands for the output and the embedder is untrained;
# notebook 02 shows it again with the trained model. In JupyterLab the sliders are live.

# %%
from IPython.display import Image, display

from rharm_lib.study.inspector import PatchInspector

loss_cfg = sources.study_train_config(P).loss
picks = [bench[int(i)] for i in stats.groupby("subset").head(2).index]
inspector = PatchInspector(picks, harmonize=None, cfg=loss_cfg, k=P.inspector_k)
plots.save_figure(
    inspector.figure, ctx.figures_dir, "hcl_patch_inspector_untrained", ctx.provenance(k=P.inspector_k)
)
if in_study_run():  # executed copies keep a static picture (widget state is not saved)
    display(Image(inspector.image_out.value))
else:
    display(inspector.widget)

# %% [markdown]
# ## Calibration against iHarmony4, image by image
# Per-image input fMSE, MSE and foreground fraction of this benchmark against iHarmony4's
# test set (PCT-Net's per-image evaluation of the input composites; `docs/benchmark.md`),
# with the two-sample KS distance per family and All (`rharm data calibrate` prints the same).

# %%
from rharm_lib import calibration

cal_stats = calibration.dataset_statistics(bench)
fig = calibration.plot_calibration(cal_stats)
plots.save_figure(fig, ctx.figures_dir, "benchmark_calibration", ctx.provenance(benchmark=P.benchmark))
plt.show()
cal_report = calibration.calibration_report(cal_stats)
tables.write_table(
    cal_report,
    ctx.results_dir,
    "benchmark_calibration",
    ctx.provenance(benchmark=P.benchmark),
    title="Calibration: per-image quantiles and KS distance vs iHarmony4's input composites",
    note="KS targets (All): fMSE <= 0.10, foreground fraction <= 0.15.",
    digits=3,
)
cal_report

# %% [markdown]
# ## How each reading of L_HCL pulls on the pixels (`rharm diagnose loss`)
# For each reading of eqs. 10–11 (docs/model.md): the step-0 cosine between the descent
# direction and `target − pred` on the foreground (> 0 helps), the size of the contrastive
# gradient relative to the reconstruction terms, and the fMSE reached by optimising the
# foreground pixels of composites of the training photos under the reading alone and under
# eq. 13, from the composite. The profile sets the size (`diagnose`: images, side, steps).

# %%
from rharm_lib import diagnose

n_diag, size_diag, steps_diag = P.diagnose
diag_src = sources.train_source(P.train_source)
comp_d, target_d, mask_d = diagnose.diagnosis_batch(diag_src, n=n_diag, size=size_diag, seed=ctx.seed)
diag = diagnose.diagnose_loss(
    comp_d, target_d, mask_d, diagnose.DiagnoseConfig(loss=loss_cfg, steps=steps_diag, seed=ctx.seed)
)
tables.write_table(
    diagnose.diagnosis_table(diag).reset_index(),
    ctx.results_dir,
    "hcl_loss_diagnosis",
    ctx.provenance(images=n_diag, size=size_diag, steps=steps_diag, source=P.train_source),
    title=f"L_HCL readings: step-0 gradient alignment and pixel optimisation ({n_diag} composites, {size_diag}²)",
    note="cos > 0: the descent direction points towards the ground truth; norm_ratio: |grad 0.1·L_HCL| / "
    "|grad (0.4·L1 + 0.5·L_pixel)|; fmse_alone / fmse_total: foreground MSE after optimising the pixels "
    "under the reading alone / under eq. 13 (the composite's and reconstruction's rows for reference).",
    digits=3,
)
fig = diagnose.plot_loss_diagnosis(diag)
plots.save_figure(fig, ctx.figures_dir, "hcl_loss_diagnosis", ctx.provenance(images=n_diag, size=size_diag))
plt.show()
