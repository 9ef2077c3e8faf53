"""Yahoo prices from recorded chart responses replayed through yfinance's `session` argument."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

import lake
from cli import cli
from ingest import yahoo
from ingest.common import RunContext
from ingest.ratelimit import RateLimiter
from lake.config import Settings
from tests.yahoo_replay import (
    RATE_LIMITED,
    FakeSleep,
    ReplaySession,
    chart_payload,
    epoch,
    isolate_yfinance,
    queue,
)

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2024, 12, 2, 12, 0, tzinfo=UTC)
FRI = dt.date(2024, 11, 29)  # early close, 13:00 New York


@pytest.fixture(autouse=True)
def _yf_cache(tmp_path: Path) -> None:
    isolate_yfinance(tmp_path / "yfcache")


@pytest.fixture
def session() -> ReplaySession:
    return ReplaySession()


def ny(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), NY).astimezone(UTC)


def client(
    session: ReplaySession, *, attempts: int = 4, limiter: RateLimiter | None = None
) -> yahoo.YahooClient:
    return yahoo.YahooClient(
        session=session, sleep=FakeSleep(), attempts=attempts, limiter=limiter or RateLimiter(10_000, 1.0)
    )


def ingest(
    root: Path,
    c: yahoo.YahooClient,
    symbols: list[str],
    interval: str,
    start: dt.date,
    end: dt.date,
    now: dt.datetime = NOW,
) -> Any:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return yahoo.run(ctx, symbols, interval, start, end, client=c, now=now)


def rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def minute_payload() -> dict[str, Any]:
    t = [epoch(ny(FRI, 9, 30) + dt.timedelta(minutes=i)) for i in range(4)]
    return chart_payload(
        "AAPL",
        "1m",
        t,
        open=[234.80499267578125, 235.1199951171875, None, 235.5],
        high=[235.22000122070312, 235.3000030517578, None, 235.72000122070312],
        low=[234.52999877929688, 235.0, None, 235.41000366210938],
        close=[235.11000061035156, 235.16000366210938, None, 235.6999969482422],
        volume=[1203419, 201440, None, 150000],
    )


def test_minute_bars_land_at_the_right_instants_with_the_values_as_served(
    session: ReplaySession, lake_root: Path
) -> None:
    session.charts[("AAPL", "1m")] = queue((200, minute_payload()))
    s = ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI)
    assert s.ok, s.errors
    got = rows(
        lake_root,
        "SELECT symbol, source, asset_class, interval, ts, available_at, open, high, low, close, volume, trades"
        " FROM bars ORDER BY ts",
    )
    t0, m = dt.datetime(2024, 11, 29, 14, 30, tzinfo=UTC), dt.timedelta(minutes=1)
    assert got == [
        ("AAPL", "yahoo", "stock", "1m", t0, t0 + m, 234.80499267578125, 235.22000122070312, 234.52999877929688, 235.11000061035156, 1203419.0, None),
        ("AAPL", "yahoo", "stock", "1m", t0 + m, t0 + 2 * m, 235.1199951171875, 235.3000030517578, 235.0, 235.16000366210938, 201440.0, None),
        # 09:32 was all null: skipped, not filled
        ("AAPL", "yahoo", "stock", "1m", t0 + 3 * m, t0 + 4 * m, 235.5, 235.72000122070312, 235.41000366210938, 235.6999969482422, 150000.0, None),
    ]  # fmt: skip
    (call,) = session.chart_calls()
    assert call.params["interval"] == "1m" and call.params["includePrePost"] == "true"
    assert int(call.params["period1"]) == epoch(dt.datetime(2024, 11, 29, tzinfo=UTC))
    assert int(call.params["period2"]) == epoch(dt.datetime(2024, 11, 30, tzinfo=UTC))
    assert all(c.host.endswith("yahoo.com") for c in session.calls)  # every request answered in-process


def test_daily_bars_stamped_by_the_calendar_via_cli(
    session: ReplaySession, lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    normal = dt.date(2024, 11, 27)
    # Yahoo stamps a day at its 09:30 New York open; the lake stamps open and close from XNYS
    session.charts[("AAPL", "1d")] = queue(
        (
            200,
            chart_payload(
                "AAPL",
                "1d",
                [epoch(ny(normal, 9, 30)), epoch(ny(FRI, 9, 30))],
                open=[234.47000122070312, 234.80499267578125],
                high=[235.69000244140625, 237.80999755859375],
                low=[233.80999755859375, 233.97000122070312],
                close=[235.05999755859375, 237.3300018310547],
                volume=[33498400, 28481400],
            ),
        )
    )
    monkeypatch.setattr(yahoo, "default_session", lambda: session)
    r = runner.invoke(
        cli,
        ["--lake", str(lake_root), "ingest", "yahoo", "--symbols", "AAPL", "--interval", "1d",
         "--start", "2024-11-27", "--end", "2024-11-29"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    got = rows(lake_root, "SELECT ts, available_at, open, close, volume FROM bars ORDER BY ts")
    assert got == [
        (dt.datetime(2024, 11, 27, 14, 30, tzinfo=UTC), dt.datetime(2024, 11, 28, 1, 0, tzinfo=UTC),
         234.47000122070312, 235.05999755859375, 33498400.0),
        (dt.datetime(2024, 11, 29, 14, 30, tzinfo=UTC), dt.datetime(2024, 11, 29, 22, 0, tzinfo=UTC),
         234.80499267578125, 237.3300018310547, 28481400.0),
    ]  # fmt: skip  # available at the after-hours end: 20:00 New York, 17:00 on the early close


def test_empty_response_without_timestamp_is_no_data_not_an_error(
    session: ReplaySession, lake_root: Path
) -> None:
    session.charts[("AAPL", "1m")] = queue((200, chart_payload("AAPL", "1m", None)))
    s = ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI)
    assert s.ok, s.errors
    assert s.of("AAPL").files_missing == 1
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(0,)]


def test_empty_arrays_are_no_data_too(session: ReplaySession, lake_root: Path) -> None:
    session.charts[("AAPL", "1d")] = queue((200, chart_payload("AAPL", "1d", [])))
    s = ingest(lake_root, client(session), ["AAPL"], "1d", FRI, FRI)
    assert s.ok and s.of("AAPL").rows_landed == 0


def test_rate_limit_error_backs_off_then_succeeds(session: ReplaySession, lake_root: Path) -> None:
    # yfinance retries a 429 once itself before raising its rate-limit error: two 429s per attempt
    session.charts[("AAPL", "1m")] = queue(
        RATE_LIMITED, RATE_LIMITED, RATE_LIMITED, RATE_LIMITED, (200, minute_payload())
    )
    c = client(session, attempts=4)
    s = ingest(lake_root, c, ["AAPL"], "1m", FRI, FRI)
    assert s.ok, s.errors
    assert s.of("AAPL").rows_landed == 3
    assert isinstance(c.sleep, FakeSleep)
    assert c.sleep.pauses == [5.0, 10.0]  # exponential back-off, two waits before the third attempt
    assert len(session.chart_calls()) == 5


def test_persistent_rate_limit_fails_after_a_bounded_number_of_attempts(
    session: ReplaySession, lake_root: Path
) -> None:
    session.charts[("AAPL", "1m")] = queue(RATE_LIMITED)
    session.charts[("MSFT", "1m")] = queue((200, minute_payload()))
    c = client(session, attempts=3)
    s = ingest(lake_root, c, ["AAPL", "MSFT"], "1m", FRI, FRI)
    assert not s.ok
    assert "AAPL" in s.errors[0] and "rate limited" in s.errors[0]
    assert isinstance(c.sleep, FakeSleep) and len(c.sleep.pauses) == 2
    assert len(session.chart_calls()) == 6  # 3 attempts x 2, then nothing more is requested
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(0,)]


def test_every_chart_request_goes_through_the_rate_limiter(session: ReplaySession, lake_root: Path) -> None:
    clock = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    limiter = RateLimiter(2, 60.0, clock=lambda: clock[0], sleep=sleep)
    session.charts[("AAPL", "1m")] = queue((200, chart_payload("AAPL", "1m", None)))
    s = ingest(
        lake_root,
        client(session, limiter=limiter),
        ["AAPL"],
        "1m",
        dt.date(2024, 11, 4),
        dt.date(2024, 11, 29),
    )
    assert s.ok
    assert len(session.chart_calls()) == 4  # 26 days in windows of at most 7
    assert waits == [60.0]  # the third request waited for the window to free a slot


def test_minute_requests_stay_within_yahoos_limits(session: ReplaySession, lake_root: Path) -> None:
    session.charts[("AAPL", "1m")] = queue((200, chart_payload("AAPL", "1m", None)))
    s = ingest(lake_root, client(session), ["AAPL"], "1m", dt.date(2024, 10, 1), dt.date(2024, 12, 5))
    assert s.ok
    calls = session.chart_calls()
    spans = [(int(c.params["period1"]), int(c.params["period2"])) for c in calls]
    assert all(b - a <= 7 * 86400 for a, b in spans)
    assert all(b == a2 for (_, b), (a2, _) in zip(spans, spans[1:], strict=False))  # contiguous
    assert spans[0][0] == epoch(dt.datetime(2024, 11, 3, tzinfo=UTC))  # 29 days before NOW
    assert spans[-1][1] == epoch(NOW)  # never past now
    assert any("1m bars for about 30 days" in n for n in s.notes)


def test_row_with_some_nulls_is_rejected(session: ReplaySession, lake_root: Path) -> None:
    t = epoch(ny(FRI, 10, 0))
    session.charts[("AAPL", "1m")] = queue(
        (
            200,
            chart_payload(
                "AAPL",
                "1m",
                [t, t + 60],
                open=[1.5, 1.6],
                high=[1.7, 1.8],
                low=[1.4, None],
                close=[1.6, 1.7],
                volume=[10, 11],
            ),
        )
    )
    s = ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI)
    assert s.ok
    assert rows(lake_root, "SELECT close FROM bars") == [(1.6,)]
    assert rows(lake_root, "SELECT symbol, line_number, reason FROM bars_rejected") == [
        ("AAPL", 1, "missing field low")
    ]


def test_a_forming_bar_is_not_stored_yet(session: ReplaySession, lake_root: Path) -> None:
    session.charts[("AAPL", "1m")] = queue((200, minute_payload()))
    now = ny(FRI, 9, 31) + dt.timedelta(seconds=30)  # the 09:31 bar is still forming
    s = ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI, now=now)
    assert s.ok
    assert rows(lake_root, "SELECT ts FROM bars") == [(ny(FRI, 9, 30),)]


def test_unknown_symbol_is_an_error_naming_it(session: ReplaySession, lake_root: Path) -> None:
    s = ingest(lake_root, client(session), ["NOPE"], "1d", FRI, FRI)
    assert not s.ok
    assert "NOPE" in s.errors[0] and "No data found" in s.errors[0]


def test_a_rerun_changes_nothing_and_requests_nothing(session: ReplaySession, lake_root: Path) -> None:
    session.charts[("AAPL", "1m")] = queue((200, minute_payload()))
    assert ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI).ok
    before = {
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in lake_root.rglob("*")
        if p.is_file() and p.name != ".lock"
    }
    n = len(session.chart_calls())
    s = ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI)
    assert s.ok and s.of("AAPL").files_skipped == 1
    assert len(session.chart_calls()) == n  # the final response came from the raw cache
    after = {
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in lake_root.rglob("*")
        if p.is_file() and p.name != ".lock"
    }
    assert after == before


def test_etf_asset_class(session: ReplaySession, lake_root: Path) -> None:
    p = minute_payload()
    p["chart"]["result"][0]["meta"]["instrumentType"] = "ETF"
    session.charts[("SPY", "1m")] = queue((200, p))
    assert ingest(lake_root, client(session), ["SPY"], "1m", FRI, FRI).ok
    assert rows(lake_root, "SELECT DISTINCT asset_class FROM bars") == [("etf",)]


def test_the_live_quote_row_yahoo_appends_is_neither_a_bar_nor_a_rejection(
    session: ReplaySession, lake_root: Path
) -> None:
    t = epoch(ny(FRI, 9, 30))
    live = t + 102  # 09:31:42, the quote of the moment
    session.charts[("AAPL", "1m")] = queue(
        (200, chart_payload("AAPL", "1m", [t, t + 60, live], open=[1.5, 1.6, 1.61], high=[1.7, 1.8, 1.61],
                            low=[1.4, 1.5, 1.61], close=[1.6, 1.7, 1.61], volume=[10, 11, 0]))
    )  # fmt: skip
    now = ny(FRI, 9, 31) + dt.timedelta(seconds=45)
    s = ingest(lake_root, client(session), ["AAPL"], "1m", FRI, FRI, now=now)
    assert s.ok
    assert rows(lake_root, "SELECT ts, close FROM bars") == [(ny(FRI, 9, 30), 1.6)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]


def test_a_live_quote_row_inside_the_window_is_dropped_not_rejected(
    session: ReplaySession, lake_root: Path
) -> None:
    # Yahoo appends the live quote as the last row; during the session it can fall before the window's end
    # (period2 = now to the minute). Rejected, it would stay in bars_rejected under a window name that
    # changes every day. An off-minute row that is not the last one is still rejected.
    mon = dt.date(2024, 6, 3)
    t = [epoch(ny(mon, 9, 55) + dt.timedelta(minutes=i)) for i in range(6)]  # 09:55..10:00 (forming)
    odd = t[1] + 7  # 09:56:07 in the middle: not a bar
    live = t[4] + 47  # 09:59:47, after the forming 10:00 row
    stamps = [*t[:2], odd, *t[2:], live]
    n = len(stamps)
    session.charts[("AAPL", "1m")] = queue(
        (200, chart_payload("AAPL", "1m", stamps, open=[190.0] * n, high=[190.5] * n, low=[189.5] * n,
                            close=[190.2] * n, volume=[1000] * n))
    )  # fmt: skip
    now = ny(mon, 10, 0) + dt.timedelta(seconds=5)
    s = ingest(lake_root, client(session), ["AAPL"], "1m", mon, mon, now=now)
    assert s.ok, s.errors
    assert [r[0] for r in rows(lake_root, "SELECT ts FROM bars ORDER BY ts")] == [
        ny(mon, 9, m) for m in range(55, 60)
    ]
    ((reason,),) = rows(lake_root, "SELECT reason FROM bars_rejected")
    assert "not on a minute boundary" in reason and str(odd) in reason


def daily_twice(days: list[dt.date], closes: list[float], volumes: list[int], live_at: dt.datetime | None):
    """A 1d response: each of `days` stamped at its open, then (`live_at`) Yahoo's live row: the last values."""
    stamps = [epoch(ny(d, 9, 30)) for d in days] + ([epoch(live_at)] if live_at else [])
    return chart_payload("AAPL", "1d", stamps, open=closes, high=[c + 1 for c in closes],
                         low=[c - 1 for c in closes], close=closes, volume=volumes)  # fmt: skip


