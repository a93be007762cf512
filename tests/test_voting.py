"""Headless tests of the voting widget (rharm_lib.study.voting): the plan, the CSV store
(atomic, de-duplicated appends, also across processes), resuming, and the widget driven
through its buttons' callbacks and key handler."""

from __future__ import annotations

import io
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rharm_lib.errors import RharmInputError
from rharm_lib.study.voting import (
    VOTE_COLUMNS,
    VoteStore,
    VotingSession,
    VotingWidget,
    make_trials,
)

METHODS = ["composite", "reinhard", "histmatch"]
COLOURS = {"composite": (200, 0, 0), "reinhard": (0, 200, 0), "histmatch": (0, 0, 200)}


def _dataset(n=5, size=(24, 32)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        comp = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        mask = np.zeros(size, np.uint8)
        mask[4:12, 4:12] = 1
        out.append({"composite": comp, "mask": mask, "name": f"img{i}", "target": None})
    return out


def _methods():
    # each method paints the whole image in its own colour so the shown PNG names it
    def make(name):
        return lambda s: np.broadcast_to(
            np.asarray(COLOURS[name], np.uint8), s["composite"].shape
        ).copy()

    return {m: make(m) for m in METHODS}


def _method_of(png: bytes) -> str:
    rgb = tuple(int(v) for v in np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[0, 0])
    return {c: m for m, c in COLOURS.items()}[rgb]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plan_is_deterministic_shuffled_and_complete():
    images = [f"i{k}" for k in range(30)]
    a = make_trials(images, METHODS, "multi", seed=1, participant="p1")
    assert a == make_trials(images, METHODS, "multi", seed=1, participant="p1")
    assert sorted(t.image for t in a) == sorted(images)
    assert all(sorted(t.shown) == sorted(METHODS) for t in a)
    assert len({t.shown for t in a}) > 1  # orders differ between groups
    assert [t.image for t in a] != images  # image order shuffled
    b = make_trials(images, METHODS, "multi", seed=1, participant="p2")
    assert [t.image for t in a] != [t.image for t in b]


def test_pairwise_plan_balances_pairs_and_sides():
    images = [f"i{k}" for k in range(60)]
    trials = make_trials(images, METHODS, "pairwise", seed=0, participant="x")
    pairs = pd.Series([tuple(sorted(t.shown)) for t in trials]).value_counts()
    assert len(pairs) == 3 and (pairs == 20).all()
    firsts = pd.Series([t.shown[0] for t in trials]).value_counts()
    assert firsts.min() >= 10  # left/right shuffled, no method always on one side


def test_plan_rejects_bad_input():
    with pytest.raises(RharmInputError, match="mode"):
        make_trials(["a"], METHODS, "triples")
    with pytest.raises(RharmInputError, match="distinct"):
        make_trials(["a"], ["x", "x"])
    with pytest.raises(RharmInputError, match="no images"):
        make_trials([], METHODS)


def _row(pid="p", trial=0, choice="reinhard"):
    return {
        "participant": pid,
        "mode": "multi",
        "trial": trial,
        "image": "img0",
        "shown": "composite|reinhard|histmatch",
        "choice": choice,
        "position": 2,
        "time_utc": "2026-01-01T00:00:00+00:00",
        "response_ms": 1234,
    }


def test_store_appends_once_per_trial(tmp_path):
    store = VoteStore(tmp_path / "sub" / "votes.csv")
    assert store.read().empty
    assert store.append(_row(trial=0))
    assert not store.append(_row(trial=0, choice="composite"))  # double counting refused
    assert store.append(_row(trial=1))
    assert store.append(_row(pid="q", trial=0))
    df = store.read()
    assert list(df.columns) == list(VOTE_COLUMNS) and len(df) == 3
    assert df.loc[0, "choice"] == "reinhard"
    assert store.done("p", "multi") == {0, 1} and store.done("p", "pairwise") == set()
    text = (tmp_path / "sub" / "votes.csv").read_text()
    assert text.count("participant,mode") == 1 and text.endswith("\n")


def _hammer(path, pid, n):
    store = VoteStore(path)
    for t in range(n):
        store.append(_row(pid=pid, trial=t))


def test_store_concurrent_writers_never_duplicate(tmp_path):
    path = tmp_path / "votes.csv"
    ctx = mp.get_context("fork")
    # two processes write the same participant's 40 trials, a third another participant
    procs = [ctx.Process(target=_hammer, args=(path, pid, 40)) for pid in ("a", "a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    df = VoteStore(path).read()
    assert len(df) == 80
    assert not df.duplicated(["participant", "mode", "trial"]).any()


def test_session_resumes_where_it_stopped(tmp_path):
    store = VoteStore(tmp_path / "v.csv")
    images = [f"img{i}" for i in range(5)]
    s1 = VotingSession(store, images, METHODS, "p01", clock=Clock())
    first = s1.current
    assert s1.vote(1) and s1.vote(3)
    s2 = VotingSession(store, images, METHODS, "p01", clock=Clock())
    assert s2.n_done == 2 and s2.current == s1.current and s2.current != first
    assert not s2.vote(1, trial=first.trial)  # a stale click
    assert not s2.vote(9)  # no such position
    with pytest.raises(RharmInputError, match="participant"):
        VotingSession(store, images, METHODS, " ")


def test_widget_click_and_keys_write_rows(tmp_path):
    clock = Clock()
    store = VoteStore(tmp_path / "votes.csv")
    w = VotingWidget(_dataset(), _methods(), store, seed=3, clock=clock)
    w.participant.value = "p07"
    w.start_button.click()
    s = w.session
    assert w.progress.max == 5 and w.progress.value == 0
    trial = s.current
    shown = [_method_of(p) for p in w.shown_png]
    assert tuple(shown) == trial.shown  # images in the plan's (shuffled) order
    clock.t = 2.0
    buttons = [cell.children[1] for cell in w.group.children]
    assert [b.description for b in buttons] == ["1", "2", "3"]  # positions, no names
    buttons[1].click()
    df = store.read()
    assert len(df) == 1
    assert df.loc[0, "choice"] == trial.shown[1] and df.loc[0, "position"] == 2
    assert df.loc[0, "shown"] == "|".join(trial.shown)
    assert df.loc[0, "response_ms"] == 2000
    assert w.progress.value == 1
    buttons[0].click()  # the old group's button after the next group is shown
    assert len(store.read()) == 1
    # keys: too soon after the group appeared -> ignored; then "3" votes
    assert not w.key("3")
    clock.t = 3.0
    nxt = s.current
    assert w.key("3")
    df = store.read()
    assert len(df) == 2 and df.loc[1, "choice"] == nxt.shown[2]
    clock.t = 4.0
    assert not w.key("x") and not w.key("ArrowLeft")  # arrows only in pairwise mode
    for _ in range(3):
        clock.t += 1
        w.key("1")
    assert len(store.read()) == 5 and w.session.current is None
    assert "All 5 groups done" in w.status.value and w.group.children == ()
    assert not w.key("1")


def test_widget_resumes_and_pairwise_arrows(tmp_path):
    clock = Clock()
    store = VoteStore(tmp_path / "votes.csv")
    w = VotingWidget(_dataset(), _methods(), store, clock=clock)
    w.start("p1")
    clock.t = 1
    w.click(1)
    w2 = VotingWidget(_dataset(), _methods(), store, clock=clock)
    w2.start("p1")
    assert w2.progress.value == 1 and "resumed" in w2.status.value
    w3 = VotingWidget(_dataset(), _methods(), store, mode="pairwise", clock=clock)
    w3.start("p1")  # the pairwise plan is separate
    assert w3.progress.value == 0 and len(w3.shown_png) == 2
    trial = w3.session.current
    clock.t = 5
    assert w3.key("ArrowRight")
    df = store.read()
    assert df.iloc[-1]["choice"] == trial.shown[1] and df.iloc[-1]["mode"] == "pairwise"
    w4 = VotingWidget(_dataset(), _methods(), store)
    w4.start("bad,id")
    assert w4.session is None and "participant id" in w4.status.value


def test_widget_moves_on_when_another_tab_recorded_the_group(tmp_path):
    clock = Clock()
    store = VoteStore(tmp_path / "votes.csv")
    a = VotingWidget(_dataset(), _methods(), store, clock=clock)
    b = VotingWidget(_dataset(), _methods(), store, clock=clock)
    a.start("p1")
    b.start("p1")  # the same participant in a second tab
    first = a.session.current
    clock.t = 1
    assert a.click(1, first.trial)
    assert not b.click(2, first.trial)  # refused: already recorded by tab a
    assert b.session.current != first and b.progress.value == 1  # b shows the next group
    df = store.read()
    assert len(df) == 1 and df.loc[0, "position"] == 1
