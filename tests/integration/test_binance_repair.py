"""Re-ingest trusts the file, not only the manifest (issue 14, item 2): a bars partition whose data.parquet
is missing or was overwritten is rebuilt from the raw cache on the next run, and a damaged file elsewhere
in the lake is named, never a traceback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import binance
from ingest.http import RetryPolicy
from tests.binance_server import DataVision, klines, serve

pytestmark = pytest.mark.integration
UTC = dt.UTC
PART = "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-01/data.parquet"


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(
            binance,
            "RETRY",
            RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=2),
        )
        yield server


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def run_ingest(runner: CliRunner, root: Path, symbols: str = "BTCUSDT") -> tuple[int, str]:
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(root),
            "ingest",
            "binance",
            "--symbols",
            symbols,
            "--start",
            "2024-01-30",
            "--end",
            "2024-01-31",
        ],
    )
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.output


def count(root: Path, symbol: str = "BTCUSDT") -> int:
    con = lake.connect(root, read_only=True)
    n = con.execute("SELECT count(*) FROM bars WHERE symbol = ?", [symbol]).fetchone()
    assert n is not None
    return int(n[0])


@pytest.fixture
def published(dv: DataVision) -> DataVision:
    dv.publish("BTCUSDT", "1m", dt.date(2024, 1, 30), "daily", klines(at("2024-01-30T00:00"), 30))
    dv.publish("BTCUSDT", "1m", dt.date(2024, 1, 31), "daily", klines(at("2024-01-31T00:00"), 30))
    return dv


def test_a_deleted_partition_file_is_rebuilt_from_the_raw_cache(
    published: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    assert count(lake_root) == 60
    (lake_root / PART).unlink()
    published.clear_log()

    code, out = run_ingest(runner, lake_root)

    assert code == 0, out
    assert count(lake_root) == 60
    assert lake.verify(lake_root) == []
    assert published.requests(".zip") == []  # from the raw cache, nothing downloaded again
    assert "rebuild" in out, out


def test_an_overwritten_partition_file_is_rebuilt_and_never_a_traceback(
    published: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    # what `COPY (SELECT 1 AS x) TO '<lake>/.../data.parquet'` did before `marketlake sql` refused it
    pq.write_table(pa.table({"x": [1]}), lake_root / PART)
    assert lake.verify(lake_root) != []

    code, out = run_ingest(runner, lake_root)

    assert code == 0, out
    assert "Traceback" not in out and "IndexError" not in out
    assert count(lake_root) == 60
    assert lake.verify(lake_root) == []


def test_a_damaged_file_of_another_symbol_does_not_stop_an_ingest_and_verify_names_it(
    published: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    published.publish("ETHUSDT", "1m", dt.date(2024, 1, 30), "daily", klines(at("2024-01-30T00:00"), 5))
    published.publish("ETHUSDT", "1m", dt.date(2024, 1, 31), "daily", klines(at("2024-01-31T00:00"), 5))
    assert run_ingest(runner, lake_root, "ETHUSDT")[0] == 0
    eth = lake_root / PART.replace("BTCUSDT", "ETHUSDT")
    pq.write_table(pa.table({"x": [1]}), eth)

    code, out = run_ingest(runner, lake_root, "BTCUSDT")

    assert code == 0, out
    assert "Traceback" not in out
    assert count(lake_root) == 60
    # the BTC ingest reads only what it lands (its calendar update too, ingest.sessions), so the ETH file
    # is found by the command that reads every file, which names it with the repair
    r = runner.invoke(cli, ["--lake", str(lake_root), "verify"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert str(eth) in r.output and "marketlake verify" in r.output and "re-run the ingest" in r.output
    assert run_ingest(runner, lake_root, "ETHUSDT")[0] == 0  # which rebuilds it from the raw cache
    assert count(lake_root, "ETHUSDT") == 10 and lake.verify(lake_root) == []


def test_a_republished_archive_keeps_the_bars_it_replaced_in_bar_revisions(
    published: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    # Binance republishes Jan 31 with other prices and the last five minutes gone
    published.publish(
        "BTCUSDT", "1m", dt.date(2024, 1, 31), "daily", klines(at("2024-01-31T00:00"), 25, base=43000.0)
    )
    assert run_ingest(runner, lake_root)[0] == 0

    con = lake.connect(lake_root, read_only=True)
    revs = con.sql(
        "SELECT ts, version, source_file, replaced_by, first_seen, last_seen FROM bar_revisions ORDER BY ts"
    ).fetchall()
    current = con.sql("SELECT count(*), min(close) FROM bars WHERE ts >= '2024-01-31'").fetchone()
    assert len(revs) == 30  # all of Jan 31's old bars: 25 changed, 5 dropped
    assert {r[2] for r in revs} == {"data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-31.zip"}
    assert {r[3] for r in revs} == {r[2] for r in revs}  # replaced by the new version of that file
    assert all(r[1] == 1 and r[4] is not None and r[4] <= r[5] for r in revs)
    assert current is not None and current[0] == 25 and current[1] >= 42000.0


def _truncate(path: Path, rows: int) -> None:
    """What a crash of another tool or a bad copy leaves: the partition's file with its first rows only."""
    pq.write_table(pq.read_table(path).slice(0, rows), path)


def _day_bars(root: Path, day: str) -> int:
    con = lake.connect(root, read_only=True)
    n = con.execute(
        "SELECT count(*) FROM bars WHERE symbol = 'BTCUSDT' AND CAST(ts AS DATE) = CAST(? AS DATE)", [day]
    ).fetchone()
    assert n is not None
    return int(n[0])


def test_a_damaged_partition_gets_back_a_cached_day_that_is_gone_upstream(
    published: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    jan31 = "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-31.zip"
    published.remove(jan31)
    published.remove(jan31 + ".CHECKSUM")  # Data Vision took the day down: a 404 from now on
    assert (lake_root / "raw/binance" / jan31.lstrip("/")).is_file()
    _truncate(lake_root / PART, 10)

    code, out = run_ingest(runner, lake_root)

    assert code == 0, out
    assert "rebuil" in out, out
    assert _day_bars(lake_root, "2024-01-30") == 30
    assert _day_bars(lake_root, "2024-01-31") == 30  # landed again from the verified zip in the raw cache
    assert lake.verify(lake_root) == []
    assert run_ingest(runner, lake_root)[0] == 0  # and it stays: the next run sees only the 404
    assert count(lake_root) == 60


def test_a_damaged_partition_gets_back_the_cached_days_the_run_does_not_cover(
    published: DataVision, lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    _truncate(lake_root / PART, 10)
    published.clear_log()

    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT",
                            "--start", "2024-01-30", "--end", "2024-01-30"])  # fmt: skip

    assert r.exit_code == 0, r.output
    assert _day_bars(lake_root, "2024-01-31") == 30 and count(lake_root) == 60
    assert published.requests(".zip") == []  # from the raw cache, nothing downloaded
    assert lake.verify(lake_root) == []