def test_yahoos_live_daily_row_updates_its_day_and_leaves_no_rejection(
    session: ReplaySession, lake_root: Path
) -> None:
    # Yahoo often serves today's daily row twice, the second (live) one stamped with the last trade's time
    # and a slightly larger volume; yfinance keeps the live one. Rejected ("after the close"), it stayed in
    # bars_rejected under the window's name of that day, which the next day's window never replaces.
    mon, tue, wed = dt.date(2024, 6, 3), dt.date(2024, 6, 4), dt.date(2024, 6, 5)
    session.charts[("AAPL", "1d")] = queue(
        (200, daily_twice([mon, tue], [190.0, 191.0, 191.5], [100, 200, 210], live_at=ny(tue, 16, 0))),
        (200, daily_twice([mon, tue, wed], [190.0, 191.5, 192.0], [100, 210, 300], live_at=None)),
    )
    c = client(session)
    s = ingest(lake_root, c, ["AAPL"], "1d", dt.date(2024, 6, 1), dt.date(2024, 12, 31), now=ny(tue, 21, 0))
    assert s.ok, s.errors
    assert s.of("AAPL").rows_rejected == 0
    daily_sql = (
        "SELECT CAST(timezone('America/New_York', ts) AS DATE), ts, close, volume FROM bars ORDER BY ts"
    )
    assert rows(lake_root, daily_sql) == [
        (mon, ny(mon, 9, 30), 190.0, 100.0),
        (tue, ny(tue, 9, 30), 191.5, 210.0),  # the live row's values, at the day's regular stamp
    ]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    s = ingest(lake_root, c, ["AAPL"], "1d", dt.date(2024, 6, 1), dt.date(2024, 12, 31), now=ny(wed, 21, 0))
    assert s.ok, s.errors
    assert [r[2:] for r in rows(lake_root, daily_sql)] == [(190.0, 100.0), (191.5, 210.0), (192.0, 300.0)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]


