"""The user study (the paper's Table V): re-analysis of the reported votes, and analysis
of votes collected with :mod:`rharm_lib.study.voting`.

**Table V** (Sec. IV-C and IV-E): 28 participants each saw the 99 DIH99 composites, every
time as a group of five images in a shuffled, unlabelled order (the composite and the
results of DIH, BargainNet, RainNet and the paper's method) and chose the most pleasing
one: 28 x 99 = 2,772 choices. Only the vote totals are published; :data:`REPORTED` holds
them (transcribed once from the paper; ``tests/test_userstudy.py`` checks the
transcription against ``../shared/paper`` when present).

What is computed here (notebook ``07_user_study`` orchestrates and plots):

- :func:`share_intervals`: each method's share with **simultaneous** 95 % intervals.
  Decision: Goodman's (1965) intervals for multinomial proportions
  (``statsmodels.stats.proportion.multinomial_proportions_confint(method="goodman")``);
  the alternative, Wilson score intervals at level ``1 - alpha / M`` (Bonferroni over the
  M methods), is given in extra columns.
- :func:`goodness_of_fit`: Pearson's chi-square against "no preference" (equal shares),
  ``scipy.stats.chisquare``.
- :func:`compare_to_reference`: "ours" against each other method: an exact binomial test
  of the votes for ours among the votes for ours or the other (equal cell probabilities
  of a multinomial, conditional on the pair's total), corrected for the M - 1
  comparisons with Holm's method (``statsmodels.stats.multitest.multipletests``;
  Bonferroni in an extra column).
- :func:`simulate_heterogeneous` and :func:`heterogeneity_table`: all of the above treats
  the 2,772 choices as independent. They are not: 28 raters x 99 images. A
  random-utility simulation (each rater and each image shifts each method's utility by a
  normal effect with SD ``rater_sd`` / ``image_sd``) shows how much wider the true
  sampling spread of the shares is, and how often the nominal Goodman intervals miss.
- :func:`power_independent` and :func:`power_by_simulation`: participants (at 99 images)
  needed to tell ours from RainNet at 80 % power, and the smallest difference 28 x 99 can
  detect.
- :func:`vote_summary` and :func:`fit_strengths`: for votes collected by the voting
  widget (any group size: all methods at once, or pairs): per-method shares with
  intervals and Plackett-Luce (top-1 choice; Bradley-Terry for pairs) log-strengths with
  Wald intervals, fitted as a conditional logit by ``statsmodels`` (McFadden's choice
  model with one dummy per method, the reference method's strength fixed at 0); no
  hand-written optimiser. :func:`simulate_votes` draws such votes from known strengths,
  which the ci study and the tests recover.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.discrete.conditional_models import ConditionalLogit
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    multinomial_proportions_confint,
    proportion_confint,
    proportion_effectsize,
)
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

from ..errors import RharmInputError
from .outputs import reduced_requested
from .reported import TABLE5_USER_STUDY, USER_STUDY
from .voting import VOTE_COLUMNS, make_trials, split_shown

__all__ = [
    "ReportedVotes",
    "REPORTED",
    "UserStudySizes",
    "USER_STUDY_SIZES",
    "REDUCED_USER_STUDY_SIZES",
    "get_sizes",
    "share_intervals",
    "goodness_of_fit",
    "compare_to_reference",
    "table5",
    "base_utilities",
    "simulate_heterogeneous",
    "heterogeneity_table",
    "power_independent",
    "power_by_simulation",
    "simulate_votes",
    "vote_summary",
    "fit_strengths",
]


@dataclass(frozen=True)
class ReportedVotes:
    """Vote totals of a published user study (reported, not reproduced).

    Attributes:
        methods: method names in the paper's column order.
        votes: votes per method (sum = ``participants * images``).
        preference_pct: the paper's "Preference" row, in percent (rounded to 0.01).
        participants: raters.
        images: image groups each rater judged.
        citation: where the numbers come from.
    """

    methods: tuple[str, ...]
    votes: tuple[int, ...]
    preference_pct: tuple[float, ...]
    participants: int
    images: int
    citation: str

    @property
    def n_choices(self) -> int:
        """Number of choices, ``participants * images``."""
        return self.participants * self.images

    def counts(self) -> dict[str, int]:
        """``{method: votes}`` in the paper's order."""
        return dict(zip(self.methods, self.votes, strict=True))


