"""The readings of eqs. 10–11 (which patches are the query, the positive and the
negatives of L_HCL, and what the embedding sees), as one registry :data:`READINGS`.

The paper's Section III-B is ambiguous on three points, so each defensible combination is
a named :class:`Reading` (selected by ``LossConfig.reading``):

- *which vector is the query*: eq. 10 writes two of them, ``v^bg`` (scored against the
  positive ``P_i``) and ``v^fg`` (scored against the negatives ``N_n``), without
  defining them;
- *where the negatives come from*: "we denote the foreground of harmonized image H as
  negative" (the output) — or the composite, the appearance to move away from;
- *what is compared*: "contrasting pixel-to-pixel information is impractical in
  comparing style information" and the loss should be "invariant to ... textures and
  structures" — raw pixels through the MLP, or per-patch style statistics.

A *patch set* is ``(image, region)``: ``image`` one of ``pred`` (the output H),
``target`` (the ground truth Ĥ), ``composite`` (the input I); ``region`` ``fg`` (cut at
the K foreground locations ``S^fg``, eq. 8) or ``bg`` (at the K background locations
``S^bg``, eq. 9). Every reading computes, for k = 1..K,

``ℓ_k = −log( e^{a_k·p_k/τ} / (e^{a_k·p_k/τ} + Σ_n e^{q_k·n_n/τ}) )``   (eqs. 10–11)

with ``a_k`` the *anchor* (``v^bg``), ``q_k`` the *query* (``v^fg``), ``p_k`` the positive
``P_k`` and ``n_n`` the negatives ``N_n``; the usual InfoNCE has ``a = q``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reading", "READINGS", "DEFAULT_READING", "FEATURES", "NEGATIVES_READING"]

#: what the shared MLP embeds: the flattened patch, or its per-channel (mean, std)
FEATURES = ("pixels", "style")


@dataclass(frozen=True)
class Reading:
    """One reading of eqs. 10–11 (see the module docstring).

    Attributes:
        query: patch set of ``q_k`` (``v^fg``), e.g. ``("pred", "fg")``.
        positive: patch set of ``p_k`` (``P_k``), paired with query k by slot.
        negative: patch set of the negatives ``N_n`` (all K slots).
        anchor: patch set of ``a_k`` (``v^bg``, the numerator's vector); ``None``: the
            query (InfoNCE).
        exclude_self: drop ``N_k`` from query k's sum (when the negatives are the queries
            themselves, ``q_k·N_k = 1`` would be a copy of the query).
        feature: ``pixels`` (the flattened ``3·P·P`` patch) or ``style`` (per-channel mean
            and standard deviation over the patch's in-region pixels: 6 numbers).
        sentence: the sentence of the paper it rests on.
    """

    query: tuple[str, str] = ("pred", "fg")
    positive: tuple[str, str] = ("target", "bg")
    negative: tuple[str, str] = ("pred", "fg")
    anchor: tuple[str, str] | None = None
    exclude_self: bool = True
    feature: str = "pixels"
    sentence: str = ""

    def patch_sets(self) -> tuple[tuple[str, str], ...]:
        """The distinct patch sets this reading cuts (query first)."""
        sets = [self.query, self.positive, self.negative] + ([self.anchor] if self.anchor else [])
        return tuple(dict.fromkeys(sets))

    def in_dim(self, patch: int) -> int:
        """Input width of the shared MLP for ``P = patch``."""
        return 3 * patch * patch if self.feature == "pixels" else 6


_NEG = "we denote the foreground of harmonized image H as negative and the background of ground-truth image Ĥ as positive"

#: reading name -> :class:`Reading`
READINGS: dict[str, Reading] = {
    # (a) today's: the output's fg patches are the queries AND the negatives
    "pred_negatives": Reading(negative=("pred", "fg"), exclude_self=True, sentence=_NEG),
    # (b) the negatives are the composite's fg patches (the un-harmonized appearance),
    # all K of them, including the query's own location (the hardest negative)
    "composite_negatives": Reading(
        negative=("composite", "fg"),
        exclude_self=False,
        sentence="the harmonization model would rather choose to generate background styles "
        "than foreground styles",
    ),
    # (c) (b) compared through style statistics: per-patch channel mean/std, which are
    # invariant to the patch's texture and structure
    "style": Reading(
        negative=("composite", "fg"),
        exclude_self=False,
        feature="style",
        sentence="learn and focus on the appearance consistency between the two domains ... "
        "while being invariant to the necessarily different features including textures "
        "and structures",
    ),
    # (d) eq. 10 literally: v^bg = the output's background patch at the positive's
    # location (scored against P_i), v^fg = the output's foreground patch (scored against
    # every N_n, n = 1..K, its own included)
    "two_query": Reading(
        anchor=("pred", "bg"),
        negative=("pred", "fg"),
        exclude_self=False,
        sentence="Given the background query feature map v^bg with its positive set {P_i} and "
        "the foreground query feature map as v^fg with its negative set {N_i}",
    ),
    # (e) contrastive regularisation of ref. [41] (Wu et al., dehazing): anchor = output,
    # positive = ground truth at the same location, negatives = the degraded input
    "regularisation": Reading(
        positive=("target", "fg"),
        negative=("composite", "fg"),
        exclude_self=False,
        sentence="[41] and [42] have successfully attempted to embed the low-resolution and "
        "high-resolution samples into latent representations to obtain maximal mutual "
        "information",
    ),
}

#: the reading used when ``LossConfig`` names none (the decision and its evidence:
#: :class:`rharm_lib.losses.config.LossConfig`, ``reading``)
DEFAULT_READING = "style"

#: the legacy switch ``LossConfig.negatives`` -> the reading it selects
NEGATIVES_READING: dict[str, str] = {"pred": "pred_negatives", "composite": "composite_negatives"}