def test_a_live_daily_row_that_is_not_a_bar_updates_nothing(session: ReplaySession, lake_root: Path) -> None:
    mon, tue = dt.date(2024, 6, 3), dt.date(2024, 6, 4)
    p = daily_twice([mon, tue], [190.0, 191.0, 191.5], [100, 200, 210], live_at=ny(tue, 16, 0))
    p["chart"]["result"][0]["indicators"]["quote"][0]["low"][-1] = None
    session.charts[("AAPL", "1d")] = queue((200, p))
    s = ingest(lake_root, client(session), ["AAPL"], "1d", mon, tue, now=ny(tue, 21, 0))
    assert s.ok, s.errors
    assert rows(lake_root, "SELECT close, volume FROM bars ORDER BY ts") == [(190.0, 100.0), (191.0, 200.0)]
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]


def test_a_share_class_is_asked_with_a_dash_and_stored_with_a_dot(
    session: ReplaySession, lake_root: Path
) -> None:
    session.charts[("BRK-B", "1m")] = queue((200, minute_payload()))
    s = ingest(lake_root, client(session), ["BRK.B"], "1m", FRI, FRI)
    assert s.ok, s.errors
    assert [c.path.rsplit("/", 1)[1] for c in session.chart_calls()] == ["BRK-B"]
    assert rows(lake_root, "SELECT DISTINCT symbol, source FROM bars") == [("BRK.B", "yahoo")]


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_counts_windows_and_failures_unless_quiet(
    lake_root: Path, session: ReplaySession, quiet: bool
) -> None:
    """Yahoo shows progress as Binance does (issue 14, item 5), a failed window counted as failed."""
    import io

    from rich.console import Console

    out = io.StringIO()
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=quiet, console=Console(file=out, width=120))
    s = yahoo.run(ctx, ["NOPE"], "1d", FRI, FRI, client=client(session, attempts=1), now=NOW)
    assert not s.ok  # no such symbol on Yahoo: a failure, named
    if quiet:
        assert out.getvalue() == ""
    else:
        assert "yahoo 1d" in out.getvalue() and "1/1 windows" in out.getvalue(), out.getvalue()
        assert "1 failed" in out.getvalue(), out.getvalue()


