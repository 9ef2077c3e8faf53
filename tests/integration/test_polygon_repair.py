"""Re-ingest trusts the file, not only the manifest (issue 14, item 2, for Polygon): a bars partition whose
data.parquet is missing or was overwritten is rebuilt from the raw cache on the next run, without a
download, and the run says which partition it rebuilt."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import s3
from ingest.common import replace_file_rows
from ingest.sessions import land
from lake.config import Settings
from lake.schemas import BARS
from tests.s3_server import BUCKET, S3Server, day_file, minute_key, ns, running_s3

pytestmark = pytest.mark.integration
UTC = dt.UTC
D1 = dt.date(2024, 1, 2)
D2 = dt.date(2024, 1, 3)
PART = "datasets/bars/source=polygon/interval=1m/symbol=AAPL/period=2024-01/data.parquet"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_s3() as server:
        yield server


@pytest.fixture
def gets(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A bucket with two minute day files; returns the keys downloaded (GET) by the runs."""
    s3_server.reset()
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    for day, price in ((D1, 185.5), (D2, 184.0)):
        at = dt.datetime.combine(day, dt.time(9, 30), ZoneInfo("America/New_York")).astimezone(UTC)
        body = day_file(
            [
                ("AAPL", 1200, price, price + 0.25, price + 0.5, price - 0.5, ns(at), 31),
                (
                    "AAPL",
                    900,
                    price + 0.25,
                    price,
                    price + 0.5,
                    price - 0.25,
                    ns(at + dt.timedelta(minutes=1)),
                    12,
                ),
                ("MSFT", 999, 370.0, 371.0, 372.0, 369.0, ns(at), 10),
            ]
        )
        client.put_object(Bucket=BUCKET, Key=minute_key(day), Body=body)
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "test-access")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "test-secret")
    got: list[str] = []
    real = s3.download

    def counting(client: Any, settings: s3.S3Settings, key: str, dest: Path) -> dict[str, Any]:
        got.append(key)
        return real(client, settings, key, dest)

    monkeypatch.setattr(s3, "download", counting)
    return got


def run_ingest(runner: CliRunner, root: Path) -> tuple[int, str]:
    r = runner.invoke(
        cli,
        ["--lake", str(root), "ingest", "polygon", "--symbols", "AAPL", "--start", D1.isoformat()]
        + ["--end", D2.isoformat()],
        env={"COLUMNS": "1000"},  # one line per message, however long the lake's path
    )
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.output


def bars(root: Path) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute(
            "SELECT symbol, ts, available_at, open, high, low, close, volume, trades, source_file "
            "FROM lake_bars ORDER BY ts"
        ).fetchall()
    finally:
        con.close()


def _delete(p: Path) -> None:
    p.unlink()


def _garbage_parquet(p: Path) -> None:
    duckdb.execute(f"COPY (SELECT 1 AS x) TO '{p}' (FORMAT parquet)")


def _garbage_bytes(p: Path) -> None:
    p.write_bytes(b"not a parquet file")


@pytest.mark.parametrize("damage", [_delete, _garbage_parquet, _garbage_bytes])
def test_a_damaged_partition_is_rebuilt_from_the_raw_cache(
    gets: list[str], lake_root: Path, runner: CliRunner, damage: Callable[[Path], None]
) -> None:
    code, out = run_ingest(runner, lake_root)
    assert code == 0, out
    before = bars(lake_root)
    assert len(before) == 4 and {b[9] for b in before} == {f"s3://{BUCKET}/{minute_key(d)}" for d in (D1, D2)}
    assert sorted(gets) == sorted([minute_key(D1), minute_key(D2)])
    gets.clear()

    code, out = run_ingest(runner, lake_root)  # nothing damaged: both days skipped
    assert code == 0 and "rebuilding" not in out, out
    assert out.count("skipped") >= 2, out

    part = lake_root / PART
    damage(part)
    code, out = run_ingest(runner, lake_root)
    assert code == 0, out
    assert f"{part} is missing or does not match its manifest: rebuilding AAPL from the raw cache" in out
    assert bars(lake_root) == before  # both days' bars back, the day after the damaged one too
    assert gets == []  # from the raw cache: no download
    assert lake.verify(lake_root) == []

    code, out = run_ingest(runner, lake_root)  # repaired: skipped again
    assert code == 0 and "rebuilding" not in out and "no longer holds" not in out, out
    assert bars(lake_root) == before


