"""Case 8: the machine's time zone is not UTC. The same input written under TZ=UTC, America/New_York,
Asia/Kolkata (+05:30) and Australia/Lord_Howe (+10:30/+11, a half-hour DST shift) gives a lake that is
byte for byte the same (every data.parquet and _manifest.json), and `marketlake sql` prints the same.

Pluggable: LAKE_BUILDERS maps a name to the command that fills a lake at a given root. Besides the writer
itself, a full `marketlake ingest` (Binance 1m from the local Data Vision and Polygon 1d from moto, the
sources and dates in a marketlake.toml) is one entry: its lake, raw cache included, must come out the
same in every zone too. The local servers are started once for the module (`upstreams`); the builders'
subprocesses find them through UPSTREAM_ENV.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.binance_server import csv_bytes, kline_line, klines, serve
from tests.faults import lake_files, marketlake_argv, python_argv, raw_files, run, subprocess_env
from tests.s3_server import BUCKET, daily_key, day_file, ns, running_s3

pytestmark = pytest.mark.integration

ZONES = ["America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]

# Builds tables the way ingestors do, from vendor-shaped values (epoch milliseconds, ISO text with an
# offset, plain dates), with partitions from ingest.common.bar_period. Bars sit on both sides of a UTC
# month end that is another day or month in New York or Kolkata, and across Lord Howe's DST change.
WRITER_BUILD = """
import datetime as dt, sys
import pyarrow as pa
import lake
from ingest.common import bar_period, interval_delta
from lake.schemas import UTC_TS
from lake.writer import LakeWriter
from ingest.sessions import land

root = sys.argv[1]
MS = [
    1706743800000,  # 2024-01-31 23:30 UTC: Feb 1 in Kolkata and Lord Howe
    1706745600000,  # 2024-02-01 00:00 UTC: still Jan 31 in New York
    1706752800000,  # 2024-02-01 02:00 UTC
    1712413800000,  # 2024-04-06 14:30 UTC: 01:30 Lord Howe, half an hour before its DST ends
    1712415600000,  # 2024-04-06 15:00 UTC: the repeated half hour in Lord Howe
]
def bars_for(interval, stamps):
    step = interval_delta(interval)
    ts = [dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC) for ms in stamps]
    closes = [100.0 + i for i in range(len(ts))]
    return ts, pa.table({"asset_class": ["crypto"] * len(ts), "ts": pa.array(ts, type=UTC_TS),
                         "available_at": pa.array([t + step for t in ts], type=UTC_TS), "open": closes,
                         "high": closes, "low": closes, "close": closes, "volume": [1.5] * len(ts),
                         "trades": pa.array([3] * len(ts), type=pa.int64()), "source_file": ["k.zip"] * len(ts)})

with land(root) as w:
    for interval in ("1m", "1d"):
        ts, table = bars_for(interval, MS)
        periods = [bar_period(interval, t) for t in ts]
        for period in sorted(set(periods)):
            mask = pa.array([p == period for p in periods])
            w.write(lake.BARS, {"source": "binance", "interval": interval, "symbol": "BTCUSDT", "period": period},
                    table.filter(mask), inputs=[{"file": "k.zip", "sha256": "ab" * 32}])
    published = [dt.datetime.fromisoformat(s).astimezone(dt.UTC)
                 for s in ("2024-01-31T19:15:00-05:00", "2024-02-01T05:10:00+05:30")]
    w.write(lake.NEWS, {"symbol": "AAPL"}, pa.table({
        "id": ["n1", "n2"], "published_at": pa.array(published, type=UTC_TS),
        "ingested_at": pa.array([dt.datetime(2024, 2, 1, 12, tzinfo=dt.UTC)] * 2, type=UTC_TS),
        "title": ["a", "b"], "summary": [None, "s"], "publisher": ["p", "p"], "url": [None, None],
        "sentiment": [0.1, -0.2], "source": ["yahoo", "yahoo"]}))
    w.write(lake.BARS_REJECTED, {"source": "binance", "period": "2024-02"}, pa.table({
        "symbol": ["BTCUSDT"], "interval": ["1m"], "source_file": ["k.zip"], "line_number": pa.array([2], pa.int64()),
        "raw": ["1706745600000,x"], "ts": pa.array([dt.datetime(2024, 2, 1, tzinfo=dt.UTC)], type=UTC_TS),
        "open": [None], "high": [None], "low": [None], "close": [None], "volume": [None], "reason": ["bad open"]}))
    w.write(lake.RUNS, {"period": "2024-02"}, pa.table({
        "run_id": ["r1"], "kind": ["train"], "started_at": pa.array([dt.datetime(2024, 2, 1, 0, 30, tzinfo=dt.UTC)], type=UTC_TS),
        "finished_at": pa.array([None], type=UTC_TS), "config": ["{}"], "data_snapshot": [lake.snapshot_hash(root)],
        "metrics": [None], "status": ["running"], "code_version": [None], "run_dir": [None],
        "parent_run_id": [None], "data_files": [None]}))