# --- a finished window's answer is final only when it is plausibly complete ------------------------------

OCT = [dt.date(2024, 10, d) for d in range(1, 32)]
OCT_SESSIONS = [d for d in OCT if d.weekday() < 5]  # October 2024: no NYSE holiday, 23 sessions


def daily_payload(days: list[dt.date], *, price: float = 100.0, market: float = 237.33) -> dict[str, Any]:
    """AAPL daily rows for `days` (09:30 New York stamps); `market` is meta's regularMarketPrice, which
    Yahoo refreshes on every request."""
    n = len(days)
    p = chart_payload(
        "AAPL", "1d", [epoch(ny(d, 9, 30)) for d in days], open=[price] * n, high=[price + 1] * n,
        low=[price - 1] * n, close=[price + 0.5] * n, volume=[1000] * n,
    )  # fmt: skip
    p["chart"]["result"][0]["meta"]["regularMarketPrice"] = market
    return p


def window_files(root: Path, symbol: str = "AAPL", interval: str = "1d") -> list[str]:
    folder = root / "raw" / "yahoo" / symbol / interval
    return sorted(p.name for p in folder.glob("*.json") if not p.name.endswith(".meta.json"))


def test_an_empty_answer_for_a_finished_window_is_asked_again_and_a_complete_one_stays_cached(
    session: ReplaySession, lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Yahoo first answers October with its empty shape (no `timestamp` key), then with its 23 sessions
    session.charts[("AAPL", "1d")] = queue(
        (200, chart_payload("AAPL", "1d", None)), (200, daily_payload(OCT_SESSIONS))
    )
    monkeypatch.setattr(yahoo, "default_session", lambda: session)
    args = ["--lake", str(lake_root), "ingest", "yahoo", "--symbols", "AAPL", "--interval", "1d",
            "--start", "2024-10-01", "--end", "2024-10-31"]  # fmt: skip
    outputs, requests = [], []
    for _ in range(3):
        n = len(session.chart_calls())
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, res.output
        outputs.append(" ".join(res.output.split()))
        requests.append(len(session.chart_calls()) - n)
    assert requests == [1, 1, 0]  # the empty answer is asked again; the complete one is final
    assert "Yahoo's answer has 0 of 23 sessions: the window is asked again on the next run" in outputs[0]
    assert "had 0 of 23 sessions: asked Yahoo again, which now has 23 of 23" in outputs[1], outputs[1]
    assert "23 bars" in outputs[1] and "(cached)" in outputs[2] and "asked" not in outputs[2]
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(23,)]
    # the new answer is a new raw file beside the old one, which is kept as served
    assert window_files(lake_root) == ["1727740800-1730419200.2.json", "1727740800-1730419200.json"]
    empty = lake_root / "raw" / "yahoo" / "AAPL" / "1d" / "1727740800-1730419200.json"
    assert json.loads(empty.read_bytes()) == chart_payload("AAPL", "1d", None)