def run_days(runner: CliRunner, root: Path, first: dt.date, last: dt.date, symbols: str = "AAPL") -> str:
    r = runner.invoke(
        cli,
        ["--lake", str(root), "ingest", "polygon", "--symbols", symbols, "--interval", "1m"]
        + ["--start", first.isoformat(), "--end", last.isoformat()],
        env={"COLUMNS": "1000"},
    )
    assert r.exit_code == 0, r.output
    return r.output


def test_a_day_re_landed_alone_brings_back_the_other_days_of_its_month_from_the_raw_cache(
    gets: list[str], lake_root: Path, runner: CliRunner
) -> None:
    """After damage, a run over the second day only rebuilt the partition from that day alone: the first
    day's bars were gone, unsaid, until a run covered it. The run lands again, from the raw cache, every
    other day file of the month that it holds as landed, and says so."""
    assert run_ingest(runner, lake_root)[0] == 0
    before = bars(lake_root)
    (lake_root / PART).unlink()
    out = run_days(runner, lake_root, D2, D2)
    assert "rebuilding AAPL from the raw cache" in out, out
    assert "rebuilt AAPL 1m 2024-01 from the raw cache: 1 more day file(s) it had held landed again " in out
    assert bars(lake_root) == before
    assert lake.verify(lake_root) == []
    assert len(gets) == 2  # the first run's downloads only
    code, out = run_ingest(runner, lake_root)  # whole again: both days skipped
    assert code == 0 and "rebuil" not in out and "no longer holds" not in out and "re-landing" not in out, out
    assert bars(lake_root) == before


def test_a_partition_left_short_by_an_earlier_run_gets_its_days_back_on_the_next_run(
    gets: list[str], lake_root: Path, runner: CliRunner
) -> None:
    """A partition rebuilt from one day by an earlier version (its manifest lists that day only, the other
    day's ledger says it fed it): the next run covering that day alone brings the other day back."""
    assert run_ingest(runner, lake_root)[0] == 0
    before = bars(lake_root)
    # as an earlier version left it: the first day's rows dropped from the partition and its manifest
    part = {"source": "polygon", "interval": "1m", "symbol": "AAPL", "period": "2024-01"}
    with land(lake_root) as w:
        replace_file_rows(w, BARS, part, f"s3://{BUCKET}/{minute_key(D1)}", BARS.schema.empty_table(), {})
    assert [b[1].date() for b in bars(lake_root)] == [D2, D2] and lake.verify(lake_root) == []
    out = run_days(runner, lake_root, D2, D2)
    assert "1 more day file(s) it had held landed again (2024-01-02)" in out, out
    assert bars(lake_root) == before
    assert len(gets) == 2