#: Table V of Liang & Pun (arXiv:2205.14058), "Voting results of the user study on DIH99",
#: built from the one transcription in :mod:`rharm_lib.study.reported` (28 participants and
#: 99 groups from Sec. IV-C). The paper's "Copy-paste" is named ``composite`` here (the
#: batch vocabulary) and its "Ours" ``ours``.
_T5_NAMES = {"input composite": "composite", "ours (paper)": "ours"}
REPORTED = ReportedVotes(
    methods=tuple(_T5_NAMES.get(m, m) for m in TABLE5_USER_STUDY),
    votes=tuple(v for v, _ in TABLE5_USER_STUDY.values()),
    preference_pct=tuple(p for _, p in TABLE5_USER_STUDY.values()),
    participants=int(USER_STUDY["participants"]),
    images=int(USER_STUDY["images"]),
    citation="Liang & Pun, arXiv:2205.14058, Table V and Sec. IV-C (28 participants x 99 "
    "DIH99 composites, one choice among 5 per group)",
)


@dataclass(frozen=True)
class UserStudySizes:
    """How much simulation notebook 07 does, per study profile.

    Attributes:
        heterogeneity_reps: simulated studies per heterogeneity scenario.
        truth_draws: Monte-Carlo draws of the true marginal shares per scenario.
        power_reps: simulated studies per participant count of the simulated power curve.
        power_participants: participant counts of the simulated power curve.
        vote_participants: simulated participants of the voting-analysis demo.
        vote_images: images each simulated participant votes on (capped by the data).
        layout_groups: image groups of the Fig. 3-style layout figure.
    """

    heterogeneity_reps: int
    truth_draws: int
    power_reps: int
    power_participants: tuple[int, ...]
    vote_participants: int
    vote_images: int
    layout_groups: int


#: the full simulation
_FULL_SIZES = UserStudySizes(
    heterogeneity_reps=2000,
    truth_draws=1_000_000,
    power_reps=500,
    power_participants=(4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96, 128),
    vote_participants=28,
    vote_images=99,
    layout_groups=2,
)

#: profile name -> sizes (kept here rather than in ``StudyProfile`` so that the study's
#: profiles need no new fields; both are looked up by the profile's name)
USER_STUDY_SIZES: dict[str, UserStudySizes] = {
    "ci": UserStudySizes(
        heterogeneity_reps=300,
        truth_draws=200_000,
        power_reps=150,
        power_participants=(4, 8, 12, 16, 24, 32, 48, 64, 96),
        vote_participants=12,
        vote_images=60,
        layout_groups=2,
    ),
    # cpu and gpu: the full simulation (NumPy on the CPU in both)
    "cpu": _FULL_SIZES,
    "gpu": _FULL_SIZES,
}


#: the sizes of every profile's reduced run (:func:`rharm_lib.study.profiles.reduced`):
#: each simulation runs, a few repetitions each (the numbers mean nothing)
REDUCED_USER_STUDY_SIZES = UserStudySizes(
    heterogeneity_reps=20,
    truth_draws=2000,
    power_reps=10,
    power_participants=(4, 12, 28),
    vote_participants=6,
    vote_images=12,
    layout_groups=1,
)


def get_sizes(profile: str, reduced: bool | None = None) -> UserStudySizes:
    """The :class:`UserStudySizes` of ``profile``; :class:`RharmInputError` if unknown.

    ``reduced`` (default ``$RHARM_STUDY_REDUCED``, as
    :func:`rharm_lib.study.profiles.get_profile`): :data:`REDUCED_USER_STUDY_SIZES`.
    """
    try:
        sizes = USER_STUDY_SIZES[profile]
    except KeyError:
        raise RharmInputError(
            f"no user-study sizes for profile {profile!r}; known: {', '.join(USER_STUDY_SIZES)}"
        ) from None
    return (
        REDUCED_USER_STUDY_SIZES if (reduced_requested() if reduced is None else reduced) else sizes
    )


