"""The paper's ablations (Tables VI and VII, Figs. 7–9) as families of training runs, and
their statistics.

A *family* is a list of :class:`Variant` s, each a set of overrides of the profile's
ablation config (:class:`AblationScale`); every (variant, seed) is one training run of
:func:`rharm_lib.train.train`, named by the hash of its config
(``runs/ablate-<profile>-<hash>``, :func:`rharm_lib.study.sources.config_run_dir`), reused
when finished and resumed when not. Two families asking for the same config share the run
(e.g. Table VI's row 4 is the ``style`` reading and K = 256).

Families (:data:`FAMILIES`):

- ``table6`` — Table VI: 1 = L1 only, 2 = + L_pixel, 3 = + style fusion, 4 = + L_HCL.
- ``fusion`` — Figs. 8/9: the decoder's fusion layer ``none`` / ``adain`` / ``rain`` /
  ``sf`` (eq. 4 as the paper's text describes it) / ``sf_literal`` (eq. 4 as printed).
- ``readings`` — no L_HCL against each reading of eqs. 10–11
  (:data:`rharm_lib.losses.READINGS`).
- ``patches`` — Table VII: K = 64, 128, 256, 512, 1024.

Decisions where the paper is silent:

- *Rows 1–2 of Table VI keep S²AM* (the backbone is the S²AM ResUNet of Cun & Pun; the
  ablation is about the paper's two contributions) and have no fusion layer.
- *Loss weights*: each row is eq. 13 with the absent terms' weights set to 0 (row 1 =
  0.4·L1; AdamW is invariant to the loss's overall scale, so 0.4 and 1 train alike).
- *The fusion comparison runs without L_HCL* (0.4 L1 + 0.5 L_pixel), so that it isolates
  the fusion layer and its ``none``/``sf`` runs are Table VI's rows 2/3.
- *The readings compare against row 3* (the same network without L_HCL).
- Seeds: :attr:`AblationScale.seeds` for Table VI, fusion and readings, ``k_seeds`` for
  Table VII, as the ablation issue asks (3 and 2 in the ``cpu`` profile).

Statistics (:func:`family_table`, :func:`family_tests`): every cell is the mean over the
seeds found, the sample sd and a 95 % t interval over seeds
(:func:`rharm_lib.study.stats.aggregate_seeds`); comparisons are per image on the same
benchmark composites (each variant's per-image mean over its seeds) with a paired BCa
bootstrap interval and the Wilcoxon signed-rank p-value
(:func:`rharm_lib.study.stats.paired_comparison`), Holm-adjusted within a family
(``statsmodels.stats.multitest.multipletests``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import RharmInputError
from ..losses import DEFAULT_READING, READINGS
from ..outputs import RunLockedError
from ..train import TrainConfig, get_config, train
from . import stats
from .outputs import runs_root
from .sources import config_run_dir, train_source

__all__ = [
    "AblationScale",
    "Variant",
    "FAMILIES",
    "variant_config",
    "ablation_run_dir",
    "run_family",
    "find_runs",
    "family_table",
    "family_curves",
    "all_curves",
    "family_tests",
    "family_seeds",
    "compact",
    "suite_status",
    "verdicts",
]


@dataclass(frozen=True)
class AblationScale:
    """How large each ablation run is (the ``ablation`` field of a study profile).

    Attributes:
        train_config: the base :data:`rharm_lib.train.TRAIN_CONFIGS` name (its model and
            loss are Table VI's row 4, the full method).
        steps: optimiser steps of every run (the lr schedule of the config spans them).
        photo_size, crop_size: training photo and crop sides.
        eval_every: steps between evaluations (the points of the Figs. 8/9 curves).
        eval_images: benchmark composites of every evaluation, spread evenly over the
            benchmark's families (the same ones for every run: the paired tests' images).
        seeds: seeds of Table VI, the fusion variants and the readings.
        k_seeds: seeds of Table VII.
        lr: AdamW learning rate (``None``: the base config's); the schedule is the config's.
        compile: ``torch.compile`` the training forward (pays off only for long runs).
        smoke: ``True`` when the runs are too short to say anything about the method
            (the ``ci`` profile's code-path check); every table says so.
        train_in_notebook: notebook 03 trains the missing runs itself (the ``ci`` smoke);
            otherwise it reports the runs that exist and the suite is trained ahead with
            ``rharm ablate`` (hours on a CPU).
    """

    train_config: str
    steps: int
    photo_size: int
    crop_size: int
    eval_every: int
    eval_images: int
    seeds: tuple[int, ...]
    k_seeds: tuple[int, ...]
    lr: float | None = None
    compile: bool = False
    smoke: bool = False
    train_in_notebook: bool = False


@dataclass(frozen=True)
class Variant:
    """One row of an ablation: overrides of the base config's model and loss.

    Attributes:
        key: short identifier (``row1``, ``adain``, ``k512`` ...).
        label: the row's label in tables and figures.
        model: ``ModelConfig`` field overrides, as ``(name, value)`` pairs.
        loss: ``LossConfig`` field overrides, as ``(name, value)`` pairs.
        paper: the paper's row this variant reproduces (``"VI-1"``, ``"VII-256"``), or ``""``.
    """

    key: str
    label: str
    model: tuple[tuple[str, Any], ...] = ()
    loss: tuple[tuple[str, Any], ...] = ()
    paper: str = ""


_NO_HCL = (("w_hcl", 0.0),)
_ROW1 = Variant("row1", "1: L1", (("fusion", "none"),), (("w_pixel", 0.0), *_NO_HCL), "VI-1")
_ROW2 = Variant("row2", "2: L1 + L_pixel", (("fusion", "none"),), _NO_HCL, "VI-2")
_ROW3 = Variant("row3", "3: + style fusion", (), _NO_HCL, "VI-3")
_ROW4 = Variant("row4", "4: + L_HCL (full)", (), (), "VI-4")

#: family name -> its variants (the first variant of ``fusion``/``readings``/``patches``
#: is the reference the others are compared with)
FAMILIES: dict[str, tuple[Variant, ...]] = {
    "table6": (_ROW1, _ROW2, _ROW3, _ROW4),
    "fusion": (
        dataclasses.replace(_ROW2, key="none", label="none"),
        Variant("adain", "AdaIN", (("fusion", "adain"),), _NO_HCL),
        Variant("rain", "RAIN", (("fusion", "rain"),), _NO_HCL),
        dataclasses.replace(_ROW3, key="sf", label="style fusion (eq. 4, text)"),
        Variant(
            "sf_literal", "style fusion (eq. 4, literal)", (("fusion", "sf_literal"),), _NO_HCL
        ),
    ),
    "readings": (
        dataclasses.replace(_ROW3, key="no_hcl", label="no L_HCL"),
        *(
            Variant(
                name, f"L_HCL: {name}", (), () if name == DEFAULT_READING else (("reading", name),)
            )
            for name in (DEFAULT_READING, *sorted(set(READINGS) - {DEFAULT_READING}))
        ),
    ),
    "patches": tuple(
        Variant(
            f"k{k}", f"K = {k}", (), () if k == 256 else (("k", k),), f"VII-{k}" if k != 64 else ""
        )
        for k in (64, 128, 256, 512, 1024)
    ),
}


def _family(name: str) -> tuple[Variant, ...]:
    if name not in FAMILIES:
        raise RharmInputError(
            f"unknown ablation family {name!r}; expected one of {sorted(FAMILIES)}"
        )
    return FAMILIES[name]


def family_seeds(scale: AblationScale, family: str) -> tuple[int, ...]:
    """The seeds a family is run with (``k_seeds`` for ``patches``)."""
    _family(family)
    return scale.k_seeds if family == "patches" else scale.seeds


def _scale(profile) -> AblationScale:
    if getattr(profile, "ablation", None) is None:
        raise RharmInputError(f"profile {profile.name!r} has no ablation scale")
    return profile.ablation


def variant_config(profile, variant: Variant, seed: int) -> TrainConfig:
    """The :class:`~rharm_lib.train.TrainConfig` of one ablation run."""
    sc = _scale(profile)
    base = get_config(sc.train_config)
    return get_config(
        sc.train_config,
        model=dataclasses.replace(base.model, **dict(variant.model)),
        loss=dataclasses.replace(base.loss, **dict(variant.loss)),
        steps=sc.steps,
        batch_size=profile.batch_size,
        photo_size=sc.photo_size,
        crop_size=sc.crop_size,
        eval_every=sc.eval_every,
        eval_max_images=sc.eval_images,
        eval_size=profile.eval_size,
        ckpt_every=max(1, sc.steps // 4),
        compile=sc.compile,
        lr=sc.lr,
        seed=seed,
    )


def ablation_run_dir(profile, variant: Variant, seed: int) -> Path:
    """``<runs_root()>/ablate-<profile>-<hash of the config and data kind>``
    (:func:`rharm_lib.study.outputs.runs_root` of the profile: the repository's ``runs/``
    by default)."""
    return config_run_dir(
        variant_config(profile, variant, seed),
        profile.train_source,
        f"ablate-{profile.name}",
        runs_root(profile.reduced),
    )


def _finished(run: Path) -> bool:
    return (run / "summary.json").is_file() and (run / "checkpoints" / "last.pt").is_file()


def run_family(
    profile,
    family: str,
    seeds: Sequence[int] | None = None,
    device: str = "auto",
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train every missing run of a family (reusing finished ones, resuming others).

    A run whose folder another process holds is skipped (so that two ``rharm ablate``
    processes can share the work); the table says which.

    Returns:
        one row per (variant, seed): ``family, variant, seed, run, status``
        (``reused``/``trained``/``busy``).
    """
    variants = _family(family)
    seeds = tuple(family_seeds(_scale(profile), family) if seeds is None else seeds)
    source = train_source(profile.train_source)
    rows = []
    for seed in seeds:  # seed-major: a partial suite has every variant of the first seeds
        for v in variants:
            run = ablation_run_dir(profile, v, seed)
            try:
                summary = train(
                    variant_config(profile, v, seed),
                    source,
                    run,
                    resume=True,
                    reuse=True,
                    device=device,
                    progress=progress,
                )
                status = "reused" if summary.reused else "trained"
            except RunLockedError as exc:
                status = "busy"
                log(f"skipped: {exc}")
            log(f"{family} / {v.label} / seed {seed}: {status} ({run.name})")
            rows.append(
                {
                    "family": family,
                    "variant": v.key,
                    "seed": seed,
                    "run": str(run),
                    "status": status,
                }
            )
    return pd.DataFrame(rows)


def find_runs(profile, family: str, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """The family's runs on disk: one row per (variant, seed) with ``finished``.

    Columns ``variant, label, seed, run, finished``; seeds default to the family's seeds.
    """
    variants = _family(family)
    seeds = tuple(family_seeds(_scale(profile), family) if seeds is None else seeds)
    rows = [
        {
            "variant": v.key,
            "label": v.label,
            "seed": s,
            "run": ablation_run_dir(profile, v, s),
            "finished": _finished(ablation_run_dir(profile, v, s)),
        }
        for v in variants
        for s in seeds
    ]
    return pd.DataFrame(rows)


def _final_eval(run: Path) -> Path:
    """The folder of a finished run's last evaluation (``eval/step_<last>``)."""
    steps = sorted((run / "eval").glob("step_*"))
    if not steps:
        raise RharmInputError(f"{run}: no evaluation folder under eval/")
    return steps[-1]


def family_table(profile, family: str, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Each variant's final metrics over its finished seeds, with the input composite first.

    Returns:
        rows ``family, variant, method`` (the label), ``subset`` (each benchmark family and
        ``All``), ``n, seeds`` and for each metric of :data:`~rharm_lib.study.stats.METRICS`
        the mean, ``_sd`` and the 95 % t interval over seeds ``_ci_lo``/``_ci_hi``; variants
        without a finished run are left out. The composite row (``variant = composite``) is
        the same benchmark subset without any change.
    """
    runs = find_runs(profile, family, seeds)
    done = runs[runs["finished"]]
    if done.empty:
        return pd.DataFrame()
    parts = []
    base = _summary_from_per_image(done["run"].iloc[0] / "eval" / "composite", "composite")
    base = base.assign(method="input composite", seeds=0)
    parts.append(base.assign(family=family, variant="composite"))
    for key, g in done.groupby("variant", sort=False):
        frames = []
        for _, r in g.iterrows():
            frames.append(_summary_from_per_image(_final_eval(r["run"]), f"{key}#{r['seed']}"))
        table = pd.concat(frames, ignore_index=True)
        labels = {int(r["seed"]): f"{key}#{r['seed']}" for _, r in g.iterrows()}
        agg = stats.aggregate_seeds(table, labels, g["label"].iloc[0])
        parts.append(agg.assign(family=family, variant=key))
    out = pd.concat(parts, ignore_index=True)
    front = ["family", "variant", "method", "subset", "n", "seeds"]
    return out[front + [c for c in out.columns if c not in front]]


def _summary_from_per_image(folder: Path, label: str) -> pd.DataFrame:
    """``method, subset, n, <metrics>`` per subset and ``All`` (image-weighted means of the
    per-image metrics, the protocol of :func:`rharm_lib.evaluate.evaluate`)."""
    path = folder / "per_image.csv"
    if not path.is_file():
        raise RharmInputError(f"no per-image results at {path}")
    df = pd.read_csv(path)
    rows = []
    for subset, g in [*df.groupby("subset", sort=False), ("All", df)]:
        rec = {"method": label, "subset": subset, "n": len(g)}
        rec.update({m: float(np.nanmean(g[m].to_numpy(float))) for m in stats.METRICS})
        rows.append(rec)
    return pd.DataFrame(rows)


def family_curves(profile, family: str, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Benchmark metrics against training steps for every finished or running run of a
    family (``eval.csv``), one row per (variant, seed, step); step 0 is the input composite.

    Columns ``variant, label, seed, run`` (the run folder's name), then ``eval.csv``'s
    ``step, method, n, mse, psnr, psnr_peak, fmse, ssim, fssim``.
    """
    runs = find_runs(profile, family, seeds)
    frames = []
    for _, r in runs.iterrows():
        path = r["run"] / "eval.csv"
        if path.is_file():
            ev = pd.read_csv(path).rename(columns=str.lower)
            head = {"variant": r["variant"], "label": r["label"], "seed": r["seed"]}
            head["run"] = Path(r["run"]).name
            frames.append(pd.concat([pd.DataFrame([head] * len(ev)), ev], axis=1))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def all_curves(profile, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """:func:`family_curves` of every family in :data:`FAMILIES`, with a leading ``family``
    column (a run shared by two families appears under each); empty when no run has an
    ``eval.csv`` yet."""
    frames = [family_curves(profile, f, seeds) for f in FAMILIES]
    frames = [c.assign(family=f) for f, c in zip(FAMILIES, frames, strict=True) if not c.empty]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["family", *[c for c in out.columns if c != "family"]]]


def family_tests(
    profile,
    family: str,
    pairs: Sequence[tuple[str, str]] | None = None,
    seeds: Sequence[int] | None = None,
    metrics: Sequence[str] = ("fmse", "mse", "psnr"),
) -> pd.DataFrame:
    """Paired per-image comparisons within a family, on the ``All`` row.

    Args:
        pairs: ``(a, b)`` variant keys, ``a`` compared with ``b`` (default: ``table6``
            each row with the one before; the other families each variant with the first).
        metrics: compared metrics.

    Returns:
        the rows of :func:`rharm_lib.study.stats.paired_comparison` for ``subset = All``
        (``a, b`` are the labels) plus ``seeds_a, seeds_b`` and ``p_holm`` (the Wilcoxon
        p-values Holm-adjusted over the family's pairs, per metric). Pairs with a variant
        that has no finished run are left out.
    """
    from statsmodels.stats.multitest import multipletests

    variants = {v.key: v for v in _family(family)}
    keys = list(variants)
    if pairs is None:
        pairs = (
            list(zip(keys[1:], keys[:-1], strict=True))
            if family == "table6"
            else [(k, keys[0]) for k in keys[1:]]
        )
    runs = find_runs(profile, family, seeds)
    done = runs[runs["finished"]]
    folders = {k: [_final_eval(r) for r in g["run"]] for k, g in done.groupby("variant")}
    rows = []
    for a, b in pairs:
        if a not in folders or b not in folders:
            continue
        pa, pb = stats.per_image(folders[a]), stats.per_image(folders[b])
        t = stats.paired_comparison(
            pa, pb, variants[a].label, variants[b].label, metrics, subsets=[]
        )
        rows.append(t.assign(seeds_a=len(folders[a]), seeds_b=len(folders[b]), key_a=a, key_b=b))
    if not rows:
        return pd.DataFrame()
    out = pd.concat(rows, ignore_index=True)
    out["p_holm"] = np.nan
    for _metric, g in out.groupby("metric"):
        p = g["wilcoxon_p"].to_numpy(float)
        ok = np.isfinite(p)
        if ok.any():
            adj = np.full(p.shape, np.nan)
            adj[ok] = multipletests(p[ok], method="holm")[1]
            out.loc[g.index, "p_holm"] = adj
    return out


def compact(table: pd.DataFrame, metrics: Sequence[str] = stats.METRICS) -> pd.DataFrame:
    """The ``All`` rows of a :func:`family_table` as text cells ``mean ± sd [lo, hi]`` (the
    Markdown view; one seed: the mean alone), plus any ``reported_*`` columns."""
    rows = table[table["subset"] == "All"]
    out = rows[["variant", "method", "seeds", "n"]].copy()
    for m in metrics:
        d = 4 if m in ("ssim", "fssim") else 2

        def cell(r, m=m, d=d) -> str:
            if not np.isfinite(r.get(f"{m}_sd", np.nan)):
                return f"{r[m]:.{d}f}"
            return f"{r[m]:.{d}f} ± {r[f'{m}_sd']:.{d}f} [{r[f'{m}_ci_lo']:.{d}f}, {r[f'{m}_ci_hi']:.{d}f}]"

        out[m] = [cell(r) for _, r in rows.iterrows()]
    for c in [c for c in table.columns if c.startswith("reported_")]:
        out[c] = rows[c].to_numpy()
    return out.reset_index(drop=True)


def verdicts(tests: pd.DataFrame, metric: str = "fmse", alpha: float = 0.05) -> pd.DataFrame:
    """One sentence per comparison: does our data support "a is better than b"?

    ``supported`` when the 95 % paired interval excludes 0 on ``a``'s better side and the
    Holm-adjusted Wilcoxon p is below ``alpha``; ``contradicted`` when the same holds on
    ``b``'s side; otherwise ``inconclusive``.

    Returns:
        ``a, b, metric, diff, ci_lo, ci_hi, p_holm, seeds_a, seeds_b, verdict, sentence``.
    """
    if tests.empty:
        return pd.DataFrame()
    rows = []
    for _, r in tests[tests["metric"] == metric].iterrows():
        up = stats.HIGHER_IS_BETTER[metric]
        a_side = r["ci_lo"] > 0 if up else r["ci_hi"] < 0
        b_side = r["ci_hi"] < 0 if up else r["ci_lo"] > 0
        sig = bool(np.isfinite(r["p_holm"]) and r["p_holm"] < alpha)
        verdict = (
            "supported" if a_side and sig else "contradicted" if b_side and sig else "inconclusive"
        )
        rel = r["diff"] / r["mean_b"] if r["mean_b"] else float("nan")
        sentence = (
            f"{r['a']} vs {r['b']}: {metric} {r['mean_a']:.4g} vs {r['mean_b']:.4g}, "
            f"difference {r['diff']:+.4g} ({rel:+.1%}), 95 % paired interval "
            f"[{r['ci_lo']:+.4g}, {r['ci_hi']:+.4g}], Holm-adjusted Wilcoxon p = {r['p_holm']:.2g}, "
            f"n = {int(r['n'])} composites, {int(r['seeds_a'])} vs {int(r['seeds_b'])} seed(s): "
            f"{verdict}."
        )
        rows.append(
            {
                **{
                    k: r[k]
                    for k in (
                        "a",
                        "b",
                        "metric",
                        "diff",
                        "ci_lo",
                        "ci_hi",
                        "p_holm",
                        "seeds_a",
                        "seeds_b",
                    )
                },
                "verdict": verdict,
                "sentence": sentence,
            }
        )
    return pd.DataFrame(rows)


def suite_status(profile) -> pd.DataFrame:
    """Every run of every family (shared runs once): ``variant keys, seed, run, finished,
    training_min`` (from ``summary.json``; NaN when unfinished)."""
    seen: dict[Path, dict] = {}
    for fam in FAMILIES:
        for _, r in find_runs(profile, fam).iterrows():
            rec = seen.setdefault(
                r["run"],
                {
                    "families": [],
                    "seed": r["seed"],
                    "run": r["run"].name,
                    "finished": r["finished"],
                },
            )
            rec["families"].append(f"{fam}:{r['variant']}")
    rows = []
    for run, rec in seen.items():
        minutes = float("nan")
        if rec["finished"]:
            minutes = json.loads((run / "summary.json").read_text())["result"]["wall_s"] / 60
        rows.append({**rec, "families": ", ".join(rec["families"]), "training_min": minutes})
    return pd.DataFrame(rows)
