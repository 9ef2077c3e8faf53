"""An account wiped out in the evaluation is said: the report names the policy, the symbol and when, in its
notes (table and `-q` alike) and its JSON, since the figures after a ruin are a closed account's."""

from __future__ import annotations

import datetime as dt

import numpy as np

from rl.evaluate import EvalReport, judge_all, render_table, report_notes, ruins_of
from rl.market import EnvConfig
from tests.unit.test_walk import random_data


def _report(judged: object, symbols: list[str]) -> EvalReport:
    j = judged
    return EvalReport(
        run_id="eval-x",
        parent_run_id=None,
        period="test",
        interval="1m",
        symbols=symbols,
        bounds=("2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00"),
        bars_per_year=j.bars_per_year,  # type: ignore[attr-defined]
        metrics=j.metrics,  # type: ignore[attr-defined]
        sharpe_ci=j.sharpe_ci,  # type: ignore[attr-defined]
        seed=0,
        env={},
        ruins=ruins_of(j.walks),  # type: ignore[attr-defined]
    )


def test_a_short_wiped_out_is_named_in_the_notes_and_the_json() -> None:
    data = random_data(3000, seed=5, segments=3, symbols=2, jumps=0.01)
    config = EnvConfig(window=4, allow_short=True)
    judged = judge_all(data, config, lambda obs: np.full(len(obs), 2, np.int64), resamples=400)
    ruins = ruins_of(judged.walks)
    # the always-short agent (and the random policy, short a third of the time); buy-and-hold and flat never
    assert "agent" in ruins and not {"buy_and_hold", "flat"} & set(ruins), ruins
    walk = judged.walks["agent"]
    for sym, at in ruins["agent"].items():
        i = data.symbols.index(sym)
        hit = np.flatnonzero(walk.ruined & (walk.symbol_idx == i))
        assert len(hit) == 1  # the first ruin only: the symbol is flat after it
        assert dt.datetime.fromisoformat(at) == dt.datetime.fromtimestamp(walk.ts[hit[0]] / 1e6, dt.UTC)
    report = _report(judged, list(data.symbols))
    notes = [n for n in report_notes(report) if "wiped out" in n]
    assert len(notes) == len(ruins), notes  # one line per policy ruined
    assert notes[0].startswith("agent was wiped out")
    assert all(f"{s} at {t}" in notes[0] for s, t in ruins["agent"].items()), notes
    assert "wiped out" in " ".join(render_table(report).split())
    assert report.to_json()["ruins"] == ruins


def test_no_ruin_no_note() -> None:
    data = random_data(2000, seed=5, segments=2, symbols=2)
    judged = judge_all(data, EnvConfig(window=4), lambda obs: np.ones(len(obs), np.int64), resamples=400)
    report = _report(judged, list(data.symbols))
    assert report.ruins == {} and not any("wiped out" in n for n in report_notes(report))
    assert report.to_json()["ruins"] == {}
