"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lake.schemas import UTC_TS


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's lake, config or secrets."""
    for var in (
        "LAKE_ROOT",
        "MARKETLAKE_CONFIG",
        "POLYGON_S3_ACCESS_KEY",
        "POLYGON_S3_SECRET_KEY",
        "POLYGON_S3_ENDPOINT",
        "POLYGON_S3_BUCKET",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "BINANCE_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def filled_lake(lake_root: Path) -> Path:
    """A lake holding three 1m bars of BTCUSDT from 2024-01-01 00:00 UTC (closes 1, 2, 3)."""
    import lake
    from ingest.sessions import land

    with land(lake_root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), [1.0, 2.0, 3.0]))
    return lake_root


def bars_table(
    start: dt.datetime,
    closes: list[float],
    *,
    interval: dt.timedelta = dt.timedelta(minutes=1),
    asset_class: str = "crypto",
    source_file: str = "test.csv",
    volume: float = 1.0,
) -> pa.Table:
    """A BARS-schema table of consecutive bars whose open is the previous close (tests only)."""
    ts = [start + i * interval for i in range(len(closes))]
    opens = [closes[0], *closes[:-1]]
    return pa.table(
        {
            "asset_class": [asset_class] * len(closes),
            "ts": pa.array(ts, type=UTC_TS),
            "available_at": pa.array([t + interval for t in ts], type=UTC_TS),
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [volume] * len(closes),
            "trades": pa.array([1] * len(closes), type=pa.int64()),
            "source_file": [source_file] * len(closes),
        }
    )


SPY_DAILY_SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "yahoofinance-SPY-20080101-20180101.csv"


@pytest.fixture(scope="session")
def spy_daily_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of real bars, read only by the tests that use it: the SPY daily bars 2008-2017 the repository
    ships (samples/), through `ingest csv` (2,517 bars; two bad rows quarantined)."""
    from ingest import csv as csv_ingest
    from ingest.common import RunContext
    from lake.config import Settings

    root = tmp_path_factory.mktemp("spy_daily") / "lake"
    summary = csv_ingest.run(RunContext(root, Settings(), quiet=True), SPY_DAILY_SAMPLE, "SPY", "1d", None)
    assert summary.ok, summary.errors
    return root


@pytest.fixture
def periods_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The periods the environment's episode source reads from the lake (rl.episodes._load_period), in order."""
    import rl.episodes

    out: list[str] = []
    real = rl.episodes._load_period

    def counted(*args: object, **kwargs: object) -> object:
        out.append(str(args[4]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rl.episodes, "_load_period", counted)
    return out
