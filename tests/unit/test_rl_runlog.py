"""Run records in the lake's `runs`: statuses, listing newest first, old files, and the data snapshot."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake
from ingest.sessions import land
from lake.config import Settings
from lake.errors import MarketlakeError
from rl import runlog
from rl.mirror import mirror_run, outbox_dir
from tests.conftest import bars_table

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _part(symbol: str, period: str = "2024-01") -> dict[str, str]:
    return {"source": "binance", "interval": "1m", "symbol": symbol, "period": period}


def _closes(n: int, start: float = 100.0, step: float = 0.01) -> list[float]:
    return [round(start + step * ((i * 7) % 13 - 6), 4) for i in range(n)]


def test_recorded_run_is_running_then_finished_with_metrics(lake_root: Path) -> None:
    config = {"symbols": ["BTCUSDT"], "seed": 0, "when": dt.date(2024, 1, 1)}
    with runlog.recorded_run(lake_root, "train", config, run_dir=lake_root / "runs" / "x") as run:
        during = runlog.list_runs(lake_root)
        run.metrics = {"sharpe": 1.5}
        run.data_snapshot = "abc"
    assert [(r["run_id"], r["status"]) for r in during] == [(run.run_id, "running")]
    (row,) = runlog.list_runs(lake_root)
    assert row["status"] == "finished" and row["kind"] == "train"
    assert row["metrics"] == {"sharpe": 1.5} and row["data_snapshot"] == "abc"
    assert row["config"] == {"symbols": ["BTCUSDT"], "seed": 0, "when": "2024-01-01"}
    assert row["finished_at"] >= row["started_at"]
    assert row["run_dir"].endswith("runs/x")
    assert row["code_version"].startswith(("git:", "marketlake ", "unknown"))


def test_failed_and_interrupted_runs_are_recorded_as_such(lake_root: Path) -> None:
    with pytest.raises(RuntimeError), runlog.recorded_run(lake_root, "train", {}, run_id="r-failed"):
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), runlog.recorded_run(lake_root, "evaluate", {}, run_id="r-int"):
        raise KeyboardInterrupt
    status = {r["run_id"]: r["status"] for r in runlog.list_runs(lake_root)}
    assert status == {"r-failed": "failed", "r-int": "interrupted"}


def test_runs_are_listed_newest_first_and_by_kind(lake_root: Path) -> None:
    for i, kind in enumerate(["train", "evaluate", "train"]):
        rec = runlog.start_run(
            lake_root, kind, {"i": i}, run_id=f"r{i}", started_at=T0 + dt.timedelta(days=40 * i)
        )
        runlog.finish_run(lake_root, rec)
    assert [r["run_id"] for r in runlog.list_runs(lake_root)] == ["r2", "r1", "r0"]
    assert [r["run_id"] for r in runlog.list_runs(lake_root, kind="train")] == ["r2", "r0"]
    assert [r["run_id"] for r in runlog.list_runs(lake_root, limit=1)] == ["r2"]
    # one file per month of started_at
    periods = sorted(p.name for p in (lake_root / "datasets" / "runs").iterdir())
    assert periods == ["period=2024-01", "period=2024-02", "period=2024-03", "period=__empty__"]
    with pytest.raises(MarketlakeError, match="no run 'nope'"):
        runlog.get_run(lake_root, "nope")


def test_render_runs_as_table_json_csv(lake_root: Path) -> None:
    rec = runlog.start_run(lake_root, "evaluate", {"a": 1}, run_id="r-eval", parent_run_id="r-train")
    rec.metrics = {
        "overall": {"agent": {"total_return": 0.0123, "sharpe": 1.25}},
        "sharpe_ci": {"low": -0.5, "high": 2.0},
    }
    runlog.finish_run(lake_root, rec)
    runs = runlog.list_runs(lake_root)
    table = runlog.render_runs(runs, "table")
    assert "r-eval" in table and "r-train" in table and "sharpe +1.250" in table
    assert "edge CI [-0.50, +2.00]" in table
    (obj,) = json.loads(runlog.render_runs(runs, "json"))
    assert obj["metrics"]["overall"]["agent"]["sharpe"] == 1.25 and obj["parent_run_id"] == "r-train"
    lines = runlog.render_runs(runs, "csv").splitlines()
    assert lines[0].startswith("run_id,kind,status") and lines[1].startswith("r-eval,evaluate,finished")


def test_bad_run_values_are_refused(lake_root: Path) -> None:
    with pytest.raises(MarketlakeError, match="kind 'play'"):
        runlog.start_run(lake_root, "play", {})
    with pytest.raises(MarketlakeError, match="invalid run id"):
        runlog.start_run(lake_root, "train", {}, run_id="../escape")


def test_a_runs_file_of_the_old_schema_still_reads_and_merges(lake_root: Path) -> None:
    old = pa.table(
        {
            "run_id": ["old"],
            "kind": ["train"],
            "started_at": pa.array([T0], type=lake.RUNS.field("started_at").type),
            "finished_at": pa.array([None], type=lake.RUNS.field("started_at").type),
            "config": ["{}"],
            "data_snapshot": ["h"],
            "metrics": pa.array([None], type=pa.string()),
            "status": ["finished"],
        }
    )
    with land(lake_root):
        pass
    target = lake_root / "datasets" / "runs" / "period=2024-01" / "data.parquet"
    target.parent.mkdir(parents=True)
    pq.write_table(old, target)
    assert [r["run_id"] for r in runlog.list_runs(lake_root)] == ["old"]
    rec = runlog.start_run(lake_root, "train", {}, run_id="new", started_at=T0 + dt.timedelta(hours=1))
    runlog.finish_run(lake_root, rec)
    rows = {r["run_id"]: r for r in runlog.list_runs(lake_root)}
    assert set(rows) == {"old", "new"} and rows["old"]["code_version"] is None


def test_mirror_is_off_without_supabase_settings(lake_root: Path) -> None:
    rec = runlog.start_run(lake_root, "train", {}, run_id="r1")
    said: list[str] = []
    assert mirror_run(lake_root, rec, say=said.append) == "off"
    assert said == [] and not outbox_dir(lake_root).exists()


# --- the data snapshot ----------------------------------------------------------------------------------


def _lake_with_two_symbols(root: Path) -> None:
    with land(root) as w:
        w.write(lake.BARS, _part("BTCUSDT"), bars_table(T0, _closes(600)))
        w.write(lake.BARS, _part("ETHUSDT"), bars_table(T0, _closes(600, 50.0)))
        w.write(lake.BARS, _part("BTCUSDT", "2023-06"), bars_table(T0.replace(year=2023, month=6), [1.0]))


def test_snapshot_changes_when_a_file_the_run_read_changes_and_not_otherwise(lake_root: Path) -> None:
    _lake_with_two_symbols(lake_root)
    start, end = T0, T0 + dt.timedelta(hours=10)

    def snap() -> runlog.DataSnapshot:
        files = runlog.lake_files_for(lake_root, ["BTCUSDT"], "1m", start, end)
        return runlog.snapshot_of_files(lake_root, files)

    first = snap()
    bars = [f for f in first.files if f["path"].startswith("bars/")]
    assert [f["path"] for f in bars] == [
        "bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-01/data.parquet"
    ]
    assert bars[0]["rows"] == 600 and snap().hash == first.hash
    # another symbol's file changes, and a far-away partition of the same symbol: not read, same hash
    with land(lake_root) as w:
        w.write(lake.BARS, _part("ETHUSDT"), bars_table(T0, _closes(600, 51.0)))
        w.write(lake.BARS, _part("BTCUSDT", "2023-06"), bars_table(T0.replace(year=2023, month=6), [2.0]))
    assert snap().hash == first.hash
    # rewriting the same bars changes nothing
    with land(lake_root) as w:
        w.write(lake.BARS, _part("BTCUSDT"), bars_table(T0, _closes(600)))
    assert snap().hash == first.hash
    # one bar of a file the run read changes: another hash
    with land(lake_root) as w:
        w.write(lake.BARS, _part("BTCUSDT"), bars_table(T0 + dt.timedelta(minutes=5), [123.0]))
    assert snap().hash != first.hash


def test_snapshot_covers_context_symbols_news_and_the_lookback(lake_root: Path) -> None:
    _lake_with_two_symbols(lake_root)
    with land(lake_root) as w:
        w.write(lake.BARS, _part("SPY"), bars_table(T0, [400.0, 401.0], asset_class="etf"))
    feb = dt.datetime(2024, 2, 1, 1, tzinfo=dt.UTC)
    files = runlog.lake_files_for(lake_root, ["BTCUSDT"], "1m", feb, feb + dt.timedelta(hours=1))
    names = {f.relative_to(lake_root / "datasets").as_posix() for f in files}
    # January's file is read through the feature windows that reach back before February's start
    assert "bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-01/data.parquet" in names
    assert "bars/source=binance/interval=1m/symbol=SPY/period=2024-01/data.parquet" in names
    assert not any("ETHUSDT" in n for n in names)
    assert any(n.startswith("trading_sessions/") for n in names)


def test_snapshot_for_run_includes_the_period_bounds(lake_root: Path) -> None:
    _lake_with_two_symbols(lake_root)
    settings = Settings()
    one = runlog.snapshot_for_run(lake_root, settings, ["ETHUSDT"], "1m", ["train", "test"])
    assert one.hash == runlog.snapshot_for_run(lake_root, settings, ["ETHUSDT"], "1m", ["train", "test"]).hash
    assert one.hash != runlog.snapshot_for_run(lake_root, settings, ["ETHUSDT"], "1m", ["test"]).hash
    # a later bar of another symbol moves the periods of the whole lake: the run's data changed
    with land(lake_root) as w:
        w.write(lake.BARS, _part("BTCUSDT"), bars_table(T0 + dt.timedelta(hours=20), [1.0]))
    assert one.hash != runlog.snapshot_for_run(lake_root, settings, ["ETHUSDT"], "1m", ["train", "test"]).hash


def test_snapshot_refuses_files_outside_the_lake(lake_root: Path, tmp_path: Path) -> None:
    stray = tmp_path / "x.parquet"
    stray.write_bytes(b"x")
    with pytest.raises(MarketlakeError, match="not a file of the lake"):
        runlog.snapshot_of_files(lake_root, [stray])


def test_the_table_shows_a_failed_runs_error_shortened(lake_root: Path) -> None:
    long = "MarketlakeError: nothing to train on: " + "x" * 300
    for run_id, error in (("r-short", "RuntimeError: the learner broke"), ("r-long", long)):
        rec = runlog.start_run(lake_root, "train", {}, run_id=run_id)
        rec.metrics = {"error": error}
        runlog.finish_run(lake_root, rec, "failed")
    runs = runlog.list_runs(lake_root)
    table = runlog.render_runs(runs, "table")  # fits its line: rich does not wrap it
    assert "error: RuntimeError: the learner broke" in table, table
    assert "error: MarketlakeError: nothing to train on: xxx" in table and "x" * 300 not in table, table
    assert "…" in table
    (long_row,) = [r for r in json.loads(runlog.render_runs(runs, "json")) if r["run_id"] == "r-long"]
    assert long_row["metrics"]["error"] == long  # the whole error stays in the record


def test_the_table_shows_a_finished_training_runs_best_validation_score(lake_root: Path) -> None:
    rec = runlog.start_run(lake_root, "train", {}, run_id="r-done")
    rec.metrics = {"iterations": 40, "env_steps": 1000, "best_iteration": 30, "best_score": 0.0123456}
    runlog.finish_run(lake_root, rec, "finished")
    table = runlog.render_runs(runlog.list_runs(lake_root), "table")
    assert "best validation score +0.01235 at iteration 30 of 40" in table, table


def test_an_evaluations_result_names_its_period_and_buy_and_hold_in_every_format(lake_root: Path) -> None:
    """A validation evaluation (the period that chose the model) is marked not out of sample, and the agent's
    return and Sharpe stand beside buy-and-hold's on the same bars, in the table, the CSV and the JSON."""
    overall = {
        "agent": {"total_return": 0.4382, "sharpe": 1.135},
        "buy_and_hold": {"total_return": 0.5268, "sharpe": 1.104},
    }
    for run_id, period, day in (("r-test", "test", 1), ("r-val", "validation", 2)):
        rec = runlog.start_run(
            lake_root, "evaluate", {}, run_id=run_id, started_at=T0 + dt.timedelta(days=day)
        )
        rec.metrics = {"period": period, "overall": overall, "sharpe_ci": {"low": -0.48, "high": 0.64}}
        runlog.finish_run(lake_root, rec)
    runs = runlog.list_runs(lake_root)
    table = " ".join(runlog.render_runs(runs, "table").split())
    for text in (
        "test: agent return +43.82%, sharpe +1.135; buy & hold return +52.68%, sharpe +1.104",
        "validation (not out of sample): agent return +43.82%",
    ):
        assert text in table.replace("│ ", "").replace(" │", ""), table
    by_id = {r["run_id"]: r for r in json.loads(runlog.render_runs(runs, "json"))}
    assert by_id["r-val"]["result"].startswith("validation (not out of sample): agent return +43.82%")
    assert "buy & hold return +52.68%, sharpe +1.104" in by_id["r-test"]["result"]
    rows = list(csv.DictReader(io.StringIO(runlog.render_runs(runs, "csv"))))
    assert [r["result"] for r in rows] == [by_id["r-val"]["result"], by_id["r-test"]["result"]]