def _counts(votes: Mapping[str, int]) -> tuple[list[str], np.ndarray]:
    methods = list(votes)
    counts = np.asarray([votes[m] for m in methods], dtype=np.int64)
    if len(methods) < 2 or (counts < 0).any() or counts.sum() == 0:
        raise RharmInputError(
            f"expected >= 2 methods with non-negative votes, not all zero; got {dict(votes)}"
        )
    return methods, counts


def share_intervals(votes: Mapping[str, int], alpha: float = 0.05) -> pd.DataFrame:
    """Each method's share of the votes with simultaneous ``1 - alpha`` intervals.

    Args:
        votes: ``{method: votes}`` (one choice among all methods per group).
        alpha: family-wise error rate of the intervals.

    Returns:
        columns ``method, votes, share, goodman_low, goodman_high, wilson_bonf_low,
        wilson_bonf_high`` (shares in [0,1]): Goodman's simultaneous intervals (the
        decision), and Wilson intervals at level ``1 - alpha / M`` (the alternative).
    """
    methods, counts = _counts(votes)
    n = int(counts.sum())
    goodman = multinomial_proportions_confint(counts, alpha=alpha, method="goodman")
    lo, hi = proportion_confint(counts, n, alpha=alpha / len(methods), method="wilson")
    return pd.DataFrame(
        {
            "method": methods,
            "votes": counts,
            "share": counts / n,
            "goodman_low": goodman[:, 0],
            "goodman_high": goodman[:, 1],
            "wilson_bonf_low": np.asarray(lo),
            "wilson_bonf_high": np.asarray(hi),
        }
    )


def goodness_of_fit(votes: Mapping[str, int]) -> dict[str, float]:
    """Pearson's chi-square of the votes against equal shares ("no preference").

    Returns:
        ``{"chi2", "df", "p", "n"}``.
    """
    _, counts = _counts(votes)
    res = stats.chisquare(counts)
    return {
        "chi2": float(res.statistic),
        "df": len(counts) - 1,
        "p": float(res.pvalue),
        "n": int(counts.sum()),
    }


def compare_to_reference(
    votes: Mapping[str, int],
    reference: str = "ours",
    alpha: float = 0.05,
    correction: str = "holm",
) -> pd.DataFrame:
    """``reference`` against each other method: exact binomial tests, corrected.

    For methods a (the reference) and b with votes ``n_a``, ``n_b``: under equal cell
    probabilities, ``n_a | n_a + n_b ~ Binomial(n_a + n_b, 1/2)``. The conditional share
    ``n_a / (n_a + n_b)`` gets a Wilson interval at level ``1 - alpha / (M - 1)``.

    Args:
        votes: ``{method: votes}``.
        reference: the method compared with every other one.
        alpha: family-wise error rate.
        correction: a ``multipletests`` method for the M - 1 p-values (``holm``, the
            decision; ``bonferroni`` is also reported).

    Returns:
        one row per other method: ``method, reference_votes, method_votes,
        reference_share_of_pair, pair_low, pair_high, p, p_<correction>, p_bonferroni,
        significant``.
    """
    if reference not in votes:
        raise RharmInputError(f"reference {reference!r} is not among the methods {list(votes)}")
    others = [m for m in votes if m != reference]
    n_ref = int(votes[reference])
    rows = []
    for m in others:
        pair = n_ref + int(votes[m])
        lo, hi = proportion_confint(n_ref, pair, alpha=alpha / len(others), method="wilson")
        rows.append(
            {
                "method": m,
                "reference_votes": n_ref,
                "method_votes": int(votes[m]),
                "reference_share_of_pair": n_ref / pair,
                "pair_low": float(lo),
                "pair_high": float(hi),
                "p": float(stats.binomtest(n_ref, pair, 0.5).pvalue),
            }
        )
    df = pd.DataFrame(rows)
    reject, p_corr, _, _ = multipletests(df["p"], alpha=alpha, method=correction)
    df[f"p_{correction}"] = p_corr
    if correction != "bonferroni":
        df["p_bonferroni"] = multipletests(df["p"], alpha=alpha, method="bonferroni")[1]
    df["significant"] = reject
    return df