def test_a_partial_answer_is_asked_again_without_rewriting_the_raw_file_its_manifest_names(
    session: ReplaySession, lake_root: Path
) -> None:
    partial = daily_payload(OCT_SESSIONS[:20])
    partial["chart"]["result"][0]["indicators"]["quote"][0]["low"][5] = None  # rejected (some nulls)
    session.charts[("AAPL", "1d")] = queue((200, partial), (200, daily_payload(OCT_SESSIONS, market=240.0)))
    first = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    assert first.ok and first.of("AAPL").rows_landed == 19
    assert any("has 20 of 23 sessions" in n for n in first.notes), first.notes
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(1,)]
    raw = lake_root / "raw" / "yahoo" / "AAPL" / "1d"
    served = (raw / "1727740800-1730419200.json").read_bytes()
    second = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    # rows landed: the bars new to the lake, the 3 sessions the first answer lacked and the row it rejected
    assert second.ok and second.of("AAPL").rows_landed == 4
    assert len(session.chart_calls()) == 2
    assert (raw / "1727740800-1730419200.json").read_bytes() == served  # never edited
    # the manifest names both answers, each with the sha256 of the bytes still in the cache
    manifest = next((lake_root / "datasets" / "bars").rglob("_manifest.json"))
    named = {i["file"]: i["sha256"] for i in json.loads(manifest.read_text())["inputs"]}
    for name in ("1727740800-1730419200.json", "1727740800-1730419200.2.json"):
        assert named[f"yahoo:AAPL/1d/{name}"] == hashlib.sha256((raw / name).read_bytes()).hexdigest()
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(23,)]
    # the row the earlier answer rejected was judged again by the new one: no rejection is left behind
    assert rows(lake_root, "SELECT count(*) FROM bars_rejected") == [(0,)]
    third = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    assert third.ok and third.of("AAPL").files_skipped == 1 and len(session.chart_calls()) == 2
    assert not any("asked" in n for n in third.notes), third.notes