def test_the_table_shows_an_error_naming_a_section_as_it_is(lake_root: Path) -> None:
    """rich read "[train]" in a failed run's error as markup and dropped it."""
    rec = runlog.start_run(lake_root, "train", {}, run_id="r-section")
    rec.metrics = {"error": "ConfigError: [train] seed: must be at least 0"}
    runlog.finish_run(lake_root, rec, "failed")
    table = runlog.render_runs(runlog.list_runs(lake_root), "table")
    assert "error: ConfigError: [train] seed: must be at least 0" in table, table


def test_an_evaluation_recorded_before_metrics_version_2_is_marked(lake_root: Path) -> None:
    """Sharpe from log returns (version 1) and from simple returns (2) side by side read as comparable."""
    overall = {
        "agent": {"total_return": 0.1, "sharpe": 1.0},
        "buy_and_hold": {"total_return": 0.2, "sharpe": 1.2},
    }
    for run_id, extra in (("r-old", {}), ("r-new", {"metrics_version": 2})):
        rec = runlog.start_run(lake_root, "evaluate", {}, run_id=run_id)
        rec.metrics = {"period": "test", "overall": overall, **extra}
        runlog.finish_run(lake_root, rec, "finished")
    rows = {r["run_id"]: r for r in json.loads(runlog.render_runs(runlog.list_runs(lake_root), "json"))}
    assert rows["r-old"]["result"].endswith("; metrics v1: log-return Sharpe, not comparable with later rows")
    assert "metrics v1" not in rows["r-new"]["result"], rows["r-new"]["result"]


