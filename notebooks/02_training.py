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
# # 02 · Training and the Table II/III analogue
#
# Trains the full model (ResUNet + S²AM + external style fusion, eq. 13 loss with
# L_HCL) with the profile's recipe, or reuses a finished run of the same config, then
# evaluates the input composite, Reinhard, histogram matching and the model on the fixed
# test benchmark, per family and `All` (MSE, PSNR, fMSE, SSIM, fSSIM, #params). The
# paper's published iHarmony4 numbers follow in a separate block, labelled *reported, not
# reproduced*. Then the training curves, a Fig. 4-style qualitative grid and the patch
# inspector with the trained model.
#
# Outputs: `results/<profile>/table2_3_*`, `figures/<profile>/fig4_qualitative.png`,
# `figures/<profile>/training_curves.*`, `figures/<profile>/hcl_patch_inspector_trained.png`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt
import pandas as pd

from rharm_lib.metrics import PROTOCOL
from rharm_lib.study import exploration, methods, plots, reported, sources, tables
from rharm_lib.study.session import in_study_run, start_session
from rharm_lib.train import train

ctx = start_session(profile, seed, device, notebook="02_training")
P = ctx.profile
print(P.note)

# %% [markdown]
# ## Train (or reuse finished runs of the same config), one run per seed
# A finished run is reused; an unfinished one resumes. Runs can be trained ahead, e.g. in
# the background: `rharm study --profile <profile> --train-seed <seed>`. Progress: one
# updating bar per run with its ETA. The kernel's *interrupt* button stops at the end of the
# current step, checkpoints it and ends the cell with one line; re-running the cell resumes.

# %%
cfg = sources.study_train_config(P)
print(f"config {cfg.name}: {cfg.steps} steps, batch {cfg.batch_size}, crops {cfg.crop_size}², seeds {list(P.seeds)}")
runs = {}
for s in P.seeds:
    print(f"seed {s}: {sources.study_run_dir(P, s)}")
    runs[s] = sources.train_study_run(P, s, ctx.device, progress=True)
result, run_dir = runs[P.seeds[0]], sources.study_run_dir(P, P.seeds[0])
pd.DataFrame(
    [{"seed": s, "steps": r.steps, "training_min": round(sources.training_minutes(P, s), 1), "reused": r.reused} for s, r in runs.items()]
)

# %% [markdown]
# ## Table II/III analogue on the benchmark
# Conventions (README, "Evaluation protocol"): every image resized to 256² before the method runs
# (the iHarmony4 convention), MSE over H·W·3 on 0–255, PSNR per image then averaged, fMSE
# and fSSIM over the foreground, `All` = image-weighted mean over every composite. The
# model's pooled row is the mean over seeds with the sample sd and a 95 % t interval over
# seeds (`*_ci_lo`, `*_ci_hi`); each seed's rows are listed too.

# %%
bench = sources.benchmark_dataset(P.benchmark, limit=P.max_eval_images)
model_label = f"ours ({cfg.name} config)"
table, paired, compared = methods.seeded_benchmark(
    bench, {s: r.checkpoint for s, r in runs.items()}, ctx.device, model_label, ctx.results_dir, P.eval_size
)
tables.write_table(
    table,
    ctx.results_dir,
    "table2_3_benchmark",
    ctx.provenance(
        benchmark=P.benchmark,
        benchmark_version=sources.benchmark_version(P.benchmark),
        protocol=PROTOCOL,
        checkpoints={s: str(r.checkpoint) for s, r in runs.items()},
        steps=result.steps,
    ),
    title=f"Table II/III analogue: the {P.benchmark} benchmark (measured), {len(runs)} seed(s)",
    note=f"{P.note}. Metrics at {P.eval_size}² by the paper's conventions (README, Evaluation protocol); "
    "params_M: learned parameters in millions (0 for the classical baselines); "
    "`*_sd`: sample sd over seeds; `*_ci_lo`/`*_ci_hi`: 95 % t interval over seeds (NaN with one seed).",
    digits={"params_M": 3},
)
tables.write_table(
    paired,
    ctx.results_dir,
    "table2_3_paired_tests",
    ctx.provenance(benchmark=P.benchmark, seeds=list(runs)),
    title=f"{model_label} vs each baseline, image by image on the same {P.benchmark} composites",
    note="diff = mean over images of (model − baseline), the model taken as its per-image mean over seeds; "
    "ci: 95 % paired BCa bootstrap over images (scipy.stats.bootstrap); wilcoxon_p: two-sided "
    "signed-rank (scipy.stats.wilcoxon); a_better: share of images where the model is strictly better.",
    digits=4,
)
cols = ["method", "subset", "n", "mse", "psnr", "fmse", "ssim", "fssim", "params_M"]
table[table["subset"] == "All"][[c for c in cols if c in table]]

