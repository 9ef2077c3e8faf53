"""notebooks/explore.ipynb runs top to bottom (nbclient, a real kernel) on a lake built from the shipped
samples through `ingest csv`, with and without a recorded run, so that it cannot rot."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ingest import news, samples
from ingest.common import RunContext
from lake.config import Settings
from rl.runlog import RunRecord, write_run

pytestmark = pytest.mark.integration

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "explore.ipynb"


@pytest.fixture(scope="module")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's data: the shipped daily and minute samples, plus a few headlines for SPY."""
    root = tmp_path_factory.mktemp("demo") / "lake"
    ctx = RunContext(root, Settings(), quiet=True)
    assert all(s.ok for s in samples.run(ctx, ["SPY", "AAPL", "SPX"]))
    archive = root.parent / "headlines.csv"
    archive.write_text(
        "symbol,published_at,title\n"
        "SPY,2017-03-01T15:00:00Z,Stocks rally to record highs as investors cheer strong earnings\n"
        "SPY,2017-06-09T18:30:00Z,Tech selloff drags markets lower amid fears of a bubble\n"
        "SPY,2017-11-02T14:00:00Z,Markets steady ahead of the jobs report\n",
        encoding="utf-8",
    )
    assert news.run_file(ctx, archive, None, None).ok
    return root


def _run(lake_root: Path) -> list[Any]:
    """The notebook run on `lake_root`; it finds run folders as the command line does (runs/ beside it)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel imports this checkout's code, whether or not it is the one installed in the venv
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {"LAKE_ROOT": str(lake_root), "PYTHONPATH": path}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return list(nb.cells)


def _text(cells: list[Any]) -> str:
    out = []
    for c in cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", ""))
            out.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(out)


def _images(cells: list[Any]) -> int:
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))


def test_the_notebook_runs_on_the_demo_lake_without_a_run(sample_lake: Path, tmp_path: Path) -> None:
    cells = _run(sample_lake)
    text = _text(cells)
    assert "symbol SPY, interval 1d" in text
    assert "yahoofinance-SPY-20080101-20180101.csv" in text and "above open" in text  # the quarantined rows
    assert "3 article(s)" in text
    assert "2 day(s) with missing bars" in text  # the two quarantined SPY days
    assert "no run in this lake yet" in text
    assert _images(cells) >= 1  # the price / sentiment / gaps figure


def test_the_notebook_reads_the_newest_finished_training_runs_metrics_and_equity_curve(
    sample_lake: Path, tmp_path: Path
) -> None:
    """The newest finished training run and its evaluation, never a newer run that failed (nor a newer
    evaluation of another run)."""
    runs = tmp_path / "runs"
    folder = runs / "run-0001"
    folder.mkdir(parents=True)
    (folder / "equity.csv").write_text("ts,agent,buy_and_hold\n2017-08-01,1.0,1.0\n2017-08-02,1.01,0.99\n")
    (runs / "run-0003").mkdir()
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lake_root = tmp_path / "lake"
    shutil.copytree(sample_lake, lake_root)

    def record(run_id: str, kind: str, status: str, minutes: int, metrics: dict[str, Any], **kw: Any) -> None:
        at = started + dt.timedelta(minutes=minutes)
        write_run(
            lake_root,
            RunRecord(
                run_id=run_id,
                kind=kind,
                started_at=at,
                finished_at=at + dt.timedelta(minutes=3),
                config={"symbols": ["SPY"]},
                data_snapshot="sha256-test",
                metrics=metrics,
                status=status,
                **kw,
            ),
        )

    record("run-0001", "train", "finished", 0, {"best_score": 0.5}, run_dir=str(folder))
    record(
        "eval-0001",
        "evaluate",
        "finished",
        4,
        {"agent": {"total_return": 0.0123}},
        run_dir=str(folder),
        parent_run_id="run-0001",
    )
    record("run-0003", "train", "failed", 10, {"error": "RuntimeError: boom"}, run_dir=str(runs / "run-0003"))
    cells = _run(lake_root)
    text = _text(cells)
    assert "newest finished training run run-0001" in text and "1 evaluation(s)" in text
    assert "metrics of its evaluate run eval-0001" in text
    assert "0.0123" in text
    assert "equity.csv" in text and "run-0003" not in text.split("run folder:")[1].split("\n")[0]
    assert _images(cells) >= 2  # the price figure and the equity curve


def test_the_notebook_says_when_no_training_run_finished(sample_lake: Path, tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    shutil.copytree(sample_lake, lake_root)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    write_run(
        lake_root,
        RunRecord(
            run_id="run-0009",
            kind="train",
            started_at=at,
            finished_at=at,
            config={},
            data_snapshot="",
            metrics={"error": "MarketlakeError: nothing to train on"},
            status="failed",
        ),
    )
    text = _text(_run(lake_root))
    assert "no finished training run among the 1 run(s)" in text
    assert "no run folder to read an equity curve from: no finished training run" in text


def test_the_notebook_shows_the_test_evaluation_and_reads_its_per_step_file(
    sample_lake: Path, tmp_path: Path
) -> None:
    """The newest TEST evaluation of the run is shown (a newer validation one chose the model: it is not out
    of sample), and its equity curve and costs come from its per-step Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    runs = tmp_path / "runs"
    folder = runs / "run-0001"
    (folder / "evaluations").mkdir(parents=True)
    ts = [dt.datetime(2017, 8, d, 13, 30, tzinfo=dt.UTC) for d in (1, 2)]
    steps = pa.table(
        {
            "ts": pa.array(ts * 2, pa.timestamp("us", tz="UTC")),
            "symbol": ["overall"] * 4,
            "policy": ["agent", "agent", "buy_and_hold", "buy_and_hold"],
            "segment": pa.array([None] * 4, pa.int64()),
            "position": [1.0, 1.0, 1.0, 1.0],
            "fill_price": pa.array([None] * 4, pa.float64()),
            "log_return": [0.01, 0.02, -0.01, 0.0],
            "cost": [0.0011, 0.0, 0.0011, 0.0],
            "turnover": [1.0, 0.0, 1.0, 0.0],
            "equity": [1.01, 1.03, 0.99, 0.99],
        }
    )
    own = folder / "evaluations" / "eval-test-test.parquet"
    pq.write_table(steps, own)
    lake_root = tmp_path / "lake"
    shutil.copytree(sample_lake, lake_root)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for run_id, kind, minutes, metrics, parent in (
        ("run-0001", "train", 0, {"best_score": 0.5}, None),
        ("eval-test", "evaluate", 4, {"period": "test", "files": {"steps": str(own)}}, "run-0001"),
        ("eval-val", "evaluate", 8, {"period": "validation"}, "run-0001"),
    ):
        write_run(
            lake_root,
            RunRecord(
                run_id=run_id,
                kind=kind,
                started_at=at + dt.timedelta(minutes=minutes),
                finished_at=at + dt.timedelta(minutes=minutes + 1),
                config={},
                data_snapshot="",
                metrics=metrics,
                status="finished",
                run_dir=str(folder),
                parent_run_id=parent,
            ),
        )
    text = _text(_run(lake_root))
    assert "2 evaluation(s)" in text and "metrics of its evaluate run eval-test (test period)" in text, text
    assert f"per-step file {own}: 4 rows" in text and "costs paid" in text, text
    assert "0.0011" in text
