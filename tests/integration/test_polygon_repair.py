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
from lake.config import Settings
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


def test_a_day_re_landed_alone_leaves_the_others_to_their_own_runs(
    gets: list[str], lake_root: Path, runner: CliRunner
) -> None:
    """After damage, a run over the second day only brings that day back; the first day's bars come back
    when a run covers it (the partition's manifest lists only what its file holds meanwhile)."""
    assert run_ingest(runner, lake_root)[0] == 0
    before = bars(lake_root)
    (lake_root / PART).unlink()
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(lake_root),
            "ingest",
            "polygon",
            "--symbols",
            "AAPL",
            "--start",
            D2.isoformat(),
            "--end",
            D2.isoformat(),
        ],
    )
    assert r.exit_code == 0, r.output
    assert [b[1].date() for b in bars(lake_root)] == [D2, D2]
    assert lake.verify(lake_root) == []
    code, out = run_ingest(runner, lake_root)
    assert code == 0, out
    # the partition is intact again but no longer lists the first day's file: that day is landed again
    assert "no longer holds this day's bars: rebuilding AAPL from the raw cache" in out, out
    assert bars(lake_root) == before
    assert len(gets) == 2  # the first run's downloads only


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
