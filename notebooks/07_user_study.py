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
# # 07 · The user study: Table V re-analysed, and a voting widget to run one
#
# **Table V** (reported, not reproduced): 28 participants × 99 DIH99 composites, one
# choice among 5 images per group (composite, DIH, BargainNet, RainNet, ours): 2,772
# choices. We re-analyse the published vote totals: shares with simultaneous 95 %
# intervals, a test against "no preference", ours against each method with a
# multiple-comparison correction, what the design cannot tell (the 2,772 choices come
# from 28 raters and 99 images, so they are not independent), and a power analysis.
#
# Then a **voting widget** runs such a study on the 347 real composites of
# `data_root()/real_composites` with the methods we have (composite, Reinhard, histogram
# matching, and our trained model when notebook 02 has run), and the votes are analysed
# with Plackett–Luce / Bradley–Terry strengths. In `rharm study` runs the widget is not
# shown and the analysis runs on votes *simulated from known strengths*, which it must
# recover.
#
# Outputs: `results/<profile>/table5_user_study.*`, `table5_heterogeneity.*`,
# `table5_power.*`, `table5_simulated_votes.*`; `figures/<profile>/table5_*`, `figures/<profile>/fig3_layout.png`.
# Computation: `rharm_lib/study/userstudy.py`; the widget: `rharm_lib/study/voting.py`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from rharm_lib.data.real import RealCompositeDataset
from rharm_lib.errors import RharmInputError
from rharm_lib.paths import data_root
from rharm_lib.study import plots, sources, tables, userstudy
from rharm_lib.study.session import in_study_run, start_session
from rharm_lib.study.voting import (
    VoteStore,
    VotingWidget,
    dataset_names,
    default_votes_path,
    make_trials,
    study_methods,
)

ctx = start_session(profile, seed, device, notebook="07_user_study")
S = userstudy.get_sizes(profile)
R = userstudy.REPORTED
print(R.citation)

# %% [markdown]
# ## Table V: shares, simultaneous intervals, tests
#
# Intervals: **Goodman's simultaneous 95 % intervals** for multinomial proportions (all
# five cover their true shares at once with ≥ 95 % probability); Wilson intervals at
# 1 − 0.05/5 (Bonferroni) are the alternative columns. Ours vs each method: exact binomial
# test of ours' votes among the votes for ours or that method, **Holm**-corrected over the
# four comparisons. All of this assumes 2,772 independent choices (see the next section).

# %%
t5 = userstudy.table5(R)
gof = userstudy.goodness_of_fit(R.counts())
note = (
    f"Reported votes of the paper's Table V ({R.citation}), re-analysed; reported, not "
    f"reproduced. Shares in %; goodman_*: Goodman's simultaneous 95 % intervals; "
    f"wilson_bonf_*: Wilson at 1-0.05/5. log10_p_vs_ours: log10 p of the exact binomial "
    f"test of ours' votes among ours + method (H0: equal shares); log10_p_holm: Holm over "
    f"the 4 comparisons (-6.72 = p 1.9e-7). "
    f"Goodness of fit vs no preference (equal shares): chi2 = {gof['chi2']:.1f}, "
    f"df = {gof['df']}, p = {gof['p']:.2e}. All assume independent choices, which 28 raters "
    f"x 99 images are not: see table5_heterogeneity."
)
tables.write_table(
    t5,
    ctx.results_dir,
    "table5_user_study",
    ctx.provenance(source="reported, not reproduced", goodness_of_fit=gof),
    title="Table V re-analysed: user study on DIH99 (28 x 99 choices among 5)",
    note=note,
    digits={"ours_share_of_pair": 3},
)
print(note)
t5

# %%
fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
y = np.arange(len(t5))
ax.errorbar(
    t5["share_pct"],
    y,
    xerr=[t5["share_pct"] - t5["goodman_low_pct"], t5["goodman_high_pct"] - t5["share_pct"]],
    fmt="o",
    capsize=3,
    label="share, Goodman 95 % (simultaneous)",
)
ax.axvline(20, color="grey", ls="--", lw=1, label="no preference (20 %)")
ax.set_yticks(y, t5["method"])
ax.set_xlabel("share of the 2,772 choices (%)")
ax.set_title("Table V (reported votes), re-analysed")
ax.legend(fontsize=8, loc="lower right")
plots.save_figure(fig, ctx.figures_dir, "table5_shares", ctx.provenance(), pdf=True, dpi=150)
plt.show()

