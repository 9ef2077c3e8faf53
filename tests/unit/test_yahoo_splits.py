"""Yahoo serves split-adjusted prices; the lake undoes the adjustment so that it holds what traded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import lake
from ingest import yahoo
from ingest.common import IngestSummary, RawCache, RunContext
from ingest.ratelimit import RateLimiter
from lake.config import Settings
from lake.paths import LakePaths
from tests.yahoo_replay import FakeSleep, ReplaySession, chart_payload, epoch, isolate_yfinance, queue

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2024, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _yf_cache(tmp_path: Path) -> None:
    isolate_yfinance(tmp_path / "yfcache")


def open_at(day: dt.date) -> int:
    return epoch(dt.datetime.combine(day, dt.time(9, 30), NY))


def split(day: dt.date, numerator: Any, denominator: Any) -> dict[str, Any]:
    t = open_at(day)
    return {
        str(t): {
            "date": t,
            "numerator": numerator,
            "denominator": denominator,
            "splitRatio": f"{numerator}:{denominator}",
        }
    }


def daily(
    days: list[dt.date], closes: list[float], volumes: list[int], splits: dict[str, Any] | None
) -> dict[str, Any]:
    p = chart_payload(
        "NVDA",
        "1d",
        [open_at(d) for d in days],
        open=closes,
        high=[c * 1.01 for c in closes],
        low=[c * 0.99 for c in closes],
        close=closes,
        volume=volumes,
    )
    if splits is not None:
        p["chart"]["result"][0]["events"] = {"splits": splits}
    return p


def ingest(root: Path, session: ReplaySession, start: dt.date, end: dt.date) -> IngestSummary:
    c = yahoo.YahooClient(session=session, sleep=FakeSleep(), attempts=2, limiter=RateLimiter(10_000, 1.0))
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    return yahoo.run(ctx, ["NVDA"], "1d", start, end, client=c, now=NOW)


def bars(root: Path) -> list[tuple[Any, ...]]:
    con = lake.connect(root, read_only=True, settings=Settings())
    try:
        return con.execute(
            "SELECT CAST(timezone('America/New_York', ts) AS DATE), close, volume FROM bars ORDER BY ts"
        ).fetchall()
    finally:
        con.close()


JUN = [dt.date(2024, 6, 6), dt.date(2024, 6, 7), dt.date(2024, 6, 10), dt.date(2024, 6, 11)]
SERVED = [120.99800109863281, 120.88800048828125, 121.79000091552734, 120.91000366210938]  # adjusted
VOL = [3466244000, 4123854000, 3089310000, 2286221000]  # adjusted (times 10)


def test_a_forward_split_in_the_window_is_undone(lake_root: Path) -> None:
    session = ReplaySession()
    payload = daily(JUN, SERVED, VOL, split(dt.date(2024, 6, 10), 10, 1))
    session.charts[("NVDA", "1d")] = queue((200, payload))
    s = ingest(lake_root, session, JUN[0], JUN[-1])
    assert s.ok, s.errors
    assert bars(lake_root) == [
        (JUN[0], SERVED[0] * 10, VOL[0] / 10),  # the as-served (float32-widened) value times the ratio
        (JUN[1], SERVED[1] * 10, VOL[1] / 10),
        (JUN[2], SERVED[2], float(VOL[2])),  # the split day itself traded split
        (JUN[3], SERVED[3], float(VOL[3])),
    ]
    # the raw cache keeps the response exactly as served
    (raw,) = (lake_root / "raw" / "yahoo" / "NVDA" / "1d").glob("*[0-9].json")
    assert json.loads(raw.read_bytes()) == payload


def test_a_reverse_split_after_the_window_is_undone_from_the_split_lookup(lake_root: Path) -> None:
    session = ReplaySession()
    days = [dt.date(2024, 11, 25), dt.date(2024, 11, 26)]
    session.charts[("NVDA", "1d")] = queue((200, daily(days, [0.5, 0.625], [40000, 60000], None)))
    # 1 new share for 20 old on 2024-11-27, after the window: Yahoo still adjusted the window's prices
    later = daily([], [], [], split(dt.date(2024, 11, 27), 1, 20))
    session.charts[("NVDA", yahoo.SPLITS_INTERVAL)] = queue((200, later))
    s = ingest(lake_root, session, days[0], days[-1])
    assert s.ok, s.errors
    assert bars(lake_root) == [(days[0], 0.5 / 20, 40000 * 20.0), (days[1], 0.625 / 20, 60000 * 20.0)]
    (call,) = session.split_calls()
    assert call.params["events"] == "split" and int(call.params["period1"]) == yahoo._midnight(days[0])

    again = ingest(lake_root, session, days[0], days[-1])  # from the cache, with the same split events
    assert again.ok, again.errors
    assert len(session.split_calls()) == 1 and len(session.chart_calls()) == 1
    assert bars(lake_root) == [(days[0], 0.5 / 20, 40000 * 20.0), (days[1], 0.625 / 20, 60000 * 20.0)]


@pytest.mark.parametrize(("numerator", "denominator"), [(10, 0), (None, 1), ("ten", 1)])
def test_an_unreadable_ratio_quarantines_the_bars_it_concerns(
    lake_root: Path, numerator: Any, denominator: Any
) -> None:
    session = ReplaySession()
    session.charts[("NVDA", "1d")] = queue(
        (200, daily(JUN, SERVED, VOL, split(dt.date(2024, 6, 10), numerator, denominator)))
    )
    s = ingest(lake_root, session, JUN[0], JUN[-1])
    assert s.ok, s.errors
    assert [b[0] for b in bars(lake_root)] == JUN[2:]  # on and after the split: not adjusted for it
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    rejected = con.execute("SELECT close, reason FROM bars_rejected ORDER BY line_number").fetchall()
    assert [r[0] for r in rejected] == SERVED[:2]
    assert all("split" in r[1] and "unreadable" in r[1] for r in rejected), rejected


def test_a_daily_bar_stamped_after_the_close_is_rejected_not_moved(lake_root: Path) -> None:
    session = ReplaySession()
    tue = dt.date(2024, 11, 26)
    midnight_utc = epoch(dt.datetime.combine(tue, dt.time(0), UTC))  # Monday 19:00 in New York
    p = chart_payload(
        "NVDA", "1d", [midnight_utc, open_at(tue)], open=[1.0, 2.0], high=[1.0, 2.0], low=[1.0, 2.0],
        close=[1.0, 2.0], volume=[5, 6],
    )  # fmt: skip
    session.charts[("NVDA", "1d")] = queue((200, p))
    s = ingest(lake_root, session, dt.date(2024, 11, 25), tue)
    assert s.ok, s.errors
    assert bars(lake_root) == [(tue, 2.0, 6.0)]
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    ((reason,),) = con.execute("SELECT reason FROM bars_rejected").fetchall()
    assert "after the close of 2024-11-25" in reason, reason


def test_the_current_window_is_cached_under_one_name_and_its_rejections_replaced(lake_root: Path) -> None:
    session = ReplaySession()
    mon, tue = dt.date(2024, 11, 25), dt.date(2024, 11, 26)
    p = chart_payload(
        "NVDA", "1d", [open_at(mon), open_at(tue)], open=[1.0, 2.0], high=[1.0, 2.0], low=[1.0, None],
        close=[1.0, 2.0], volume=[5, 6],
    )  # fmt: skip
    session.charts[("NVDA", "1d")] = queue((200, p))
    c = yahoo.YahooClient(session=session, sleep=FakeSleep(), attempts=2, limiter=RateLimiter(10_000, 1.0))
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    for now in (NOW, NOW + dt.timedelta(hours=3)):  # the 2024 window ends at `now` both times
        s = yahoo.run(ctx, ["NVDA"], "1d", mon, NOW.date(), client=c, now=now)
        assert s.ok, s.errors
    assert len(session.chart_calls()) == 2
    assert len(list((lake_root / "raw" / "yahoo" / "NVDA" / "1d").glob("*[0-9].json"))) == 1
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    assert con.execute("SELECT count(*) FROM bars_rejected").fetchall() == [(1,)]


def test_a_window_fetched_again_is_read_with_split_events_as_fresh_as_it(lake_root: Path) -> None:
    # NVDA's 10:1 split took effect on Monday 2024-06-10. The 1m window of June 3..9 ends less than a day
    # before each run on June 10, so it is fetched again on every run. At 12:00 UTC Yahoo neither lists
    # the split nor has adjusted the history; by 22:00 it has done both. The 22:00 run must read the
    # window with split events fetched then, not with the morning's (adjusted prices would land, 10x low).
    split_day, friday = dt.date(2024, 6, 10), dt.date(2024, 6, 7)
    events = split(split_day, 10, 1)

    def minutes(day: dt.date, price: float, volume: int, splits: dict[str, Any] | None) -> dict[str, Any]:
        t = [epoch(dt.datetime.combine(day, dt.time(10, i), NY)) for i in range(3)]
        p = chart_payload("NVDA", "1m", t, open=[price] * 3, high=[price] * 3, low=[price] * 3,
                          close=[price] * 3, volume=[volume] * 3)  # fmt: skip
        if splits is not None:
            p["chart"]["result"][0]["events"] = {"splits": splits}
        return p

    def run(now: dt.datetime, adjusted: bool) -> list[tuple[Any, ...]]:
        session = ReplaySession()

        def answer(symbol: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
            if int(params["period1"]) < yahoo._midnight(split_day):  # the window of June 3..9
                return 200, minutes(friday, 120.0, 1000, None) if adjusted else minutes(
                    friday, 1200.0, 100, None
                )
            return 200, minutes(split_day, 121.0, 5000, events if adjusted else None)

        session.charts[("NVDA", "1m")] = answer
        session.charts[("NVDA", yahoo.SPLITS_INTERVAL)] = queue(
            (200, daily([], [], [], events if adjusted else None))
        )
        c = yahoo.YahooClient(
            session=session, sleep=FakeSleep(), attempts=2, limiter=RateLimiter(10_000, 1.0)
        )
        ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
        s = yahoo.run(ctx, ["NVDA"], "1m", dt.date(2024, 6, 3), split_day, client=c, now=now)
        assert s.ok, s.errors
        con = lake.connect(lake_root, read_only=True, settings=Settings())
        try:
            return con.execute(
                "SELECT close, volume FROM bars WHERE CAST(timezone('America/New_York', ts) AS DATE) = ? "
                "ORDER BY ts",
                [friday],
            ).fetchall()
        finally:
            con.close()

    what_traded = [(1200.0, 100.0)] * 3
    assert run(dt.datetime(2024, 6, 10, 12, 0, tzinfo=UTC), adjusted=False) == what_traded
    assert run(dt.datetime(2024, 6, 10, 22, 0, tzinfo=UTC), adjusted=True) == what_traded
    assert run(dt.datetime(2024, 6, 11, 9, 0, tzinfo=UTC), adjusted=True) == what_traded


def test_a_rejection_is_replaced_when_the_window_is_judged_again(lake_root: Path) -> None:
    # A row rejected in the window that ends today is judged again by every later fetch of that window:
    # later the same day (same file name) and the next day (the window then ends a day later: a new name).
    # Once Yahoo serves it whole, the rejection goes; a rejection of another window stays.
    mon, tue, wed = dt.date(2024, 11, 25), dt.date(2024, 11, 26), dt.date(2024, 11, 27)

    def answer(days: list[dt.date], bad_low: bool) -> dict[str, Any]:
        n = len(days)
        return chart_payload(
            "NVDA", "1d", [open_at(d) for d in days], open=[1.0] * n, high=[2.0] * n,
            low=[0.5] * (n - 1) + [None if bad_low else 0.5], close=[1.5] * n, volume=[5] * n,
        )  # fmt: skip

    session = ReplaySession()
    session.charts[("NVDA", "1d")] = queue(
        (200, answer([dt.date(2023, 12, 29)], bad_low=True)),  # another window (2023): its rejection stays
        (200, answer([mon, tue], bad_low=True)),  # Tuesday evening: Tuesday's low is missing
        (200, answer([mon, tue], bad_low=True)),  # three hours later: still
        (200, answer([mon, tue, wed], bad_low=False)),  # Wednesday evening: Tuesday served whole
        (200, answer([mon, tue, wed], bad_low=False)),
    )
    c = yahoo.YahooClient(session=session, sleep=FakeSleep(), attempts=2, limiter=RateLimiter(10_000, 1.0))
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    assert yahoo.run(ctx, ["NVDA"], "1d", dt.date(2023, 12, 29), dt.date(2023, 12, 29), client=c, now=NOW).ok

    def rejected() -> list[tuple[Any, ...]]:
        con = lake.connect(lake_root, read_only=True, settings=Settings())
        try:
            return con.execute(
                "SELECT CAST(timezone('America/New_York', ts) AS DATE) FROM bars_rejected ORDER BY ts"
            ).fetchall()
        finally:
            con.close()

    tue_evening = dt.datetime.combine(tue, dt.time(21), NY).astimezone(UTC)
    for now in (tue_evening, tue_evening + dt.timedelta(hours=3)):
        s = yahoo.run(ctx, ["NVDA"], "1d", mon, dt.date(2024, 12, 31), client=c, now=now)
        assert s.ok, s.errors
        assert rejected() == [(dt.date(2023, 12, 29),), (tue,)]
    wed_evening = dt.datetime.combine(wed, dt.time(21), NY).astimezone(UTC)
    s = yahoo.run(ctx, ["NVDA"], "1d", mon, dt.date(2024, 12, 31), client=c, now=wed_evening)
    assert s.ok, s.errors
    assert rejected() == [(dt.date(2023, 12, 29),)]
    assert [b[0] for b in bars(lake_root)] == [mon, tue, wed]
    # the same day, fixed under the same name, is replaced too (not only when something is rejected again)
    session.charts[("NVDA", "1d")] = queue(
        (200, answer([mon, tue], bad_low=True)), (200, answer([mon, tue], bad_low=False))
    )
    for now in (tue_evening, tue_evening + dt.timedelta(hours=1)):
        assert yahoo.run(ctx, ["NVDA"], "1d", mon, tue, client=c, now=now).ok
    assert rejected() == [(dt.date(2023, 12, 29),)]


def test_refetching_a_window_keeps_only_the_split_files_the_cached_windows_name(lake_root: Path) -> None:
    # Every run that fetches a not-yet-final window again makes its own split look-up (as fresh as that
    # fetch); the look-ups no cached window names any more are removed, so an intraday refresh every 15
    # minutes does not add one file per run. A final window keeps the look-up it was read with.
    june3, june10 = dt.date(2024, 6, 3), dt.date(2024, 6, 10)

    def answer(symbol: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # three minutes of every weekday (each a session) up to period2: a complete answer
        monday = dt.datetime.fromtimestamp(int(params["period1"]), UTC).date()
        days = [monday + dt.timedelta(days=k) for k in range(5)]
        t = [epoch(dt.datetime.combine(d, dt.time(10, i), NY)) for d in days for i in range(3)]
        t = [x for x in t if x < int(params["period2"])]
        n = len(t)
        return 200, chart_payload("NVDA", "1m", t, open=[1.0] * n, high=[1.0] * n, low=[1.0] * n,
                                  close=[1.0] * n, volume=[7] * n)  # fmt: skip

    session = ReplaySession()
    session.charts[("NVDA", "1m")] = answer
    session.charts[("NVDA", yahoo.SPLITS_INTERVAL)] = queue((200, daily([], [], [], None)))
    c = yahoo.YahooClient(session=session, sleep=FakeSleep(), attempts=2, limiter=RateLimiter(10_000, 1.0))
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
    cache = lake_root / "raw" / "yahoo" / "NVDA"
    foreign = cache / "splits" / "mine.json"  # not a name this code writes: never touched
    foreign.parent.mkdir(parents=True)
    foreign.write_text("{}")

    def split_files() -> list[Path]:
        files = (cache / "splits").glob("*.json")
        return sorted(p for p in files if p != foreign and not p.name.endswith(".meta.json"))

    # June 11 01:00: the window of June 3..9 is fetched a day after its end (final), with its look-up
    assert yahoo.run(
        ctx, ["NVDA"], "1m", june3, june10, client=c, now=dt.datetime(2024, 6, 11, 1, tzinfo=UTC)
    ).ok
    [final_lookup] = split_files()
    # June 17 from 12:00 every 15 minutes: the window of June 10..16 (ended at midnight) is not final yet
    runs = 6
    for k in range(runs):
        now = dt.datetime(2024, 6, 17, 12, tzinfo=UTC) + dt.timedelta(minutes=15 * k)
        s = yahoo.run(ctx, ["NVDA"], "1m", june3, dt.date(2024, 6, 17), client=c, now=now)
        assert s.ok, s.errors
    assert len(session.split_calls()) == 1 + runs  # each refetch read with a look-up made by its own run
    first_window = [p for p in session.chart_calls() if p.params["period1"] == str(yahoo._midnight(june3))]
    assert len(first_window) == 1  # the final window is read from the cache, with the look-up it names
    files = split_files()
    assert len(files) == 2 and final_lookup in files
    assert foreign.exists()
    metas = sorted((cache / "splits").glob("*.json.meta.json"))
    assert [m.with_name(m.name.removesuffix(".meta.json")) for m in metas] == files
    named = set()
    for meta in (cache / "1m").glob("*.json.meta.json"):
        later = json.loads(meta.read_text()).get("splits_file")
        if later is not None:
            named.add(lake_root / "raw" / "yahoo" / later)
    assert named == set(files)


def test_pruning_split_lookups_keeps_what_a_window_names_and_stops_at_an_unreadable_meta(
    lake_root: Path,
) -> None:
    cache = RawCache(LakePaths(lake_root), "yahoo")
    old_day, named, unnamed = (f"NVDA/splits/{n}.json" for n in ("1-2024-06-10", "1-20240610T120000000000Z",
                                                                  "1-20240610T121500000000Z"))  # fmt: skip
    for rel in (old_day, named, unnamed, "NVDA/splits/notes.json"):
        cache.put(rel, b"{}")
    cache.put("NVDA/1m/1-2.json", b"{}", splits_file=named)
    broken = cache.meta_path("NVDA/1d/3-4.json")
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    assert yahoo._prune_splits(cache, "NVDA") == 0  # what the 1d window names is unknown: all kept
    broken.unlink()
    assert yahoo._prune_splits(cache, "NVDA") == 2
    left = sorted(p.name for p in (lake_root / "raw" / "yahoo" / "NVDA" / "splits").iterdir())
    assert left == ["1-20240610T120000000000Z.json", "1-20240610T120000000000Z.json.meta.json",
                    "notes.json", "notes.json.meta.json"]  # fmt: skip
