"""A voting widget to run a Table V-style user study on real composites.

Participants see, for each composite, the results of several methods side by side in a
shuffled, unlabelled order (``multi`` mode, as in the paper's Fig. 3) or two of them
(``pairwise`` mode: a two-alternative choice, which ranks methods with fewer
assumptions about how people choose among many), and click the one that looks most
natural. The pieces, each testable without a browser:

- :func:`make_trials`: the deterministic plan of one participant (image order, the
  methods' order per image; in pairwise mode the pairs cycle evenly over the images).
  The plan depends only on the seed and the participant's id, so a participant who comes
  back gets the same plan and resumes where they stopped.
- :class:`VoteStore`: the votes CSV (:data:`VOTE_COLUMNS`). Every vote is one line
  appended with a single ``write`` on a file opened in append mode, under an exclusive
  ``flock`` and followed by ``fsync``; a vote for a (participant, mode, trial) that is
  already in the file is refused, so a double click, a second browser tab or a re-run
  cell never counts twice.
- :class:`VotingSession`: one participant's progress over the plan.
- :class:`VotingWidget`: the ipywidgets front end: a participant field, start/resume,
  the images with one button each (``1`` ... ``n``), keyboard shortcuts (digits; in
  pairwise mode also the left/right arrow keys, with the mouse over the images) through
  ``ipyevents``, and a progress bar.
  The buttons of a group are created for that group and bound to its trial, so a click
  that arrives after the next group is shown is ignored.

Images are ``(H,W,3)`` uint8 sRGB (the reader vocabulary); a *method* is a callable
``f(sample) -> (H,W,3) uint8`` such as :func:`rharm_lib.evaluate.resolve_method`'s.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
from ipyevents import Event
from PIL import Image

from ..errors import RharmInputError
from ..evaluate import resolve_method
from .outputs import runs_root
from .sources import resize_long_side

__all__ = [
    "VOTE_COLUMNS",
    "MODES",
    "Trial",
    "split_shown",
    "make_trials",
    "default_votes_path",
    "dataset_names",
    "study_methods",
    "VoteStore",
    "VotingSession",
    "VotingWidget",
]

#: the votes CSV's columns: who, which mode, which trial of their plan, which image, the
#: methods in the order shown (``a|b|c``, left to right), the chosen method, its 1-based
#: position, the UTC time of the vote and the response time since the group appeared
VOTE_COLUMNS = (
    "participant",
    "mode",
    "trial",
    "image",
    "shown",
    "choice",
    "position",
    "time_utc",
    "response_ms",
)

#: ``multi``: every method at once (the paper's design); ``pairwise``: two at a time
MODES = ("multi", "pairwise")


@dataclass(frozen=True)
class Trial:
    """One group shown to a participant: ``trial`` (0-based), ``image``, ``shown`` (left to right)."""

    trial: int
    image: str
    shown: tuple[str, ...]


def split_shown(shown: str) -> tuple[str, ...]:
    """``"a|b|c"`` -> ``("a", "b", "c")`` (the CSV's ``shown`` column)."""
    return tuple(str(shown).split("|"))


def _participant_rng(seed: int, participant: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, the plan must not change
    return np.random.default_rng([int(seed), zlib.crc32(participant.encode("utf-8"))])


def make_trials(
    images: Sequence[str],
    methods: Sequence[str],
    mode: str = "multi",
    seed: int = 0,
    participant: str = "",
) -> list[Trial]:
    """The plan of one participant: every image once, in a shuffled order.

    Args:
        images: image names (each appears in exactly one trial).
        methods: method names (>= 2, distinct).
        mode: ``multi`` (all methods, shuffled per image) or ``pairwise`` (one pair per
            image; the pairs are all ``M(M-1)/2`` combinations, shuffled and cycled, so
            each pair appears ``len(images) / #pairs`` times up to one; left/right
            shuffled).
        seed: the study's seed.
        participant: the participant's id (a different id gets a different plan).

    Returns:
        ``len(images)`` :class:`Trial` records, ``trial`` = 0, 1, ...
    """
    if mode not in MODES:
        raise RharmInputError(f"unknown voting mode {mode!r}; use one of {MODES}")
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise RharmInputError(f"expected >= 2 distinct methods, got {list(methods)}")
    if any("|" in m for m in methods):
        raise RharmInputError(f"method names may not contain '|': {list(methods)}")
    if not images:
        raise RharmInputError("no images to vote on")
    rng = _participant_rng(seed, participant)
    order = rng.permutation(len(images))
    pairs = list(combinations(range(len(methods)), 2))
    pair_order: list[int] = []
    trials = []
    for t, i in enumerate(order):
        if mode == "multi":
            shown = [methods[j] for j in rng.permutation(len(methods))]
        else:
            if not pair_order:
                pair_order = list(rng.permutation(len(pairs)))
            a, b = pairs[pair_order.pop()]
            shown = [methods[a], methods[b]] if rng.random() < 0.5 else [methods[b], methods[a]]
        trials.append(Trial(t, str(images[int(i)]), tuple(shown)))
    return trials


def default_votes_path() -> Path:
    """``$RHARM_VOTES`` or ``<runs_root()>/user_study/votes.csv``
    (:func:`rharm_lib.study.outputs.runs_root`: the repository's git-ignored ``runs/``
    unless the study's root is elsewhere)."""
    env = os.environ.get("RHARM_VOTES")
    return Path(env) if env else runs_root() / "user_study" / "votes.csv"


def dataset_names(dataset: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sample names of a reader without decoding pixels where the reader allows it.

    ``RealCompositeDataset``/``IHDDataset`` keep ``items`` whose first field is the name;
    any other sequence of samples is read for its ``name`` keys.
    """
    items = getattr(dataset, "items", None)
    if items and isinstance(items[0], tuple) and isinstance(items[0][0], str):
        return [it[0] for it in items]
    return [str(dataset[i]["name"]) for i in range(len(dataset))]


def study_methods(
    checkpoint: str | os.PathLike | None = None, device: str = "cpu"
) -> dict[str, Callable[[Mapping[str, Any]], np.ndarray]]:
    """The methods a study can compare: ``composite``, ``reinhard``, ``histmatch`` and,
    when ``checkpoint`` is given, ``ours`` (that model, :func:`rharm_lib.evaluate.resolve_method`).
    """
    methods = {m: resolve_method(m) for m in ("composite", "reinhard", "histmatch")}
    if checkpoint is not None:
        methods["ours"] = resolve_method("checkpoint", checkpoint=str(checkpoint), device=device)
    return methods


class VoteStore:
    """The votes CSV: atomic, de-duplicated appends (see the module docstring).

    Args:
        path: the CSV (created with a header on the first vote; its folder too).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> pd.DataFrame:
        """All votes (an empty frame with :data:`VOTE_COLUMNS` when there is no file)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return pd.DataFrame(columns=list(VOTE_COLUMNS))
        df = pd.read_csv(self.path, dtype={"participant": str, "image": str})
        if tuple(df.columns) != VOTE_COLUMNS:
            raise RharmInputError(
                f"{self.path}: columns {list(df.columns)}, expected {list(VOTE_COLUMNS)}"
            )
        return df

    def done(self, participant: str, mode: str) -> set[int]:
        """The trial numbers ``participant`` already voted on in ``mode``."""
        df = self.read()
        sel = df[(df["participant"] == participant) & (df["mode"] == mode)]
        return {int(t) for t in sel["trial"]}

    @staticmethod
    def _line(row: Mapping[str, Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([row[c] for c in VOTE_COLUMNS])
        return buf.getvalue()

    def append(self, row: Mapping[str, Any]) -> bool:
        """Append one vote unless its (participant, mode, trial) is already recorded.

        Returns:
            ``True`` when written, ``False`` for a duplicate (nothing written).
        """
        missing = [c for c in VOTE_COLUMNS if c not in row]
        if missing:
            raise RharmInputError(f"vote lacks {missing}: {dict(row)}")
        key = (str(row["participant"]), str(row["mode"]), int(row["trial"]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(fd, closefd=False, newline="") as f:
                f.seek(0)
                rows = list(csv.reader(f))
            for r in rows[1:]:
                if len(r) >= 3 and (r[0], r[1], r[2]) == (key[0], key[1], str(key[2])):
                    return False
            text = ("" if rows else ",".join(VOTE_COLUMNS) + "\n") + self._line(row)
            os.write(fd, text.encode("utf-8"))  # one write of a whole line, O_APPEND
            os.fsync(fd)
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class VotingSession:
    """One participant's way through their plan (no widgets; the widget drives it).

    Args:
        store: the :class:`VoteStore`.
        images: image names.
        methods: method names.
        participant: the participant's id (non-empty, no ``,``).
        mode: ``multi`` or ``pairwise``.
        seed: the study's seed (with ``participant``, fixes the plan).
        clock: seconds since some origin (``time.monotonic``; tests pass a fake).
    """

    def __init__(
        self,
        store: VoteStore,
        images: Sequence[str],
        methods: Sequence[str],
        participant: str,
        mode: str = "multi",
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        participant = participant.strip()
        if not participant or any(ch in participant for ch in ",\n\"'"):
            raise RharmInputError(f"participant id {participant!r}: use letters and digits")
        self.store, self.participant, self.mode, self.clock = store, participant, mode, clock
        self.trials = make_trials(images, methods, mode, seed, participant)
        self.done = store.done(participant, mode)
        self._shown_at = clock()

    @property
    def total(self) -> int:
        """Trials in the plan."""
        return len(self.trials)

    @property
    def n_done(self) -> int:
        """Trials already voted on (including earlier sessions)."""
        return len(self.done)

    @property
    def current(self) -> Trial | None:
        """The first trial without a vote, or ``None`` when the plan is finished."""
        for t in self.trials:
            if t.trial not in self.done:
                return t
        return None

    def mark_shown(self) -> None:
        """Start the response-time clock of the current trial."""
        self._shown_at = self.clock()

    def vote(self, position: int, trial: int | None = None) -> bool:
        """Record the choice of the image at 1-based ``position`` in the current trial.

        Args:
            position: 1 ... number of images shown.
            trial: the trial the click belongs to; a click for another trial (a stale
                button) is ignored.

        Returns:
            ``True`` when a vote was written; ``False`` when ignored (finished, stale,
            out of range, or already recorded by someone else, e.g. another tab).
        """
        cur = self.current
        if cur is None or (trial is not None and trial != cur.trial):
            return False
        if not 1 <= position <= len(cur.shown):
            return False
        row = {
            "participant": self.participant,
            "mode": self.mode,
            "trial": cur.trial,
            "image": cur.image,
            "shown": "|".join(cur.shown),
            "choice": cur.shown[position - 1],
            "position": position,
            "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "response_ms": int(round(1000 * (self.clock() - self._shown_at))),
        }
        written = self.store.append(row)
        # written or not, this trial is done (a duplicate means it was recorded elsewhere)
        self.done.add(cur.trial)
        self.mark_shown()
        return written


def _png(image: np.ndarray, long_side: int) -> bytes:
    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    scale = long_side / max(img.size)
    if scale < 1:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


#: pairwise keys besides the digits
_ARROWS = {"ArrowLeft": 1, "ArrowRight": 2}


class VotingWidget:
    """The ipywidgets voting front end (display ``widget.ui``).

    Args:
        dataset: samples with ``composite``, ``mask`` and ``name`` (e.g.
            :class:`rharm_lib.data.real.RealCompositeDataset`).
        methods: ``{name: f(sample) -> (H,W,3) uint8}``; names are never shown.
        store: the :class:`VoteStore` (default :func:`default_votes_path`).
        mode: the initial mode (``multi`` or ``pairwise``; a toggle before starting).
        seed: the study's seed.
        display_size: long side of each shown image in pixels.
        work_size: when set, each composite and mask are first resized to this long side
            (:func:`rharm_lib.study.sources.resize_long_side`) and the methods run there
            (faster; the images are shown at ``display_size`` anyway); ``None``: native.
        min_response_ms: keys pressed sooner than this after a group appears are ignored
            (a key held down must not vote for the next group too).
        clock: as in :class:`VotingSession`.
    """

    def __init__(
        self,
        dataset: Sequence[Mapping[str, Any]],
        methods: Mapping[str, Callable[[Mapping[str, Any]], np.ndarray]],
        store: VoteStore | None = None,
        mode: str = "multi",
        seed: int = 0,
        display_size: int = 320,
        work_size: int | None = None,
        min_response_ms: int = 250,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in MODES:
            raise RharmInputError(f"unknown voting mode {mode!r}; use one of {MODES}")
        if len(methods) < 2:
            raise RharmInputError(f"expected >= 2 methods, got {list(methods)}")
        self.dataset, self.methods = dataset, dict(methods)
        self.names = dataset_names(dataset)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.store = store or VoteStore(default_votes_path())
        self.seed, self.display_size, self.clock = seed, display_size, clock
        self.work_size = work_size
        self.min_response_ms = min_response_ms
        self.session: VotingSession | None = None
        self.shown_png: list[bytes] = []  # what the current group shows (tests read it)

        self.participant = W.Text(description="participant", placeholder="e.g. p01")
        self.mode = W.ToggleButtons(options=list(MODES), value=mode, description="mode")
        self.start_button = W.Button(description="start / resume", button_style="primary")
        self.start_button.on_click(lambda _b: self.start(self.participant.value))
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = W.HTML(
            "Enter your participant id and press <b>start / resume</b>.",
            layout=W.Layout(min_height="1.5em"),
        )
        self.group = W.HBox([], layout=W.Layout(flex_flow="row wrap"))
        help_ = W.HTML(
            "Click the button under the image that looks most natural, or, with the mouse "
            "over the images, press its number (pairwise mode: also ← / →). Images are in "
            "a random order and not labelled."
        )
        self.ui = W.VBox(
            [
                W.HBox([self.participant, self.mode, self.start_button]),
                help_,
                W.HBox([self.progress, self.status]),
                self.group,
            ]
        )
        self.ui.add_class("rharm-voting")
        # keys over the images only (the participant field stays typable); the default
        # action is prevented so that JupyterLab's command-mode shortcuts ("1" = heading)
        # do not act on the notebook while voting
        self._keys = Event(
            source=self.group, watched_events=["keydown"], prevent_default_action=True
        )
        self._keys.on_dom_event(lambda ev: self.key(str(ev.get("key", ""))))

    # --- actions (called by the buttons and keys; tests call them directly) --------------

    def start(self, participant: str) -> None:
        """Start or resume ``participant`` in the selected mode and show their next group."""
        try:
            self.session = VotingSession(
                self.store,
                self.names,
                list(self.methods),
                participant,
                self.mode.value,
                self.seed,
                self.clock,
            )
        except RharmInputError as exc:
            self.status.value = f"<span style='color:#b00'>{exc}</span>"
            return
        self.mode.disabled = True
        self.participant.disabled = True
        self.progress.max = self.session.total
        resumed = self.session.n_done
        self._show()
        if resumed and self.session.current is not None:
            self.status.value += f" (resumed: {resumed} already recorded)"

    def click(self, position: int, trial: int | None = None) -> bool:
        """Vote for the image at ``position`` (1-based) of ``trial`` (default: current)."""
        if self.session is None:
            return False
        before = self.session.current
        written = self.session.vote(position, trial)
        if self.session.current != before:  # voted here, or recorded by another tab
            self._show()
        return written

    def key(self, key: str) -> bool:
        """A key press: ``1`` ... ``9`` (and ← / → in pairwise mode) vote; others do nothing."""
        s = self.session
        if s is None or s.current is None:
            return False
        if 1000 * (self.clock() - s._shown_at) < self.min_response_ms:
            return False
        if key.isdigit():
            position = int(key)
        elif s.mode == "pairwise" and key in _ARROWS:
            position = _ARROWS[key]
        else:
            return False
        return self.click(position, s.current.trial)

    # --- view ----------------------------------------------------------------------------

    def _show(self) -> None:
        s = self.session
        assert s is not None
        self.progress.value = s.n_done
        cur = s.current
        if cur is None:
            self.group.children = []
            self.shown_png = []
            self.status.value = (
                f"<b>All {s.total} groups done</b> for {s.participant} ({s.mode}). Thank you!"
            )
            return
        sample = dict(self.dataset[self._index[cur.image]])
        if self.work_size:
            sample["composite"], sample["mask"] = resize_long_side(
                sample["composite"], sample["mask"], self.work_size
            )
        self.shown_png = [_png(self.methods[m](sample), self.display_size) for m in cur.shown]
        cells = []
        for pos, png in enumerate(self.shown_png, start=1):
            img = W.Image(
                value=png, format="png", layout=W.Layout(max_width=f"{self.display_size}px")
            )
            btn = W.Button(description=str(pos), layout=W.Layout(width="100%"))
            btn.add_class(f"rharm-vote-{pos}")
            btn.on_click(lambda _b, p=pos, t=cur.trial: self.click(p, t))
            cells.append(
                W.VBox([img, btn], layout=W.Layout(align_items="center", margin="0 8px 8px 0"))
            )
        self.group.children = cells
        self.status.value = f"{s.participant}: group {s.n_done + 1} of {s.total}"
        s.mark_shown()