# %% [markdown]
# ## What the design cannot tell: raters and images differ
#
# The intervals above treat the 2,772 choices as independent draws. With 28 raters and 99
# images, a rater who likes strong colour casts or an image where one method fails pulls
# many choices together. We simulate the reported design under a random-utility model in
# which every rater and every image shifts each method's utility by a normal effect
# (SD `rater_sd`, `image_sd`, on the log-odds scale; values are *assumptions*, the paper
# gives no per-vote data) and compare the true spread of the shares with the nominal one.

# %%
het = userstudy.heterogeneity_table(
    R, reps=S.heterogeneity_reps, truth_draws=S.truth_draws, seed=seed
)
tables.write_table(
    het,
    ctx.results_dir,
    "table5_heterogeneity",
    ctx.provenance(reps=S.heterogeneity_reps, truth_draws=S.truth_draws),
    title="Table V design under rater and image heterogeneity (simulation)",
    note=(
        f"{S.heterogeneity_reps} simulated studies of 28 raters x 99 images per scenario, "
        "shares of the reported votes as base utilities; rater/image effects N(0, sd^2) per "
        "method on the utility scale. design_effect = simulated / multinomial variance; "
        "sim_width: central 95 % range of a share; goodman_width: mean width of the nominal "
        "Goodman interval; goodman_coverage: how often they cover all five true shares."
    ),
    digits=4,
)
summary = het.groupby(["rater_sd", "image_sd"]).agg(
    design_effect=("design_effect", "mean"),
    width_ratio=("sim_width", "mean"),
    goodman=("goodman_width", "mean"),
    coverage=("goodman_coverage", "first"),
)
summary["width_ratio"] /= summary["goodman"]
summary.drop(columns="goodman").round(3)

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
labels = [f"rater {r}, image {i}" for r, i in summary.index]
ours = het[het["method"] == "ours"]
ax.bar(np.arange(len(ours)) - 0.2, 100 * ours["sim_width"], 0.4, label="true 95 % range")
ax.bar(np.arange(len(ours)) + 0.2, 100 * ours["goodman_width"], 0.4, label="nominal Goodman")
ax.set_xticks(np.arange(len(ours)), labels, rotation=20, fontsize=8)
ax.set_ylabel("width for 'ours' (points of %)")
ax.set_title("How wide the share of 'ours' really is (28 x 99, simulated)")
ax.legend(fontsize=8)
plots.save_figure(
    fig, ctx.figures_dir, "table5_heterogeneity", ctx.provenance(), pdf=True, dpi=150
)
plt.show()

# %% [markdown]
# ## Power: how many participants to tell ours from RainNet (816 vs 618)?
#
# Under independence (analytic, `statsmodels` `NormalIndPower`, the binomial test above at
# α = 0.05/4, Bonferroni over four comparisons, 80 % power); then by simulation with a
# test that respects the raters (per-rater difference of votes, one-sample t-test) under
# three heterogeneity scenarios.

# %%
pw = userstudy.power_independent(816, 618, R.n_choices, images=R.images, participants=28)
sims = pd.concat(
    [
        userstudy.power_by_simulation(
            R,
            participants=S.power_participants,
            rater_sd=sd,
            image_sd=sd,
            reps=S.power_reps,
            seed=seed,
        )
        for sd in (0.0, 0.25, 0.5)
    ],
    ignore_index=True,
)
rows = [{"quantity": k, "value": float(v), "rater_sd": np.nan, "image_sd": np.nan} for k, v in pw.items()]
for (r_sd, i_sd), g in sims.groupby(["rater_sd", "image_sd"]):
    hit = g[g["power"] >= 0.8]["participants"]
    rows.append(
        {
            "quantity": "participants_needed_simulated",
            "value": float(hit.min()) if len(hit) else np.nan,
            "rater_sd": r_sd,
            "image_sd": i_sd,
        }
    )