def test_an_evaluation_of_a_checkpoint_its_run_may_not_stand_by_is_marked(lake_root: Path) -> None:
    """Two test evaluations of one training run: one judged its iteration-10 best while it still ran, one its
    final best (105). `runs` marks the first (its run was running, and 10 is no longer the run's best), in
    every format and also when only evaluations are listed; the second and an older row without the keys are
    not marked."""
    rec = runlog.start_run(lake_root, "train", {}, run_id="r-parent", started_at=T0)
    rec.metrics = {"iterations": 150, "best_iteration": 105, "best_score": 0.01}
    runlog.finish_run(lake_root, rec, "finished")
    overall = {"agent": {"total_return": 0.1221, "sharpe": 1.0}, "buy_and_hold": {"total_return": 0.2}}
    judged = {
        "r-early": ({"file": "checkpoints/best.pt", "iteration": 10, "sha256": "a" * 64}, "running"),
        "r-stale": ({"file": "checkpoints/best.pt", "iteration": 10, "sha256": "a" * 64}, "finished"),
        "r-final": ({"file": "checkpoints/best.pt", "iteration": 105, "sha256": "b" * 64}, "finished"),
        "r-legacy": (None, None),
    }
    for day, (run_id, (ckpt, status)) in enumerate(judged.items(), start=1):
        ev = runlog.start_run(
            lake_root,
            "evaluate",
            {},
            run_id=run_id,
            parent_run_id="r-parent",
            started_at=T0 + dt.timedelta(days=day),
        )
        ev.metrics = {"period": "test", "overall": overall, "metrics_version": 2}
        if ckpt is not None:
            ev.metrics |= {"checkpoint": ckpt, "parent_status": status}
        runlog.finish_run(lake_root, ev)
    every = runlog.list_runs(lake_root)
    only = runlog.list_runs(lake_root, kind="evaluate")
    for listed in (
        json.loads(runlog.render_runs(every, "json")),
        json.loads(runlog.render_runs(only, "json", parents=runlog.list_runs(lake_root, kind="train"))),
    ):
        got = {r["run_id"]: r["result"] for r in listed}
        assert got["r-early"].startswith(
            "[judged iteration 10 of a running run; not the run's best (iteration 105)]; test: agent"
        ), got
        assert got["r-stale"].startswith("[judged iteration 10, not the run's best (105)]; test: agent"), got
        assert got["r-final"].startswith("test: agent") and got["r-legacy"].startswith("test: agent"), got
    rows = {r["run_id"]: r["result"] for r in csv.DictReader(io.StringIO(runlog.render_runs(every, "csv")))}
    assert rows["r-early"].startswith("[judged iteration 10 of a running run"), rows
    table = " ".join(runlog.render_runs(every, "table").split())
    assert "[judged iteration 10, not the run's best (105)]" in table, table


