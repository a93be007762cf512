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
# # 03 · Ablations: Tables VI and VII, Figs. 7–9, with seeds, intervals and paired tests
#
# The paper's evidence for its two contributions rests on one training run per row. Here
# every row is a set of training runs at the profile's *ablation scale* (one per seed, named
# by the hash of its config and reused when finished; `rharm_lib/study/ablations.py`):
#
# - **Table VI**: 1 = L1 only, 2 = + L_pixel, 3 = + style fusion, 4 = + L_HCL (the full
#   method); extra rows: each other reading of L_HCL's eqs. 10–11 and eq. 4 as printed.
# - **Figs. 8/9**: benchmark PSNR and MSE during training with no fusion, AdaIN, RAIN and
#   the style fusion (both eq. 4 forms) in the same network (without L_HCL, so that the
#   fusion is the only change; `none` and `sf` are Table VI's rows 2 and 3).
# - **Table VII**: K = 64 … 1024 patches per region.
# - **Fig. 7**: the same composites through each Table VI row's model.
#
# Every cell is the mean over the seeds found ± the sample sd, with a 95 % t interval over
# seeds; comparisons are image by image on the same benchmark composites (paired BCa
# bootstrap interval of the mean difference, Wilcoxon signed-rank p, Holm-adjusted within
# each family). The paper's numbers are shown beside ours, labelled *reported, not
# reproduced* (iHarmony4, a different dataset and scale).
#
# Runs: `rharm ablate table6|fusion|readings|patches --profile <profile>` trains them ahead
# (the `ci` profile's 30-step smoke trains them here). The notebook reports whichever seeds
# exist and says how many.
#
# Outputs: `results/<profile>/table6_ablation.*`, `table6_paired_tests.*`,
# `fig8_9_fusion.*`, `table7_patches.*`, `ablation_verdicts.*`;
# `figures/<profile>/fig7_ablation_grid.png`, `figures/<profile>/fig8_9_fusion_curves.*`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt
import pandas as pd

from rharm_lib.inference import Harmonizer
from rharm_lib.study import ablations as A
from rharm_lib.study import exploration, plots, reported, sources, tables
from rharm_lib.study.session import start_session

ctx = start_session(profile, seed, device, notebook="03_ablations")
P = ctx.profile
S = P.ablation
SCALE = (
    f"{S.train_config} network, {S.steps} steps, {S.crop_size}² crops of {S.photo_size}² photos, "
    f"{S.eval_images or 'all'} benchmark composites at {P.eval_size}²"
)
SMOKE = "SMOKE TEST of the code path (a handful of steps): says nothing about the method. " if S.smoke else ""
print(SMOKE + SCALE)

# %% [markdown]
# ## The runs
# Which (variant, seed) runs exist. With `train_in_notebook` (the `ci` smoke) the missing
# ones are trained now; otherwise train them ahead, a few at a time if need be:
# `rharm ablate table6 --profile cpu --threads 1` (several such processes share the work).

# %%
if S.train_in_notebook:
    for fam in A.FAMILIES:
        A.run_family(P, fam, device=ctx.device, progress=False)
status = A.suite_status(P)
finished = status[status["finished"]]
suite_minutes = float(finished["training_min"].sum())
print(f"{len(finished)} of {len(status)} distinct runs finished; their training took {suite_minutes:.0f} min in all")
status[["families", "seed", "run", "finished", "training_min"]]

# %% [markdown]
# ## Table VI analogue
# Rows 1–4 as in the paper; below them our extra rows (other L_HCL readings, eq. 4 as
# printed). `seeds`: finished runs pooled in the row.

# %%
SHOW = ["variant", "method", "seeds", "n", "mse", "mse_sd", "psnr", "psnr_sd", "fmse", "fmse_sd", "ssim", "fssim", "fssim_sd"]
t6 = A.family_table(P, "table6")
extra = pd.concat(
    [
        A.family_table(P, "readings").query("variant not in ['composite', 'no_hcl', 'style']"),
        A.family_table(P, "fusion").query("variant == 'sf_literal'"),
    ],
    ignore_index=True,
)
table6 = pd.concat([t6, extra], ignore_index=True)
rep6 = reported.percent_to_fraction(reported.reported_table6())
paper = {f"row{r.model}": r for r in rep6.itertuples()}
if not table6.empty:
    for col in ("mse", "psnr", "fssim"):
        table6[f"reported_{col}"] = [
            getattr(paper[v], col) if v in paper and s == "All" else float("nan")
            for v, s in zip(table6["variant"], table6["subset"], strict=True)
        ]
    tables.write_table(
        table6,
        ctx.results_dir,
        "table6_ablation",
        ctx.provenance(scale=SCALE, smoke=S.smoke, runs=finished["run"].tolist(), suite_training_min=suite_minutes),
        title=f"{SMOKE}Table VI analogue ({P.benchmark} benchmark, {SCALE})",
        note="mean over seeds; `_sd` sample sd; `_ci_lo`/`_ci_hi` 95 % t interval over seeds (NaN with one seed); "
        "reported_*: the paper's iHarmony4 Table VI, reported, not reproduced (fSSIM as a fraction). "
        "Shown: the All row as mean ± sd [95 % t interval]; the CSV has every benchmark family.",
        markdown=A.compact(table6),
    )
    display(table6[table6["subset"] == "All"][[c for c in SHOW + ["reported_mse", "reported_psnr"] if c in table6]])