print("built")
"""

LakeBuilder = Callable[[Path], list[str]]
LAKE_BUILDERS: dict[str, LakeBuilder] = {
    "writer": lambda root: python_argv(WRITER_BUILD, str(root)),
    # every source of the marketlake.toml that `upstreams` writes, as `make ingest` runs them
    "ingest": lambda root: marketlake_argv("--lake", str(root), "ingest"),
}

UPSTREAM_ENV: dict[str, str] = {}
"""Where the builders' subprocesses find the local servers and the config (filled by `upstreams`)."""

UPSTREAM_CONFIG = """
[data]
start = 2024-01-31
end = 2024-02-01

[binance]
symbols = ["BTCUSDT"]
interval = "1m"

[polygon]
symbols = ["AAPL", "SPY"]
interval = "1d"
"""


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Data Vision and moto, holding days on both sides of a UTC month end that New York still calls
    January 31 (and Kolkata February 1): Binance minute bars in the first and last two hours of each
    UTC day, Polygon day bars stamped 16:00 New York; a bad row of each goes to bars_rejected."""
    from zoneinfo import ZoneInfo

    config = tmp_path_factory.mktemp("upstreams") / "marketlake.toml"
    config.write_text(UPSTREAM_CONFIG)
    for dv in serve():
        with running_s3() as s3:
            for day in (dt.date(2024, 1, 31), dt.date(2024, 2, 1)):
                t0 = dt.datetime.combine(day, dt.time(), dt.UTC)
                rows = [*klines(t0, 120), *klines(t0 + dt.timedelta(hours=22), 120)]
                bad = kline_line(klines(t0 + dt.timedelta(hours=12), 1)[0]).replace(",", ",x", 1)
                dv.publish("BTCUSDT", "1m", day, "daily", csv=csv_bytes(rows) + (bad + "\n").encode())
            client = s3.client()
            client.create_bucket(Bucket=BUCKET)
            for k, day in enumerate((dt.date(2024, 1, 31), dt.date(2024, 2, 1))):
                close = ns(dt.datetime.combine(day, dt.time(16), ZoneInfo("America/New_York")))
                body = day_file(
                    [("AAPL", 5_000_000 + k, 184.5, 185.25 + k, 186.5, 183.75, close, 60_000),
                     ("SPY", 7_000_000, 482.1, 483.2, 484.3, 481.9, close, 90_000),
                     ("SPY", 1, 1, 1, 1, 1, str(close)[:17], 1)]
                )  # fmt: skip
                client.put_object(Bucket=BUCKET, Key=daily_key(day), Body=body)
            UPSTREAM_ENV.update(
                MARKETLAKE_CONFIG=str(config),
                BINANCE_BASE_URL=dv.base_url,
                POLYGON_S3_ENDPOINT=s3.endpoint,
                POLYGON_S3_ACCESS_KEY="test-access",
                POLYGON_S3_SECRET_KEY="test-secret",
            )
            try:
                yield
            finally:
                UPSTREAM_ENV.clear()


QUERIES = [
    # bars and news in one query: instants, their UTC day and hour, formatted text, truncation
    "SELECT 'bar' AS kind, symbol, interval AS detail, ts, available_at, ts::DATE AS day, hour(ts) AS h, "
    "strftime(ts, '%Y-%m-%d %H:%M %Z') AS s, date_trunc('day', ts) AS d FROM bars "
    "UNION ALL SELECT 'news', symbol, id, published_at, ingested_at, published_at::DATE, hour(published_at), "
    "strftime(published_at, '%Y-%m-%d %H:%M %Z'), date_trunc('day', published_at) FROM news ORDER BY ALL",
    "SELECT period, count(*) AS n, min(ts) AS first FROM lake_bars GROUP BY ALL ORDER BY ALL",
]
FORMATS = ("csv", "json", "table")


def _build(builder: LakeBuilder, root: Path, tz: str) -> None:
    p = run(builder(root), env=subprocess_env(TZ=tz, **UPSTREAM_ENV))
    assert p.returncode == 0, f"TZ={tz}: {p.stderr}"


def _sql_outputs(root: Path, tz: str) -> list[str]:
    out = []
    for q in QUERIES:
        for fmt in FORMATS if q == QUERIES[0] else ("csv",):
            p = run(
                marketlake_argv("--lake", str(root), "sql", q, "--format", fmt),
                env=subprocess_env(TZ=tz, COLUMNS="200"),
            )
            assert p.returncode == 0, f"TZ={tz}: {p.stderr}"
            out.append(p.stdout)
    return out


@pytest.fixture(scope="module")
def utc_lake(tmp_path_factory: pytest.TempPathFactory, upstreams: None) -> dict[str, Path]:
    lakes = {}
    for name, builder in LAKE_BUILDERS.items():
        root = tmp_path_factory.mktemp(f"utc-{name}") / "lake"
        _build(builder, root, "UTC")
        lakes[name] = root
    return lakes


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("builder", list(LAKE_BUILDERS))
def test_the_lake_is_byte_for_byte_the_same_in_any_time_zone(
    tmp_path: Path, utc_lake: dict[str, Path], builder: str, tz: str
) -> None:
    root = tmp_path / "lake"
    _build(LAKE_BUILDERS[builder], root, tz)
    expected, got = lake_files(utc_lake[builder]), lake_files(root)
    assert sorted(got) == sorted(expected), f"TZ={tz}: other partitions"
    different = [k for k in expected if got[k] != expected[k]]
    assert different == [], f"TZ={tz}: these files differ from the UTC build: {different}"
    assert any("period=2024-01" in k for k in got) and any("period=2024-02" in k for k in got)
    expected_raw, got_raw = raw_files(utc_lake[builder]), raw_files(root)
    assert sorted(got_raw) == sorted(expected_raw), f"TZ={tz}: other raw files"
    different = [k for k in expected_raw if got_raw[k] != expected_raw[k]]
    assert different == [], f"TZ={tz}: these raw cache files differ from the UTC build: {different}"
    if builder == "ingest":
        for part in ("source=binance/interval=1m/symbol=BTCUSDT/period=2024-01",
                     "source=binance/interval=1m/symbol=BTCUSDT/period=2024-02",
                     "source=polygon/interval=1d/symbol=AAPL/period=2024",
                     "source=polygon/interval=1d/symbol=SPY/period=2024",
                     "bars_rejected/source=binance/period=2024-01",
                     "bars_rejected/source=polygon/period=2024"):  # fmt: skip
            assert any(part in k and k.endswith("data.parquet") for k in got), f"no {part}"
        assert any(k.endswith(".zip") for k in got_raw) and any(k.endswith(".csv.gz") for k in got_raw)


@pytest.fixture(scope="module")
def utc_sql(utc_lake: dict[str, Path]) -> list[str]:
    out = _sql_outputs(utc_lake["writer"], "UTC")
    assert "2024-01-31 23:30 UTC" in out[0] and "2024-01-31,23" in out[0], out[0]
    return out


@pytest.mark.parametrize("tz", ZONES)
def test_marketlake_sql_prints_the_same_in_any_time_zone(
    utc_lake: dict[str, Path], utc_sql: list[str], tz: str
) -> None:
    assert _sql_outputs(utc_lake["writer"], tz) == utc_sql