power_table = pd.DataFrame(rows)
tables.write_table(
    power_table,
    ctx.results_dir,
    "table5_power",
    ctx.provenance(power_reps=S.power_reps, participants_grid=list(S.power_participants)),
    title="Power of the Table V design: ours vs RainNet",
    note=(
        "Analytic rows assume independent choices: the test of ours' votes among ours + "
        "RainNet against 1/2 at alpha = 0.05/4, power 0.8 (statsmodels NormalIndPower, "
        "Cohen's h); participants_needed at 99 images each; detectable_diff: smallest "
        "difference of shares (of all choices) 28 x 99 detects at the same pair share s. "
        "participants_needed_simulated: smallest count on the grid reaching 80 % power "
        f"with a per-rater t-test, {S.power_reps} studies per point (n/a: not reached on "
        f"the grid up to {max(S.power_participants)})."
    ),
    digits=4,
)
power_table

# %%
fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
for (r_sd, i_sd), g in sims.groupby(["rater_sd", "image_sd"]):
    ax.plot(g["participants"], g["power"], "o-", label=f"rater/image SD {r_sd}/{i_sd}")
ax.axhline(0.8, color="grey", ls="--", lw=1)
ax.axvline(28, color="grey", ls=":", lw=1, label="the paper's 28")
ax.axvline(pw["participants_needed"], color="k", lw=1, label="analytic, independent")
ax.set_xscale("log")
ax.set_xticks(S.power_participants, [str(n) for n in S.power_participants], fontsize=8)
ax.minorticks_off()
ax.set_xlabel("participants (99 images each)")
ax.set_ylabel("power (ours > RainNet)")
ax.legend(fontsize=7)
ax.set_title("Participants needed to tell ours from RainNet")
plots.save_figure(fig, ctx.figures_dir, "table5_power", ctx.provenance(), pdf=True, dpi=150)
plt.show()

# %% [markdown]
# ## The voting widget
#
# The real composites (DIH99 layout) with the methods we have; `ours` is the model of
# notebook 02 when it has been trained. Each group shows the methods in a shuffled,
# unlabelled order; click an image's button or press its number (pairwise mode: also
# ← / →). Votes go to `runs/user_study/votes.csv` (or `$RHARM_VOTES`), one line per vote,
# never twice for the same group; enter the same participant id to resume.

# %%
real_root = data_root() / "real_composites"
try:
    dataset = RealCompositeDataset(real_root)
    data_note = f"{len(dataset)} real composites from {real_root}"
except RharmInputError as exc:  # no shared data: the benchmark's composites instead
    dataset = sources.benchmark_dataset(ctx.profile.benchmark)
    data_note = f"{exc}; using the {len(dataset)} benchmark composites instead"
try:
    checkpoint = sources.study_checkpoint(ctx.profile)
except RharmInputError as exc:
    checkpoint = None
    print(f"without 'ours': {exc}")
methods = study_methods(checkpoint, ctx.device)
print(data_note, "| methods:", ", ".join(methods))

# %%
votes_path = default_votes_path()
voter = VotingWidget(dataset, methods, VoteStore(votes_path), seed=seed, work_size=512)
if in_study_run():
    print(f"(rharm study: the widget is not shown; votes would go to {votes_path})")
else:
    display(voter.ui)

# %% [markdown]
# ## Fig. 3-style layout
# Two groups as a participant sees them: shuffled, without labels (the key is in the
# figure's provenance and printed below, not on the image).

# %%
names = dataset_names(dataset)
layout_trials = make_trials(names, list(methods), "multi", seed=seed, participant="fig3")[
    : S.layout_groups
]
rows, key = [], {}
for t in layout_trials:
    sample = dict(dataset[names.index(t.image)])
    sample["composite"], sample["mask"] = sources.resize_long_side(
        sample["composite"], sample["mask"], 384
    )
    rows.append([methods[m](sample) for m in t.shown])
    key[t.image] = list(t.shown)
fig = plots.image_grid(
    rows,
    col_labels=[f"({chr(97 + i)})" for i in range(len(methods))],
    row_labels=[f"group {i + 1}" for i in range(len(rows))],
    title="Two image groups as shown in the study (order shuffled, no labels)",
)
plots.save_figure(fig, ctx.figures_dir, "fig3_layout", ctx.provenance(key=key), dpi=150)
print("key (left to right):", key)
plt.show()