def table5(reported: ReportedVotes = REPORTED, alpha: float = 0.05) -> pd.DataFrame:
    """The Table V re-analysis: shares, simultaneous intervals, ours vs each method.

    Returns:
        one row per method (the paper's order): ``method, votes, reported_pct, share_pct,
        goodman_low_pct, goodman_high_pct, wilson_bonf_low_pct, wilson_bonf_high_pct,
        ours_share_of_pair, log10_p_vs_ours, log10_p_holm_vs_ours, ours_better`` (``NaN``
        in the comparison columns of "ours" itself; p-values as log10, readable when
        rounded: -6.72 is p = 1.9e-7). Percentages in [0,100].
    """
    votes = reported.counts()
    sh = share_intervals(votes, alpha)
    cmp_ = compare_to_reference(votes, "ours", alpha).set_index("method")
    out = pd.DataFrame({"method": sh["method"], "votes": sh["votes"]})
    out["reported_pct"] = list(reported.preference_pct)
    for col in ("share", "goodman_low", "goodman_high", "wilson_bonf_low", "wilson_bonf_high"):
        out[f"{col}_pct"] = 100 * sh[col]
    out["ours_share_of_pair"] = out["method"].map(cmp_["reference_share_of_pair"])
    out["log10_p_vs_ours"] = np.log10(out["method"].map(cmp_["p"]))
    out["log10_p_holm_vs_ours"] = np.log10(out["method"].map(cmp_["p_holm"]))
    out["ours_better"] = out["method"].map(cmp_["significant"]).astype(object)
    out.loc[out["method"] == "ours", "ours_better"] = None
    return out


# --- what the design cannot tell: rater and image heterogeneity -------------------------


def base_utilities(shares: Sequence[float]) -> np.ndarray:
    """Utilities whose softmax is ``shares``: ``log(shares)`` centred, shape ``(M,)``."""
    u = np.log(np.asarray(shares, dtype=float))
    return u - u.mean()


def simulate_heterogeneous(
    utilities: Sequence[float],
    participants: int,
    images: int,
    rater_sd: float,
    image_sd: float,
    reps: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Simulate whole studies under a random-utility model with rater and image effects.

    Rater r choosing among the M methods on image i picks method m with probability
    ``softmax_m(u_m + a_rm + b_im)``, ``a_rm ~ N(0, rater_sd^2)``, ``b_im ~ N(0,
    image_sd^2)``, all independent; every study draws new raters and new images (both are
    samples from populations).

    Args:
        utilities: ``(M,)`` base utilities (:func:`base_utilities`).
        participants, images: the design (every rater judges every image).
        rater_sd, image_sd: SDs of the effects (utility scale, >= 0).
        reps: simulated studies.
        rng: the generator.

    Returns:
        ``(reps, participants, M)`` int64: votes per study, rater and method.
    """
    u = np.asarray(utilities, dtype=float)
    m = len(u)
    out = np.empty((reps, participants, m), dtype=np.int64)
    for k in range(reps):
        a = rng.normal(0.0, rater_sd, (participants, 1, m)) if rater_sd > 0 else 0.0
        b = rng.normal(0.0, image_sd, (1, images, m)) if image_sd > 0 else 0.0
        logits = u + a + b + np.zeros((participants, images, m))
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        # inverse-CDF draw of one choice per (rater, image)
        choice = (rng.random((participants, images, 1)) > p.cumsum(-1)).sum(-1)
        choice = np.minimum(choice, m - 1)
        out[k] = (choice[..., None] == np.arange(m)).sum(1)
    return out


def _true_shares(
    utilities: np.ndarray, rater_sd: float, image_sd: float, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Population marginal shares ``E[softmax(u + a + b)]`` by Monte Carlo, ``(M,)``."""
    sd = math.sqrt(rater_sd**2 + image_sd**2)
    logits = utilities + rng.normal(0.0, sd, (draws, len(utilities)))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).mean(0)