# %% [markdown]
# The `cpu` profile ships its first seed's model with the package (`rharm harmonize` without
# `--checkpoint`, `rharm evaluate --method shipped`), with its All-row metrics stored inside
# (a reduced run writes the file under its own root instead: `sources.shipped_weights_target`).

# %%
if P.ship_weights:
    from rharm_lib import weights

    first = table[(table["method"] == f"{model_label} seed {P.seeds[0]}") & (table["subset"] == "All")].iloc[0]
    shipped = weights.export_weights(
        result.checkpoint,
        sources.shipped_weights_target(P),  # a reduced run writes under its own root
        {m: first[m] for m in ("mse", "psnr", "fmse", "ssim", "fssim")},
        f"{P.benchmark} test benchmark, version {sources.benchmark_version(P.benchmark)}",
    )
    print(f"shipped weights: {shipped} ({shipped.stat().st_size / 1e6:.1f} MB)")

# %% [markdown]
# ### Reported, not reproduced: the paper's iHarmony4 numbers
# Printed for reference only: iHarmony4 is a different dataset (real subsets HCOCO,
# HAdobe5k, HFlickr, Hday2night), and these numbers are copied from the paper, not computed.

# %%
rep = reported.reported_table()
tables.write_table(
    rep,
    ctx.results_dir,
    "table2_3_reported_iharmony4",
    ctx.provenance(citation=reported.CITATION),
    title="Reported, not reproduced: the paper's iHarmony4 results",
    note=f"Source: {reported.CITATION}. n/a = not in the paper; fSSIM in [0,1] (the paper prints percent).",
)
reported.write_reported_blocks(
    ctx.results_dir, ctx.provenance(citation=reported.CITATION), ("VI", "VII", "checks")
)
rep

# %% [markdown]
# ## Training curves

# %%
log = pd.read_csv(run_dir / "train_log.csv")
ev = pd.concat(
    [
        pd.read_csv(sources.study_run_dir(P, s) / "eval.csv").rename(columns=str.lower).assign(seed=s)
        for s in runs
    ]
)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for col in ("total", "l1", "pixel", "hcl"):
    axes[0].plot(log["step"], log[col], label=col)
axes[0].set_yscale("log")
axes[0].set_xlabel("step")
axes[0].set_title("training losses (eq. 13 terms)")
axes[0].legend(fontsize=8)
for (metric, label), ax in zip((("fmse", "fMSE"), ("psnr", "PSNR")), axes[1:], strict=True):
    base = ev[(ev["method"] != "model") & (ev["seed"] == P.seeds[0])]
    for method, rows in base.groupby("method"):
        ax.axhline(rows[metric].iloc[0], ls="--", color="gray", label=method)
    for s, rows in ev[ev["method"] == "model"].groupby("seed"):
        ax.plot(rows["step"], rows[metric], "o-", label=f"model, seed {s}")
    ax.set_xlabel("step")
    ax.set_title(f"{label} on the benchmark during training (at {cfg.eval_size}²)")
    ax.legend(fontsize=8)
fig.tight_layout()
plots.save_figure(
    fig, ctx.figures_dir, "training_curves", ctx.provenance(run=str(run_dir)), pdf=True
)
plt.show()

# %% [markdown]
# ## Fig. 4-style qualitative grid

# %%
picks = exploration.spread_indices([it.subset for it in bench.items], P.grid_images)
rows, labels = [], []
for i in picks:
    s = bench[i]
    rows.append(
        [plots.outline(s["composite"], s["mask"])]
        + [m(s) for m in list(compared.values())[1:]]
        + [s["target"]]
    )
    labels.append(f"{s['subset']}: {s['name']}")
fig = plots.image_grid(
    rows,
    col_labels=["composite"] + list(compared)[1:] + ["real"],
    row_labels=labels,
    title="Qualitative comparison",
)
plots.save_figure(fig, ctx.figures_dir, "fig4_qualitative", ctx.provenance(images=labels))
plt.show()

# %% [markdown]
# ## The patch inspector with the trained model
# The K negative (red, the output's foreground) and positive (green, the ground truth's
# background) locations that L_HCL samples, with the trained embedder's similarities.

# %%
from IPython.display import Image, display

from rharm_lib.study.inspector import PatchInspector, loss_from_checkpoint

mlp, loss_cfg = loss_from_checkpoint(result.checkpoint)
inspector = PatchInspector(
    [bench[i] for i in picks],
    compared[model_label].fn,
    mlp,
    loss_cfg,
    k=P.inspector_k,
)
plots.save_figure(
    inspector.figure, ctx.figures_dir, "hcl_patch_inspector_trained", ctx.provenance(k=P.inspector_k)
)
if in_study_run():  # executed copies keep a static picture (widget state is not saved)
    display(Image(inspector.image_out.value))
else:
    display(inspector.widget)