def test_a_sharpe_from_too_few_bars_is_marked_as_evaluate_marks_it(lake_root: Path) -> None:
    """A Sharpe of -610 annualised from 16 bars sat unmarked among other runs' (`evaluate` showed it with
    `*` and a note): the listing marks it `*` in every format, and the table says why below it."""
    few = {
        "agent": {"total_return": -0.0084, "sharpe": -610.593, "too_few_to_annualise": True},
        "buy_and_hold": {"total_return": 0.0786, "sharpe": 18.84, "too_few_to_annualise": False},
    }
    rec = runlog.start_run(lake_root, "evaluate", {}, run_id="r-few")
    rec.metrics = {"period": "test", "overall": few, "metrics_version": 2}
    runlog.finish_run(lake_root, rec, "finished")
    runs = runlog.list_runs(lake_root)
    (row,) = json.loads(runlog.render_runs(runs, "json"))
    assert (
        row["result"]
        == "test: agent return -0.84%, sharpe -610.593*; buy & hold return +7.86%, sharpe +18.840"
    )
    (csv_row,) = csv.DictReader(io.StringIO(runlog.render_runs(runs, "csv")))
    assert csv_row["result"] == row["result"]
    table = runlog.render_runs(runs, "table")
    assert "sharpe -610.593*" in " ".join(table.split()), table
    from rl.metrics import TOO_FEW_NOTE

    # the legend, last (the terminal may wrap it): the rule, under a month of bars or 30 non-zero returns
    assert " ".join(table.split()).endswith(" ".join(TOO_FEW_NOTE.split()))
    assert TOO_FEW_NOTE.startswith("* too few bars for an annualised figure: under a month's worth of bars")