def test_a_day_file_gone_from_the_raw_cache_is_named_not_dropped_unsaid(
    gets: list[str], lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    (lake_root / PART).unlink()
    (lake_root / "raw/polygon" / minute_key(D1)).write_bytes(b"changed")  # no longer what was landed
    out = run_days(runner, lake_root, D2, D2)
    assert [b[1].date() for b in bars(lake_root)] == [D2, D2]
    assert (
        "AAPL 1m 2024-01 lacks 1 day file(s) it had held (2024-01-02): not in the raw cache as landed; they "
        "come back when an ingest covers them"
    ) in out, out
    code, out = run_ingest(runner, lake_root)  # a run covering it downloads it again
    assert code == 0, out
    assert [b[1].date() for b in bars(lake_root)] == [D1, D1, D2, D2]
    assert lake.verify(lake_root) == []


def test_a_ledger_from_before_the_partitions_were_recorded_still_brings_every_day_back(
    gets: list[str], lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    before = bars(lake_root)
    ledgers = sorted((lake_root / "raw/polygon").rglob("*" + ".ingested.json"))
    assert len(ledgers) == 2
    for p in ledgers:  # as an earlier version wrote them: no "fed"
        body = json.loads(p.read_text())
        assert body.pop("fed") == [["AAPL", "2024-01"]]
        p.write_text(json.dumps(body))
    (lake_root / PART).unlink()
    code, out = run_ingest(runner, lake_root)
    assert code == 0, out
    assert bars(lake_root) == before
    assert len(gets) == 2  # the first run's downloads only
    assert all("fed" in json.loads(p.read_text()) for p in ledgers)  # written anew


def test_old_ledgers_without_the_partitions_fed_still_bring_the_month_back_on_a_partial_run(
    gets: list[str], lake_root: Path, runner: CliRunner
) -> None:
    assert run_ingest(runner, lake_root)[0] == 0
    before = bars(lake_root)
    for p in (lake_root / "raw/polygon").rglob("*.ingested.json"):  # as an earlier version wrote them
        body = json.loads(p.read_text())
        body.pop("fed")
        p.write_text(json.dumps(body))
    (lake_root / PART).unlink()
    out = run_days(runner, lake_root, D2, D2)
    assert "1 more day file(s) it had held landed again (2024-01-02)" in out, out
    assert bars(lake_root) == before
    assert len(gets) == 2


def _sp500_day_files() -> dict[dt.date, bytes]:
    """The real S&P 500 minute sample (samples/SP500_NOV2019_IDay.csv, New York times, Nov 5-8 2019) as
    Polygon minute day files of ticker SPX."""
    import csv as csv_module

    sample = Path(__file__).resolve().parents[2] / "samples" / "SP500_NOV2019_IDay.csv"
    ny = ZoneInfo("America/New_York")
    rows: dict[dt.date, list[tuple[Any, ...]]] = {}
    with sample.open(newline="") as f:
        for r in csv_module.DictReader(f):
            at = dt.datetime.strptime(r["Date"], "%m/%d/%Y %H:%M").replace(tzinfo=ny)
            rows.setdefault(at.date(), []).append(
                ("SPX", r["Volume"], r["Open"], r["Close"], r["High"], r["Low"], ns(at.astimezone(UTC)), 0)
            )
    return {d: day_file(r) for d, r in rows.items()}


def test_a_partial_rerun_after_a_damaged_partition_keeps_the_rest_of_the_month(
    s3_server: S3Server, lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's case: SPX 1m 2019-11-05..08 from Polygon, the partition's data.parquet deleted, a run
    over 2019-11-05 alone. It said "rebuilt SPX 1m 2019-11-05 from the raw cache" and the partition held
    Nov 5 only (Nov 6-8, 1,172 bars, gone unsaid). Now every day the raw cache holds comes back, and the run
    says so."""
    s3_server.reset()
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    files = _sp500_day_files()
    assert sorted(files) == [dt.date(2019, 11, d) for d in (5, 6, 7, 8)]
    for day, body in files.items():
        client.put_object(Bucket=BUCKET, Key=minute_key(day), Body=body)
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "test-access")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "test-secret")

    def spx_days() -> dict[dt.date, int]:
        got: dict[dt.date, int] = {}
        for b in bars(lake_root):
            day = b[1].astimezone(ZoneInfo("America/New_York")).date()
            got[day] = got.get(day, 0) + 1
        return got

    run_days(runner, lake_root, dt.date(2019, 11, 5), dt.date(2019, 11, 8), symbols="SPX")
    before = bars(lake_root)
    assert len(before) == 1563 and sum(n for d, n in spx_days().items() if d.day > 5) == 1172
    part = lake_root / "datasets/bars/source=polygon/interval=1m/symbol=SPX/period=2019-11/data.parquet"
    part.unlink()
    out = run_days(runner, lake_root, dt.date(2019, 11, 5), dt.date(2019, 11, 5), symbols="SPX")
    assert "rebuilt SPX 1m 2019-11-05 from the raw cache" in out, out
    assert (
        "rebuilt SPX 1m 2019-11 from the raw cache: 3 more day file(s) it had held landed again "
        "(2019-11-06 .. 2019-11-08)"
    ) in out, out
    assert bars(lake_root) == before
    assert lake.verify(lake_root) == []