# %% [markdown]
# ## Analysing votes: recovering known strengths
#
# In a study run there are no collected votes, so we simulate participants who choose
# with known Plackett–Luce strengths (assumed: log-strength 0, 0.25, 0.5, … in the
# methods' order) on `vote_images` numbered image groups (the simulation needs no pixels,
# so the table does not depend on which composites are on disk), in both modes, and fit the strengths with
# `statsmodels` (Poisson GLM form of the conditional logit; 95 % Wald intervals, the
# weakest method fixed at 0). The fit must recover the ranking and cover the truth.

# %%
truth = {m: 0.25 * i for i, m in enumerate(methods)}
images = [f"group_{i:03d}" for i in range(S.vote_images)]
results = []
for mode in ("multi", "pairwise"):
    votes = userstudy.simulate_votes(truth, images, S.vote_participants, mode=mode, seed=seed)
    fit = userstudy.fit_strengths(votes, reference=next(iter(truth)))
    summ = userstudy.vote_summary(votes).set_index("method")
    fit = fit.join(summ[["shown", "chosen", "win_rate", "win_low", "win_high"]], on="method")
    fit.insert(0, "mode", mode)
    fit["true_log_strength"] = fit["method"].map(truth)
    fit["covered"] = (fit["low"] <= fit["true_log_strength"]) & (
        fit["true_log_strength"] <= fit["high"]
    )
    results.append(fit)
sim_table = pd.concat(results, ignore_index=True)
recovered = {
    mode: list(g.sort_values("log_strength")["method"]) == list(truth)
    for mode, g in sim_table.groupby("mode")
}
tables.write_table(
    sim_table,
    ctx.results_dir,
    "table5_simulated_votes",
    ctx.provenance(
        truth=truth, participants=S.vote_participants, images=len(images), recovered=recovered
    ),
    title="Votes simulated from known strengths, analysed (Plackett-Luce / Bradley-Terry)",
    note=(
        f"SIMULATED votes, not collected: {S.vote_participants} participants x "
        f"{len(images)} images per mode, assumed log-strengths {truth}. log_strength with "
        "95 % Wald interval (statsmodels Poisson GLM = conditional logit), reference fixed "
        "at 0; win_rate = chosen / shown with Wilson intervals at 1-0.05/M. "
        f"Ranking recovered: {recovered}."
    ),
    digits=3,
)
print("ranking recovered:", recovered)
sim_table

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), layout="constrained", sharex=True)
for ax, (mode, g) in zip(axes, sim_table.groupby("mode", sort=False)):
    g = g.sort_values("log_strength")
    y = np.arange(len(g))
    ax.errorbar(
        g["log_strength"],
        y,
        xerr=[g["log_strength"] - g["low"], g["high"] - g["log_strength"]],
        fmt="o",
        capsize=3,
        label="fitted, 95 %",
    )
    ax.plot(g["true_log_strength"], y, "x", color="C3", label="true")
    ax.set_yticks(y, g["method"])
    ax.set_title(f"{mode} ({g['shown'].sum() // (len(methods) if mode == 'multi' else 2)} votes)")
    ax.set_xlabel("log-strength (reference = 0)")
axes[0].legend(fontsize=8)
fig.suptitle("Ranking from simulated votes (Plackett-Luce / Bradley-Terry)")
plots.save_figure(fig, ctx.figures_dir, "table5_simulated_ranking", ctx.provenance(), pdf=True, dpi=150)
plt.show()

# %% [markdown]
# ## Collected votes
# When participants have voted with the widget (interactive sessions only; a study run
# never reads them, so its outputs do not depend on an untracked file), the same analysis
# runs on `votes.csv`.

# %%
collected = VoteStore(votes_path).read()
if in_study_run() or collected.empty:
    print(f"no collected votes analysed ({len(collected)} rows in {votes_path})")
else:
    display(userstudy.vote_summary(collected))
    try:
        display(userstudy.fit_strengths(collected))
    except RharmInputError as exc:
        print(f"strengths not identifiable yet: {exc}")