def test_no_legend_under_a_table_with_no_marked_sharpe(lake_root: Path) -> None:
    rec = runlog.start_run(lake_root, "evaluate", {}, run_id="r-many")
    rec.metrics = {"period": "test", "overall": {"agent": {"total_return": 0.1, "sharpe": 1.0}}}
    runlog.finish_run(lake_root, rec, "finished")
    table = runlog.render_runs(runlog.list_runs(lake_root), "table")
    assert "*" not in table and "too few bars" not in table, table


@pytest.mark.parametrize(
    ("ci", "word"),
    [
        # the reviewer's case: a borderline run showed only its interval, which reads as a claim
        ({"low": 0.01, "high": 1.9, "low_band": [-0.02, 0.04], "verdict": "borderline"}, "borderline"),
        ({"low": 0.3, "high": 1.9, "verdict": "better"}, "better"),
        ({"low": -1.9, "high": -0.3, "verdict": "worse"}, "worse"),
        ({"low": -0.5, "high": 2.0, "verdict": "not distinguishable"}, "not distinguishable"),
        # a row from before the verdict was recorded: read from the interval
        ({"low": -0.5, "high": 2.0}, "not distinguishable"),
        ({"low": 0.2, "high": 2.0}, "better"),
    ],
)
def test_the_runs_headline_shows_the_edges_verdict(ci: dict[str, object], word: str) -> None:
    m = {
        "metrics_version": 3,
        "period": "test",
        "overall": {"agent": {"total_return": 0.2, "sharpe": 1.4}},
        "sharpe_ci": ci,
    }
    line = runlog._headline({"metrics": m})
    assert f"edge CI [{ci['low']:+.2f}, {ci['high']:+.2f}] {word}" in line
    assert line.endswith(word)


def test_the_table_says_what_each_run_ran_on(lake_root: Path) -> None:
    """Runs of other settings are told apart in the listing: interval, symbols (a few named, the rest
    counted) and seed, from the training run's settings (ppo.seed) or the evaluation's own."""
    train = {"interval": "1m", "symbols": ["AAPL", "GOOG", "MSFT", "SPY", "QQQ"], "ppo": {"seed": 7}}
    runlog.finish_run(lake_root, runlog.start_run(lake_root, "train", train, run_id="r-train"))
    judged = {"interval": "1d", "symbols": ["AAPL"], "seed": 3, "period": "test"}
    runlog.finish_run(lake_root, runlog.start_run(lake_root, "evaluate", judged, run_id="r-eval"))
    runlog.finish_run(lake_root, runlog.start_run(lake_root, "train", {"overrides": {}}, run_id="r-bare"))
    by_id = {r["run_id"]: r for r in runlog.list_runs(lake_root)}
    assert runlog.run_on(by_id["r-train"]) == "1m, AAPL GOOG MSFT +2, seed 7"
    assert runlog.run_on(by_id["r-eval"]) == "1d, AAPL, seed 3"
    assert runlog.run_on(by_id["r-bare"]) == ""
    table = runlog.render_runs(list(by_id.values()), "table")
    assert "AAPL GOOG MSFT +2" in " ".join(table.split()) and "seed 7" in table, table
