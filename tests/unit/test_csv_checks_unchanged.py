"""A file the lake already landed, with the same bytes and options, is not read again (ingest/csv_checks.py:
`unchanged` before parsing, `Checked.record` after landing, in the raw copy's .meta.json); any change (its
bytes, --tz, the asset class, the code, its bars in the lake) and it is read and landed as ever."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import lake
from ingest import csv as csv_ingest
from ingest.common import RunContext
from lake.config import Settings

DAILY = (
    "Date,Open,High,Low,Close,Adj Close,Volume\n"
    "2024-01-02,187.15,188.44,183.89,185.64,185.1,82488700\n"
    "2024-01-03,184.22,185.88,183.43,184.25,183.7,58414500\n"
    "2024-01-04,182.15,183.09,180.88,181.91,181.4,71983600\n"
    "2024-01-06,1,2,0.5,1.5,1.5,10\n"  # a Saturday: quarantined
)


def ctx(root: Path) -> RunContext:
    return RunContext(root, Settings(), quiet=True)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every parse of a file, by its `where`."""
    seen: list[str] = []
    real = csv_ingest.parse_csv

    def spy(text: str, **kw: Any) -> Any:
        seen.append(kw["where"])
        return real(text, **kw)

    monkeypatch.setattr(csv_ingest, "parse_csv", spy)
    return seen


def test_an_unchanged_file_is_not_read_again_and_says_the_same(
    lake_root: Path, tmp_path: Path, parses: list[str]
) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(DAILY)
    first = csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    assert len(parses) == 1 and first.of("AAPL").files_done == 1
    again = csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    assert len(parses) == 1  # skipped before parsing
    s = again.of("AAPL")
    assert (s.rows_landed, s.rows_rejected, s.files_done, s.files_skipped) == (0, 1, 0, 1)
    assert again.notes == first.notes and any("Adj Close ignored" in n for n in again.notes)
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    try:
        assert con.execute("SELECT count(*) FROM bars").fetchone() == (3,)
    finally:
        con.close()


def test_other_options_or_bytes_are_read_again(lake_root: Path, tmp_path: Path, parses: list[str]) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(DAILY)
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d", asset_class="etf")  # another asset class
    assert len(parses) == 2
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d", asset_class="etf")
    assert len(parses) == 2  # the same again: skipped
    path.write_text(DAILY.replace("184.25", "184.26"))
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d", asset_class="etf")
    assert len(parses) == 3
    # --daily-stamps changes how the stamps are read: read again
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d", asset_class="etf", daily_stamps="utc-date")
    assert len(parses) == 4


def test_a_file_whose_bars_another_file_replaced_is_read_again(
    lake_root: Path, tmp_path: Path, parses: list[str]
) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(DAILY)
    b.write_text("Date,Open,High,Low,Close,Volume\n2024-01-03,184.22,185.88,183.43,184.30,58414999\n")
    csv_ingest.run(ctx(lake_root), a, "AAPL", "1d")
    csv_ingest.run(ctx(lake_root), b, "AAPL", "1d")  # holds a.csv's 2024-01-03 now
    again = csv_ingest.run(ctx(lake_root), a, "AAPL", "1d")
    assert len(parses) == 3 and again.of("AAPL").files_done == 1  # a.csv's bar is back


def test_a_damaged_partition_or_an_unfinished_bar_is_read_again(
    lake_root: Path, tmp_path: Path, parses: list[str]
) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(DAILY)
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    data = next((lake_root / "datasets" / "bars").rglob("data.parquet"))
    data.write_bytes(data.read_bytes()[:-10])
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    assert len(parses) == 2
    minute = tmp_path / "live.csv"  # its last bar not finished when first imported: it lands later
    minute.write_text(
        "Datetime,Open,High,Low,Close,Volume\n2024-03-05 14:30:00+00:00,1,2,0.5,1.5,3\n"
        "2024-03-05 14:31:00+00:00,1,2,0.5,1.5,3\n"
    )
    early = dt.datetime(2024, 3, 5, 14, 31, 30, tzinfo=dt.UTC)
    first = csv_ingest.run(ctx(lake_root), minute, "AAPL", "1m", now=early)
    assert first.of("AAPL").rows_rejected == 1
    later = csv_ingest.run(ctx(lake_root), minute, "AAPL", "1m", now=early + dt.timedelta(minutes=5))
    assert len(parses) == 4 and later.of("AAPL").rows_rejected == 0


def test_a_record_for_other_bytes_than_the_raw_copys_is_not_kept(lake_root: Path, tmp_path: Path) -> None:
    """Two imports of one name at once: the one whose raw copy was replaced since does not record its
    landing over the other's (the raw copy's sha256 decides)."""
    import json

    from ingest import csv_checks

    path = tmp_path / "aapl.csv"
    path.write_text(DAILY)
    csv_ingest.run(ctx(lake_root), path, "AAPL", "1d")
    meta_path = next((lake_root / "raw" / "csv").rglob("*.meta.json"))
    landed = json.loads(meta_path.read_text())["landed"]
    csv_checks.Checked(bars=1).record(
        ctx(lake_root),
        "AAPL/1d/aapl.csv",
        source="csv",
        source_file="csv:AAPL/1d/aapl.csv",
        interval="1d",
        periods={"2024": 99},
        rejected=0,
        options={"tz": "UTC"},
        sha256="0" * 64,
    )
    assert json.loads(meta_path.read_text())["landed"] == landed


def test_the_code_digest_covers_every_module_the_import_runs_and_the_packages_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingest import csv_checks

    csv_checks.code_digest.cache_clear()
    before = csv_checks.code_digest()
    for name in ("writer.py", "schemas.py", "sessions.py"):  # the lake's writer and schemas, the sessions
        real = Path.read_bytes

        def edited(self: Path, real: Any = real, name: str = name) -> bytes:
            return real(self) + (b"# edited\n" if self.name == name else b"")

        monkeypatch.setattr(Path, "read_bytes", edited)
        csv_checks.code_digest.cache_clear()
        assert csv_checks.code_digest() != before, name
        monkeypatch.undo()
    csv_checks.code_digest.cache_clear()
    assert csv_checks.code_digest() == before
    real_version = csv_checks.metadata.version
    monkeypatch.setattr(
        csv_checks.metadata,
        "version",
        lambda p: "0.0-other" if p == "exchange_calendars" else real_version(p),
    )
    csv_checks.code_digest.cache_clear()
    try:
        assert csv_checks.code_digest() != before
    finally:
        monkeypatch.undo()
        csv_checks.code_digest.cache_clear()