def test_an_incomplete_answer_served_again_with_the_same_rows_adds_no_raw_file(
    session: ReplaySession, lake_root: Path
) -> None:
    # a day Yahoo never has (say a halt): every run asks again, but the same rows are not stored twice
    # (only meta's market price differs, as in every answer)
    days = OCT_SESSIONS[:9] + OCT_SESSIONS[10:]
    answers = iter(daily_payload(days, market=200.0 + k) for k in range(10))
    session.charts[("AAPL", "1d")] = lambda symbol, params: (200, next(answers))
    for k in range(3):
        s = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
        assert s.ok and s.of("AAPL").rows_landed == (22 if k == 0 else 0)  # bars new to the lake
        # Yahoo was asked each time: a file done, never counted as skipped (answered from the cache)
        assert (s.of("AAPL").files_done, s.of("AAPL").files_skipped) == (1, 0), s.of("AAPL")
        assert [n for n in s.notes if "asked" in n] == [
            "yahoo: AAPL: 1d 2024-10-01 to 2024-10-31: Yahoo's answer has 22 of 23 sessions: "
            "the window is asked again on the next run"
        ]  # one note a run
    assert len(session.chart_calls()) == 3
    assert window_files(lake_root) == ["1727740800-1730419200.json"]


def test_a_window_asked_again_is_never_labelled_cached(
    session: ReplaySession, lake_root: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an incomplete finished window is asked again on every run; when Yahoo serves the same rows, the
    # line says so: "(cached)" is for a window answered from the cache with no request
    days = OCT_SESSIONS[:9] + OCT_SESSIONS[10:]
    session.charts[("AAPL", "1d")] = lambda symbol, params: (200, daily_payload(days))
    monkeypatch.setattr(yahoo, "default_session", lambda: session)
    args = ["--lake", str(lake_root), "ingest", "yahoo", "--symbols", "AAPL", "--interval", "1d",
            "--start", "2024-10-01", "--end", "2024-10-31"]  # fmt: skip
    runner.invoke(cli, args)
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert len(session.chart_calls()) == 2
    assert "(asked again: the same rows as cached)" in out and "(cached)" not in out, out


def test_sessions_before_the_listing_are_not_expected(session: ReplaySession, lake_root: Path) -> None:
    p = daily_payload(OCT_SESSIONS[10:])
    p["chart"]["result"][0]["meta"]["firstTradeDate"] = epoch(ny(OCT_SESSIONS[10], 9, 30))  # a listing
    session.charts[("AAPL", "1d")] = queue((200, p))
    for _ in range(2):
        s = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
        assert s.ok and not any("asked" in n for n in s.notes), s.notes
    assert len(session.chart_calls()) == 1


def test_a_cryptocurrency_window_expects_every_day(session: ReplaySession, lake_root: Path) -> None:
    week = [dt.date(2024, 11, 18) + dt.timedelta(days=k) for k in range(7)]  # Monday to Sunday

    def minutes(days: list[dt.date]) -> dict[str, Any]:
        t = [epoch(dt.datetime.combine(d, dt.time(12, 0), UTC)) for d in days]
        n = len(t)
        p = chart_payload("BTC-USD", "1m", t, open=[1.0] * n, high=[1.0] * n, low=[1.0] * n, close=[1.0] * n,
                          volume=[0] * n, instrument_type="CRYPTOCURRENCY")  # fmt: skip
        p["chart"]["result"][0]["meta"]["exchangeTimezoneName"] = "UTC"
        return p

    # the weekdays only: five of seven days, asked again; then all seven: final
    session.charts[("BTC-USD", "1m")] = queue((200, minutes(week[:5])), (200, minutes(week)))
    notes = []
    for _ in range(3):
        s = ingest(lake_root, client(session), ["BTC-USD"], "1m", week[0], week[-1])
        assert s.ok, s.errors
        notes.append([n for n in s.notes if "asked" in n])
    assert len(session.chart_calls()) == 2
    assert "Yahoo's answer has 5 of 7 days: the window is asked again on the next run" in notes[0][0]
    assert "had 5 of 7 days: asked Yahoo again, which now has 7 of 7" in notes[1][0] and notes[2] == []
    assert rows(lake_root, "SELECT count(*) FROM lake_bars") == [(7,)]


def test_a_window_answer_name_carries_its_version() -> None:
    a, b, c = (
        f"yahoo:AAPL/1d/1727740800-{n}" for n in ("1730419200.json", "1730419200.2.json", "1730505600.json")
    )
    assert yahoo._window_name(b) == ("yahoo:AAPL/1d/1727740800-", 1730419200, 2)
    assert yahoo._earlier_version(a, b) and yahoo._earlier_version(b, c) and yahoo._earlier_version(a, c)
    assert (
        not yahoo._earlier_version(b, a)
        and not yahoo._earlier_version(c, b)
        and not yahoo._earlier_version(a, a)
    )
    assert yahoo._window_name("yahoo:AAPL/1d/1727740800-1730419200.x.json") is None


def test_a_failed_refetch_of_an_incomplete_window_is_an_error_and_keeps_what_landed(
    session: ReplaySession, lake_root: Path
) -> None:
    error = {"chart": {"result": None, "error": {"code": "Internal", "description": "Internal Server Error"}}}
    session.charts[("AAPL", "1d")] = queue((200, daily_payload(OCT_SESSIONS[:20])), (500, error))
    assert ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1]).ok
    s = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    assert not s.ok and "AAPL" in s.errors[0] and "HTTP 500: Internal Server Error" in s.errors[0]
    assert any("had 20 of 23 sessions: asked Yahoo again" in n for n in s.notes), s.notes
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(20,)]
    assert window_files(lake_root) == ["1727740800-1730419200.json"]