# %% [markdown]
# ### Paired per-image tests: each Table VI row against the row before, each reading
# against no L_HCL, each fusion against none

# %%
tests = pd.concat(
    [A.family_tests(P, "table6"), A.family_tests(P, "readings"), A.family_tests(P, "fusion")],
    keys=["table6", "readings", "fusion"],
    names=["family", None],
).reset_index(level=0)
if not tests.empty:
    tables.write_table(
        tests.drop(columns=["subset"]),
        ctx.results_dir,
        "table6_paired_tests",
        ctx.provenance(scale=SCALE, smoke=S.smoke),
        title=f"{SMOKE}Paired per-image comparisons on the same {P.benchmark} composites",
        note="diff = mean over images of (a − b), each variant taken as its per-image mean over its seeds; "
        "ci: 95 % paired BCa bootstrap (scipy.stats.bootstrap); wilcoxon_p: two-sided signed-rank "
        "(scipy.stats.wilcoxon); p_holm: Holm-adjusted within the family and metric (statsmodels); "
        "a_better: share of composites where a is strictly better.",
        digits=4,
        markdown=tests[["family", "a", "b", "metric", "n", "seeds_a", "seeds_b", "mean_a", "mean_b", "diff", "ci_lo", "ci_hi", "wilcoxon_p", "p_holm", "a_better"]],
    )
    display(tests[tests["metric"] == "fmse"][["family", "a", "b", "n", "seeds_a", "seeds_b", "diff", "ci_lo", "ci_hi", "wilcoxon_p", "p_holm"]])

# %% [markdown]
# ## Every run's benchmark curve
# The `eval.csv` of each run (benchmark metrics against training steps; step 0 is the input
# composite), collected in one committed table so that the curves survive without the runs.
# A run shared by two families appears under each.

# %%
all_curves = A.all_curves(P)
if not all_curves.empty:
    tables.write_table(
        all_curves,
        ctx.results_dir,
        "ablation_curves",
        ctx.provenance(scale=SCALE, runs=sorted(set(all_curves["run"]))),
        title="Benchmark metrics during training, every ablation run (its eval.csv)",
        note=f"{P.note}. {SMOKE if S.smoke else ''}One row per (family, variant, seed, step, method); "
        "`run` is the run folder under runs/ (git-ignored).",
        markdown=all_curves[all_curves["method"] == "model"].groupby(["family", "label", "step"], sort=False)[["mse", "psnr", "fmse"]].mean().reset_index(),
    )
    print(f"{all_curves['run'].nunique()} runs, {len(all_curves)} rows")

# %% [markdown]
# ## Figs. 8/9 analogue: the fusion layers during training
# Benchmark PSNR and MSE against steps; the line is the mean over seeds, the band spans the
# seeds' minimum to maximum; the dashed line is the input composite.

