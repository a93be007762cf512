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
# # 06 · Real composites: the Figs. 5/6 analogue
#
# The model and the baselines on real copy-and-paste composites (no ground truth, so no
# metrics): `data_root()/real_composites` (Lalonde & Efros, DIH99, libcom, INR demos),
# one grid per source. When that folder is absent the notebook says so and shows benchmark
# composites instead. Every method runs at the image's own resolution.
#
# Outputs: `figures/<profile>/fig5_6_real_<source>.png`.

# %% tags=["parameters"]
profile = "ci"  # a key of rharm_lib.study.profiles.PROFILES
seed = 0
device = "auto"  # "cuda" when available, else "cpu"

# %%
import matplotlib.pyplot as plt

from rharm_lib.evaluate import resolve_method
from rharm_lib.study import exploration, plots, sources
from rharm_lib.study.session import start_session

ctx = start_session(profile, seed, device, notebook="06_real_composites")
P = ctx.profile
methods = {
    "Reinhard": resolve_method("reinhard"),
    "histogram matching": resolve_method("histmatch"),
    "ours": resolve_method("checkpoint", checkpoint=sources.study_checkpoint(P), device=ctx.device),
}

# %%
groups, note = sources.real_composites(P.real_per_source, long_side=P.real_long_side)
print(note)
if not groups:  # fall back to the benchmark's composites
    bench = sources.benchmark_dataset(P.benchmark)
    picks = exploration.spread_indices([it.subset for it in bench.items], P.real_per_source)
    groups = {"benchmark-fallback": [dict(bench[i], target=None) for i in picks]}

# %%
for source, samples in groups.items():
    rows = [
        [plots.outline(s["composite"], s["mask"], width=max(1, max(s["mask"].shape) // 256))]
        + [m(s) for m in methods.values()]
        for s in samples
    ]
    fig = plots.image_grid(
        rows,
        col_labels=["composite", *methods],
        row_labels=[s["name"] for s in samples],
        title=f"Real composites: {source} (no ground truth)",
    )
    plots.save_figure(
        fig,
        ctx.figures_dir,
        f"fig5_6_real_{source}",
        ctx.provenance(source=source, images=[s["name"] for s in samples], note=note),
    )
    plt.show()