def heterogeneity_table(
    reported: ReportedVotes = REPORTED,
    scenarios: Sequence[tuple[float, float]] = (
        (0.0, 0.0),
        (0.5, 0.0),
        (0.0, 0.5),
        (0.5, 0.5),
        (1.0, 1.0),
    ),
    reps: int = 300,
    truth_draws: int = 200_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """How wide the shares' sampling spread is when raters and images differ.

    For each ``(rater_sd, image_sd)`` scenario, ``reps`` studies of the reported design
    are simulated from the reported shares (:func:`simulate_heterogeneous`); for each
    method: the true population share, the SD of its simulated share and the width of the
    central ``1 - alpha`` range, next to the nominal multinomial SD and the mean Goodman
    interval width; ``design_effect`` = simulated variance / nominal variance; and, per
    scenario, ``goodman_coverage``: how often the Goodman intervals of a study cover all
    true shares at once (nominal ``1 - alpha``).

    Returns:
        one row per scenario and method: ``rater_sd, image_sd, method, true_share,
        sim_sd, nominal_sd, design_effect, sim_width, goodman_width, goodman_coverage``.
    """
    rng = np.random.default_rng(seed)
    shares = np.asarray(reported.votes) / reported.n_choices
    u = base_utilities(shares)
    n = reported.n_choices
    rows = []
    for rater_sd, image_sd in scenarios:
        sims = simulate_heterogeneous(
            u, reported.participants, reported.images, rater_sd, image_sd, reps, rng
        ).sum(1)
        sim_shares = sims / n
        truth = _true_shares(u, rater_sd, image_sd, truth_draws, rng)
        ci = np.stack([multinomial_proportions_confint(c, alpha, "goodman") for c in sims])
        covered = ((ci[..., 0] <= truth) & (truth <= ci[..., 1])).all(-1).mean()
        lo, hi = np.quantile(sim_shares, [alpha / 2, 1 - alpha / 2], axis=0)
        for j, method in enumerate(reported.methods):
            nominal_sd = math.sqrt(truth[j] * (1 - truth[j]) / n)
            sim_sd = float(sim_shares[:, j].std(ddof=1))
            rows.append(
                {
                    "rater_sd": rater_sd,
                    "image_sd": image_sd,
                    "method": method,
                    "true_share": float(truth[j]),
                    "sim_sd": sim_sd,
                    "nominal_sd": nominal_sd,
                    "design_effect": sim_sd**2 / nominal_sd**2,
                    "sim_width": float(hi[j] - lo[j]),
                    "goodman_width": float((ci[:, j, 1] - ci[:, j, 0]).mean()),
                    "goodman_coverage": float(covered),
                }
            )
    return pd.DataFrame(rows)


# --- power -------------------------------------------------------------------------------


def power_independent(
    votes_a: int,
    votes_b: int,
    n_choices: int,
    images: int = 99,
    participants: int = 28,
    alpha: float = 0.05 / 4,
    power: float = 0.8,
) -> dict[str, float]:
    """Power of the a-vs-b comparison if every choice were independent.

    The test is :func:`compare_to_reference`'s: votes for a among the votes for a or b
    against 1/2, in its normal approximation with Cohen's h
    (``statsmodels.stats.power.NormalIndPower`` with ``ratio=0``, a one-sample test).
    Decision: ``alpha`` defaults to 0.05/4, Bonferroni over the four comparisons with
    "ours" (conservative for Holm, whose first step uses the same level).

    Args:
        votes_a, votes_b: the observed votes (they fix the pair's conditional share q and
            the pair's share s of all choices).
        n_choices: all choices of the observed study.
        images: images per participant in the planned study.
        participants: participants of the design whose detectable difference is asked.
        alpha: two-sided level.
        power: target power.

    Returns:
        ``q`` (a's share of the pair), ``s`` (the pair's share of all choices), ``h``,
        ``pair_votes_needed``, ``choices_needed``, ``participants_needed`` (at ``images``
        per participant), ``detectable_h``, ``detectable_q``, ``detectable_diff`` (the
        smallest a-minus-b difference of shares of all choices detectable with
        ``participants x images`` choices, at the same s) and ``detectable_diff_votes``.
    """
    pair = votes_a + votes_b
    q = votes_a / pair
    s = pair / n_choices
    h = float(proportion_effectsize(q, 0.5))
    solver = NormalIndPower()
    pair_needed = float(solver.solve_power(effect_size=h, alpha=alpha, power=power, ratio=0))
    choices_needed = pair_needed / s
    n_design = participants * images
    det_h = float(
        solver.solve_power(nobs1=n_design * s, alpha=alpha, power=power, ratio=0, effect_size=None)
    )
    det_q = math.sin((det_h + 2 * math.asin(math.sqrt(0.5))) / 2) ** 2
    det_diff = s * (2 * det_q - 1)
    return {
        "q": q,
        "s": s,
        "h": h,
        "alpha": alpha,
        "power": power,
        "pair_votes_needed": pair_needed,
        "choices_needed": choices_needed,
        "participants_needed": math.ceil(choices_needed / images),
        "design_choices": n_design,
        "detectable_h": det_h,
        "detectable_q": det_q,
        "detectable_diff": det_diff,
        "detectable_diff_votes": det_diff * n_design,
    }


def power_by_simulation(
    reported: ReportedVotes = REPORTED,
    a: str = "ours",
    b: str = "RainNet",
    participants: Sequence[int] = (2, 4, 8, 16, 32),
    rater_sd: float = 0.5,
    image_sd: float = 0.5,
    images: int | None = None,
    reps: int = 200,
    alpha: float = 0.05 / 4,
    seed: int = 0,
) -> pd.DataFrame:
    """Power to tell ``a`` from ``b`` with rater and image heterogeneity, by simulation.

    Studies are drawn by :func:`simulate_heterogeneous` from the reported shares. The test
    respects the raters: per rater, ``d_r = (votes_a - votes_b) / images``; a one-sample
    t-test of ``d_r`` against 0 (``scipy.stats.ttest_1samp``) at level ``alpha``. It
    generalises over raters for the images shown (not over images: image effects shared
    by all raters are not in its error term, which is why ``image_sd`` also matters
    less here than in :func:`heterogeneity_table`).

    Returns:
        one row per participant count: ``participants, images, rater_sd, image_sd, alpha,
        power`` (rejections with ``a`` ahead, out of ``reps``).
    """
    if participants and min(participants) < 2:
        raise RharmInputError(f"the t-test needs >= 2 participants, got {list(participants)}")
    rng = np.random.default_rng(seed)
    images = images or reported.images
    ia, ib = reported.methods.index(a), reported.methods.index(b)
    u = base_utilities(np.asarray(reported.votes) / reported.n_choices)
    rows = []
    for r in participants:
        sims = simulate_heterogeneous(u, r, images, rater_sd, image_sd, reps, rng)
        d = (sims[..., ia] - sims[..., ib]) / images  # (reps, r)
        with warnings.catch_warnings():  # identical d_r (tiny designs): p is NaN -> no reject
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_1samp(d, 0.0, axis=1)
        p = np.nan_to_num(res.pvalue, nan=1.0)
        rejected = (p < alpha) & (d.mean(1) > 0)
        rows.append(
            {
                "participants": r,
                "images": images,
                "rater_sd": rater_sd,
                "image_sd": image_sd,
                "alpha": alpha,
                "power": float(rejected.mean()),
            }
        )
    return pd.DataFrame(rows)


# --- votes collected with the voting widget ----------------------------------------------


def simulate_votes(
    log_strengths: Mapping[str, float],
    images: Sequence[str],
    participants: int,
    mode: str = "multi",
    seed: int = 0,
) -> pd.DataFrame:
    """Votes drawn from known Plackett-Luce strengths, in the voting CSV's schema.

    Every simulated participant sees every image once: in ``multi`` mode all methods in
    a shuffled order, in ``pairwise`` mode a pair of methods (pairs cycled evenly over
    the images, left/right shuffled). The choice is method m with probability
    ``exp(s_m) / sum_shown exp(s_k)``.

    Args:
        log_strengths: ``{method: log-strength}`` (the truth to recover).
        images: image names.
        participants: simulated raters (``sim01``, ``sim02`` ...).
        mode: ``multi`` or ``pairwise``.
        seed: the seed (the same seed gives the same votes).

    Returns:
        a DataFrame with the columns :data:`rharm_lib.study.voting.VOTE_COLUMNS`.
    """
    methods = list(log_strengths)
    s = np.asarray([log_strengths[m] for m in methods], dtype=float)
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(participants):
        pid = f"sim{r + 1:02d}"
        for t in make_trials(images, methods, mode, seed=seed, participant=pid):
            idx = [methods.index(m) for m in t.shown]
            w = np.exp(s[idx] - s[idx].max())
            pos = int(rng.choice(len(idx), p=w / w.sum()))
            rows.append(
                {
                    "participant": pid,
                    "mode": mode,
                    "trial": t.trial,
                    "image": t.image,
                    "shown": "|".join(t.shown),
                    "choice": t.shown[pos],
                    "position": pos + 1,
                    "time_utc": "",
                    "response_ms": 0,
                }
            )
    return pd.DataFrame(rows, columns=list(VOTE_COLUMNS))


def _check_votes(votes: pd.DataFrame) -> None:
    missing = [c for c in ("participant", "trial", "shown", "choice") if c not in votes.columns]
    if missing:
        raise RharmInputError(f"votes lack the columns {missing}; expected {list(VOTE_COLUMNS)}")
    if votes.empty:
        raise RharmInputError("no votes to analyse")


def vote_summary(votes: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per-method counts of collected votes with intervals.

    Args:
        votes: rows in the voting CSV's schema (any mix of group sizes).
        alpha: family-wise level over the methods.

    Returns:
        one row per method: ``method, shown, chosen, win_rate`` (chosen / shown, the
        comparable share when group sizes differ), ``win_low, win_high`` (Wilson at
        ``1 - alpha / M``), ``share`` (chosen / all votes) and ``share_low, share_high``
        (Goodman, simultaneous; meaningful when every group showed every method).
    """
    _check_votes(votes)
    shown = pd.Series(
        [m for s in votes["shown"] for m in split_shown(s)], dtype=object
    ).value_counts()
    chosen = votes["choice"].value_counts().reindex(shown.index, fill_value=0)
    methods = sorted(shown.index)
    shown, chosen = shown[methods].to_numpy(), chosen[methods].to_numpy()
    lo, hi = proportion_confint(chosen, shown, alpha=alpha / len(methods), method="wilson")
    good = multinomial_proportions_confint(chosen, alpha, "goodman")
    return pd.DataFrame(
        {
            "method": methods,
            "shown": shown,
            "chosen": chosen,
            "win_rate": chosen / shown,
            "win_low": np.asarray(lo),
            "win_high": np.asarray(hi),
            "share": chosen / chosen.sum(),
            "share_low": good[:, 0],
            "share_high": good[:, 1],
        }
    )


def fit_strengths(
    votes: pd.DataFrame,
    reference: str | None = None,
    alpha: float = 0.05,
    engine: str = "poisson",
) -> pd.DataFrame:
    """Plackett-Luce / Bradley-Terry log-strengths of collected votes with Wald intervals.

    One choice among the shown methods S is a conditional-logit observation: ``P(choose
    m | S) = exp(s_m) / sum_{k in S} exp(s_k)`` (Plackett-Luce top-1; Bradley-Terry when
    ``|S| = 2``), with ``s_reference = 0``. The order in which S was shown does not enter.

    Engines (both ``statsmodels`` maximum likelihood; no hand-written optimiser):

    - ``poisson`` (the decision, fast): the votes are counted per distinct set S and
      method m, and ``count_{S,m} ~ Poisson(exp(a_S + s_m))`` is fitted as a GLM with one
      nuisance intercept per set; its MLE and Fisher-information standard errors of
      ``s`` equal the conditional logit's (the Poisson-multinomial equivalence), at the
      cost of a handful of rows instead of one row per vote;
    - ``conditional_logit``: ``statsmodels.discrete.conditional_models.ConditionalLogit``
      on one group per vote (slow: its score loops over the votes in Python).

    Args:
        votes: rows in the voting CSV's schema.
        reference: the method fixed at 0 (default: the lowest win rate, so that the other
            strengths are positive and the figure reads left to right).
        alpha: level of the per-method Wald intervals.
        engine: ``poisson`` or ``conditional_logit``.

    Returns:
        one row per method sorted by strength: ``method, log_strength, se, low, high,
        rank`` (1 = strongest); the reference has ``se = 0`` and a zero-width interval.

    Raises:
        RharmInputError: missing columns, no votes, an unknown reference or engine, or a
            method that was never (or always) chosen (its MLE is infinite).
    """
    _check_votes(votes)
    summary = vote_summary(votes)
    methods = list(summary["method"])
    bad = summary[(summary["chosen"] == 0) | (summary["chosen"] == summary["shown"])]
    if len(bad):
        raise RharmInputError(
            f"methods never or always chosen have no finite strength: {list(bad['method'])}"
        )
    if reference is None:
        reference = str(summary.sort_values("win_rate")["method"].iloc[0])
    if reference not in methods:
        raise RharmInputError(f"reference {reference!r} is not among the methods {methods}")
    free = [m for m in methods if m != reference]
    col = {m: j for j, m in enumerate(free)}
    sets = [tuple(sorted(split_shown(x))) for x in votes["shown"]]
    if engine == "poisson":
        distinct = sorted(set(sets))
        counts = Counter(zip(sets, votes["choice"], strict=True))
        rows, y = [], []
        for si, st in enumerate(distinct):
            for m in st:
                x = np.zeros(len(distinct) + len(free))
                x[si] = 1.0
                if m in col:
                    x[len(distinct) + col[m]] = 1.0
                rows.append(x)
                y.append(counts.get((st, m), 0))
        with warnings.catch_warnings():
            # a single set (multi mode) makes the GLM saturated: statsmodels warns of
            # "perfect prediction"; the strengths are identified (never/always-chosen
            # methods were refused above)
            warnings.simplefilter("ignore", PerfectSeparationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sm.GLM(np.asarray(y, float), np.asarray(rows), family=sm.families.Poisson()).fit()
        offset = len(distinct)
    elif engine == "conditional_logit":
        endog, exog, groups = [], [], []
        for g, (st, choice) in enumerate(zip(sets, votes["choice"], strict=True)):
            for m in st:
                x = np.zeros(len(free))
                if m in col:
                    x[col[m]] = 1.0
                exog.append(x)
                endog.append(1.0 if m == choice else 0.0)
                groups.append(g)
        res = ConditionalLogit(np.asarray(endog), np.asarray(exog), groups=np.asarray(groups)).fit(
            disp=False
        )
        offset = 0
    else:
        raise RharmInputError(f"unknown engine {engine!r}; use 'poisson' or 'conditional_logit'")
    params, bse = np.asarray(res.params), np.asarray(res.bse)
    ci = np.asarray(res.conf_int(alpha=alpha))
    out = [{"method": reference, "log_strength": 0.0, "se": 0.0, "low": 0.0, "high": 0.0}]
    for m, j in col.items():
        k = offset + j
        out.append(
            {
                "method": m,
                "log_strength": float(params[k]),
                "se": float(bse[k]),
                "low": float(ci[k, 0]),
                "high": float(ci[k, 1]),
            }
        )
    df = pd.DataFrame(out).sort_values("log_strength", ascending=False, ignore_index=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df