# %%
curves = A.family_curves(P, "fusion")
if not curves.empty:
    model = curves[curves["method"] == "model"]
    base = curves[curves["method"] == "composite"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for (metric, name), ax in zip((("psnr", "PSNR (dB)"), ("mse", "MSE")), axes, strict=True):
        for label, g in model.groupby("label", sort=False):
            agg = g.groupby("step")[metric].agg(["mean", "min", "max", "count"])
            line = ax.plot(agg.index, agg["mean"], "o-", ms=3, label=f"{label} ({agg['count'].max()} seeds)")
            ax.fill_between(agg.index, agg["min"], agg["max"], color=line[0].get_color(), alpha=0.15)
        ax.axhline(base[metric], ls="--", color="gray", label="input composite")
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.set_title(f"Fig. {8 if metric == 'psnr' else 9} analogue: {name} on the benchmark")
    axes[0].legend(fontsize=8)
    if S.smoke:
        fig.suptitle(SMOKE.strip(), fontsize=9)
    plots.save_figure(fig, ctx.figures_dir, "fig8_9_fusion_curves", ctx.provenance(scale=SCALE), pdf=True)
    plt.show()
    fusion = A.family_table(P, "fusion")
    tables.write_table(
        fusion,
        ctx.results_dir,
        "fig8_9_fusion",
        ctx.provenance(scale=SCALE, smoke=S.smoke),
        title=f"{SMOKE}Fusion layers at the end of training ({SCALE})",
        note="mean over seeds; `_sd` sample sd; `_ci_lo`/`_ci_hi` 95 % t interval over seeds. "
        "Shown: the All row as mean ± sd [95 % t interval]; the CSV has every benchmark family.",
        markdown=A.compact(fusion),
    )
    display(fusion[fusion["subset"] == "All"][[c for c in SHOW if c in fusion]])

# %% [markdown]
# ## Table VII analogue: patches per region K
# Each K against the paper's choice K = 256. With capped sampling a region with fewer
# cells than K gives all its cells, so large K changes only the large (background) regions.

# %%
t7 = A.family_table(P, "patches")
if not t7.empty:
    rep7 = reported.percent_to_fraction(reported.reported_table7()).set_index("k")
    k_of = {v.key: int(v.key[1:]) for v in A.FAMILIES["patches"]}
    t7.insert(2, "k", t7["variant"].map(k_of))
    for col in ("mse", "psnr", "ssim"):
        t7[f"reported_{col}"] = [
            rep7[col].get(k, float("nan")) if s == "All" else float("nan") for k, s in zip(t7["k"], t7["subset"], strict=True)
        ]
    k_tests = A.family_tests(P, "patches", pairs=[(v, "k256") for v in k_of if v != "k256"])
    tables.write_table(
        t7,
        ctx.results_dir,
        "table7_patches",
        ctx.provenance(scale=SCALE, smoke=S.smoke, paired_tests=k_tests.to_dict("records")),
        title=f"{SMOKE}Table VII analogue: K patches per region ({SCALE})",
        note="mean over seeds; `_sd` sample sd; `_ci_lo`/`_ci_hi` 95 % t interval over seeds; reported_*: the "
        "paper's iHarmony4 Table VII, reported, not reproduced. Paired tests against K = 256 are in the provenance. "
        "Shown: the All row as mean ± sd [95 % t interval]; the CSV has every benchmark family.",
        markdown=A.compact(t7),
    )
    display(t7[t7["subset"] == "All"][["k", "seeds", "n", "mse", "mse_sd", "psnr", "psnr_sd", "fmse", "fmse_sd", "ssim", "reported_mse", "reported_psnr"]])
    if not k_tests.empty:
        display(k_tests[k_tests["metric"] == "fmse"][["a", "b", "n", "diff", "ci_lo", "ci_hi", "wilcoxon_p", "p_holm"]])

# %% [markdown]
# ## Fig. 7 analogue: the same composites through each Table VI row's model (first seed)

# %%
rows6 = A.find_runs(P, "table6", seeds=S.seeds[:1])
if rows6["finished"].all():
    bench = sources.benchmark_dataset(P.benchmark)
    picks = exploration.spread_indices([it.subset for it in bench.items], min(4, P.grid_images))
    models = {r.label: Harmonizer.from_checkpoint(r.run / "checkpoints" / "last.pt", device=ctx.device) for r in rows6.itertuples()}
    grid, names = [], []
    for i in picks:
        s = bench[i]
        grid.append([plots.outline(s["composite"], s["mask"])] + [h.harmonize(s["composite"], s["mask"], mode="native") for h in models.values()] + [s["target"]])
        names.append(f"{s['subset']}: {s['name']}")
    fig = plots.image_grid(grid, col_labels=["composite", *models, "real"], row_labels=names, title=f"{SMOKE}Fig. 7 analogue")
    plots.save_figure(fig, ctx.figures_dir, "fig7_ablation_grid", ctx.provenance(images=names, runs=rows6["run"].astype(str).tolist()))
    plt.show()
else:
    print("Fig. 7 needs every Table VI row's first-seed run; missing:", rows6[~rows6["finished"]]["variant"].tolist())

# %% [markdown]
# ## What our data say about the paper's two contributions
# One sentence per comparison on fMSE (the foreground error the method targets):
# *supported* when the paired interval excludes 0 in favour of the component and the
# Holm-adjusted p < 0.05, *contradicted* when it does so against it, else *inconclusive*.

# %%
families = list(dict.fromkeys(tests["family"])) if not tests.empty else []
verdict = pd.concat([A.verdicts(tests[tests["family"] == f]).assign(family=f) for f in families], ignore_index=True) if families else pd.DataFrame()
if not verdict.empty:
    tables.write_table(
        verdict.drop(columns=["sentence"]),
        ctx.results_dir,
        "ablation_verdicts",
        ctx.provenance(scale=SCALE, smoke=S.smoke),
        title=f"{SMOKE}Verdicts on fMSE (a better than b?)",
        note="supported / contradicted: the 95 % paired bootstrap interval excludes 0 and the Holm-adjusted Wilcoxon p < 0.05.",
        digits=4,
    )
    for line in verdict["sentence"]:
        print("-", line)
