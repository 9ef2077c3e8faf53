"""Notes on a stock's intraday file that looks misplaced in the day (ingest/csv_checks.py): most bars outside
09:30-16:00 New York (a wrong --tz, a crypto file stored as a stock), bars stamped by their end; and a
symbol configured under [binance] that lands as a stock without --asset-class gets a note."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import lake
from ingest import csv as csv_ingest
from ingest.common import RunContext
from lake.config import Settings, SourceConfig


def ctx(root: Path, settings: Settings | None = None) -> RunContext:
    return RunContext(root, settings or Settings(), quiet=True)


def minutes(start: dt.datetime, n: int, step: dt.timedelta = dt.timedelta(minutes=1)) -> str:
    rows = [f"{(start + i * step):%Y-%m-%d %H:%M:%S},100,101,99,100.5,1000" for i in range(n)]
    return "Datetime,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n"


def test_a_file_read_in_the_wrong_zone_gets_a_note_with_the_share(lake_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "utc.csv"  # a New York session written in UTC (14:30-21:00), read as New York times
    path.write_text(minutes(dt.datetime(2024, 3, 5, 14, 30), 390))
    notes = csv_ingest.run(ctx(lake_root), path, "AAPL", "1m", "America/New_York").notes
    outside = [n for n in notes if "outside 09:30-16:00" in n]
    assert outside == [
        "utc.csv: 77% of AAPL's 1m bars (300 of 390) start outside 09:30-16:00 New York, the regular session "
        "of a US stock: are its times in another zone than --tz America/New_York (check --tz), or is it "
        "crypto (--asset-class crypto)? (an extended-hours export has at most about 60% outside)"
    ]


def test_a_crypto_file_stored_as_a_stock_gets_the_note_and_a_session_does_not(
    lake_root: Path, tmp_path: Path
) -> None:
    crypto = tmp_path / "btc.csv"  # three weekdays (no holiday) of 24-hour minutes, offsets
    rows = [
        f"{(dt.datetime(2020, 1, 7, tzinfo=dt.UTC) + dt.timedelta(minutes=i)).isoformat()},1,2,0.5,1.5,3"
        for i in range(3 * 1440)
    ]
    crypto.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    notes = csv_ingest.run(ctx(lake_root), crypto, "XBT", "1m").notes
    assert [n for n in notes if "73% of XBT's 1m bars (3,150 of 4,320) start outside" in n and "offsets" in n]
    session = tmp_path / "session.csv"
    session.write_text(minutes(dt.datetime(2024, 3, 5, 9, 30), 390))
    notes = csv_ingest.run(ctx(lake_root), session, "AAPL", "1m", "America/New_York").notes
    assert not [n for n in notes if "outside 09:30" in n or "stamped by their end" in n]
    extended = tmp_path / "extended.csv"  # 04:00-20:00: 59% outside the regular session, no note
    extended.write_text(minutes(dt.datetime(2024, 3, 5, 4, 0), 960))
    notes = csv_ingest.run(ctx(lake_root), extended, "MSFT", "1m", "America/New_York").notes
    assert not [n for n in notes if "outside 09:30" in n]


def test_bars_stamped_by_their_end_get_a_note(lake_root: Path, tmp_path: Path) -> None:
    ended = tmp_path / "end.csv"  # 09:31..16:00 on two days
    ended.write_text(
        minutes(dt.datetime(2024, 3, 7, 9, 31), 390)
        + minutes(dt.datetime(2024, 3, 8, 9, 31), 390).split("\n", 1)[1]
    )
    notes = csv_ingest.run(ctx(lake_root), ended, "AAPL", "1m", "America/New_York").notes
    assert [n for n in notes if "stamped by their end" in n] == [
        "end.csv: no session of AAPL has a 09:30 bar and 2 of 2 sessions end with a 16:00 bar: the bars look "
        "stamped by their end, not their start (the lake stamps a bar by its start: the session's first 1m bar "
        "is the 09:30 one); if so, shift the times back by 1m and import the file again"
    ]
    hourly = tmp_path / "h_end.csv"  # 10:00..16:00 on the hour, five days
    text = "".join(
        minutes(dt.datetime(2024, 3, d, 10, 0), 7, dt.timedelta(hours=1)).split("\n", 1)[1]
        for d in range(4, 9)
    )
    hourly.write_text("Datetime,Open,High,Low,Close,Volume\n" + text)
    notes = csv_ingest.run(ctx(lake_root), hourly, "MSFT", "1h", "America/New_York").notes
    assert [n for n in notes if "5 of 5 sessions end with a 16:00 bar" in n]


def test_a_binance_symbol_of_the_settings_stored_as_a_stock_gets_a_note(
    lake_root: Path, tmp_path: Path
) -> None:
    settings = Settings(binance=SourceConfig(["SOLUSDT"], "1m"))
    path = tmp_path / "sol.csv"  # two weekdays of a Binance pair's minutes
    rows = [
        f"{(dt.datetime(2024, 3, 5, tzinfo=dt.UTC) + dt.timedelta(minutes=i)).isoformat()},1,2,0.5,1.5,3"
        for i in range(2 * 1440)
    ]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    summary = csv_ingest.run(ctx(lake_root, settings), path, "SOLUSDT", "1m")
    assert [n for n in summary.notes if "[binance]" in n] == [
        "sol.csv: SOLUSDT is a [binance] symbol in the settings, but without --asset-class it was stored as a "
        "stock (US trading days and hours); if the file is crypto, import it again with --asset-class crypto"
    ]
    again = csv_ingest.run(ctx(lake_root, settings), path, "SOLUSDT", "1m", asset_class="crypto")
    assert not [n for n in again.notes if "[binance]" in n or "outside 09:30" in n]
    told = csv_ingest.run(ctx(lake_root, settings), path, "SOLUSDT", "1m", asset_class="stock")
    assert not [n for n in told.notes if "[binance]" in n]  # said on purpose
    con = lake.connect(lake_root, read_only=True, settings=settings)
    try:
        assert con.execute("SELECT asset_class, count(*) FROM lake_bars GROUP BY 1").fetchall() == [
            ("stock", 2880)
        ]
    finally:
        con.close()