def test_a_window_starting_before_the_calendar_is_judged_on_the_days_the_calendar_knows(
    session: ReplaySession, lake_root: Path
) -> None:
    # --start the day before the calendar's first session (1990-01-02, features.calendars.WIDE_FIRST_YEAR):
    # the days before it cannot be judged, the rest can (an empty answer was taken as final forever:
    # session() raised for that first day)
    from ingest.stamping import session as xnys_session

    first_session = yahoo_calendar_first_session()
    start = first_session - dt.timedelta(days=1)
    month_end = dt.date(start.year, start.month + 1, 1) - dt.timedelta(days=1)
    days = [first_session + dt.timedelta(days=k) for k in range((month_end - first_session).days + 1)]
    sessions = [d for d in days if xnys_session(d) is not None]
    assert len(sessions) > 15
    session.charts[("AAPL", "1d")] = queue(
        (200, chart_payload("AAPL", "1d", None)), (200, daily_payload(sessions))
    )
    now = dt.datetime(start.year, start.month + 2, 1, 12, tzinfo=UTC)
    first = ingest(lake_root, client(session), ["AAPL"], "1d", start, month_end, now)
    assert any(f"Yahoo's answer has 0 of {len(sessions)} sessions" in n for n in first.notes), first.notes
    second = ingest(lake_root, client(session), ["AAPL"], "1d", start, month_end, now)
    assert second.ok and second.of("AAPL").rows_landed == len(sessions) and len(session.chart_calls()) == 2
    before = start - dt.timedelta(days=30)
    assert yahoo._sessions_between(before, start) == ()  # cannot be judged


def yahoo_calendar_first_session() -> dt.date:
    """The first session of the calendar stamping judges days on."""
    from features.calendars import xnys_calendar

    cal: Any = xnys_calendar()
    assert cal is not None
    return cal.first_session.date()


def test_a_worse_answer_asked_again_keeps_the_earlier_rejections_of_days_it_lacks(
    session: ReplaySession, lake_root: Path
) -> None:
    # the first answer has 20 sessions and rejects two (10-03 and 10-08); the second has 14, with 10-03
    # whole but without 10-08: only the rejection of 10-03 was judged again
    first = daily_payload(OCT_SESSIONS[:20])
    for i in (2, 5):
        first["chart"]["result"][0]["indicators"]["quote"][0]["low"][i] = None
    second = daily_payload(OCT_SESSIONS[:5] + OCT_SESSIONS[6:15], market=250.0)
    third = daily_payload(OCT_SESSIONS[:19], market=260.0)
    session.charts[("AAPL", "1d")] = queue((200, first), (200, second), (200, third))
    ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    rejected = "SELECT CAST(ts AS DATE), source_file FROM bars_rejected ORDER BY ts"
    assert [d for d, _ in rows(lake_root, rejected)] == [OCT_SESSIONS[2], OCT_SESSIONS[5]]
    s = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    assert s.ok and any(
        "Yahoo's answer has 14 of 23 sessions (fewer than the 20 the cached answer had, whose bars stay)" in n
        for n in s.notes
    ), s.notes
    assert rows(lake_root, rejected) == [(OCT_SESSIONS[5], "yahoo:AAPL/1d/1727740800-1730419200.json")]
    # the next run judges both answers together (20 of 23), not the worse one alone
    s = ingest(lake_root, client(session), ["AAPL"], "1d", OCT[0], OCT[-1])
    assert any(
        "Yahoo's answer has 19 of 23 sessions (fewer than the 20 the cached answers had, whose bars stay)"
        in n
        for n in s.notes
    ), s.notes
    assert rows(lake_root, rejected) == []  # the third answer has 10-08 (whole)
    assert rows(lake_root, "SELECT count(*) FROM bars") == [(20,)]


def test_a_symbol_that_stopped_trading_is_not_asked_again_forever(
    session: ReplaySession, lake_root: Path
) -> None:
    # its rows stop on 2022-06-30 (acquired); Yahoo still serves its history: every later session is
    # missing from every later window, for good
    last = dt.date(2022, 6, 30)

    def answer(symbol: str, params: dict[str, str]) -> tuple[int, Any]:
        a, b = (dt.datetime.fromtimestamp(int(params[k]), UTC).date() for k in ("period1", "period2"))
        days = [a + dt.timedelta(k) for k in range((b - a).days)]
        return 200, daily_payload(
            [d for d in days if d <= last and d.weekday() < 5 and d != dt.date(2022, 6, 20)]
        )

    session.charts[("AAPL", "1d")] = answer
    start = dt.datetime(2025, 2, 1, 12, tzinfo=UTC)
    requests, notes = [], []
    for later in (dt.timedelta(0), dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=2)):
        n = len(session.chart_calls())
        s = ingest(
            lake_root,
            client(session),
            ["AAPL"],
            "1d",
            dt.date(2022, 1, 1),
            dt.date(2023, 12, 31),
            start + later,
        )
        assert s.ok, s.errors
        requests.append(len(session.chart_calls()) - n)
        notes.append([x for x in s.notes if "asked" in x])
    # an hour later it may be one passing fault served twice: asked again; a day later, the same rows
    # again are Yahoo's final word: recorded, and never asked again
    assert requests == [2, 2, 2, 0], requests
    assert len(notes[1]) == 2 and all("asked again on the next run" in x for x in notes[1]), notes[1]
    assert notes[2] == [
        f"yahoo: AAPL: 1d {a} to {b}: the cached answer (fetched 2025-02-01 12:00 UTC) had {had}: asked Yahoo "
        "again, which served the same rows as at 2025-02-01 12:00 UTC: taken as Yahoo's final word, not asked again"
        for a, b, had in (
            ("2022-01-01", "2022-12-31", "124 of 251 sessions"),
            ("2023-01-01", "2023-12-31", "0 of 250 sessions"),
        )
    ], notes[2]
    assert notes[3] == []
    # no new raw file: the same rows are not stored twice
    assert window_files(lake_root) == ["1640995200-1672531200.json", "1672531200-1704067200.json"]
    meta = json.loads((lake_root / "raw/yahoo/AAPL/1d/1640995200-1672531200.json.meta.json").read_text())
    assert meta[yahoo.FINAL_WORD] == "2025-02-02T12:00:00+00:00"
