"""`ingest news`: recorded Yahoo responses replayed through yfinance's session seam (no request leaves the
machine): both item shapes land, scored; re-runs keep what was seen, the first ingested_at, and count
changed titles; failures name the symbol."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ingest.news as news
import lake
from cli import cli
from ingest.common import RunContext
from ingest.ratelimit import RateLimiter
from ingest.sentiment import score
from ingest.sessions import land
from lake.config import Settings
from lake.writer import verify
from tests.conftest import bars_table
from tests.news_replay import (
    ReplayAdapter,
    Reply,
    isolate_yfinance,
    ncp_body,
    new_item,
    old_item,
    replay_session,
)

RUN1 = dt.datetime(2025, 5, 10, 13, 0, tzinfo=dt.UTC)
RUN2 = dt.datetime(2025, 5, 10, 14, 0, tzinfo=dt.UTC)

AAPL_NEW = [
    new_item(
        "a1b2c3d4-0001-4e6f-9a0b-000000000001",
        "Apple beats estimates as iPhone sales surge",
        "2025-05-10T12:23:14Z",
        summary="Strong demand lifted revenue to a record.",
        provider="Reuters",
    ),
    new_item(
        "a1b2c3d4-0002-4e6f-9a0b-000000000002",
        "Apple faces lawsuit over App Store fees",
        "2025-05-10T11:05:00Z",
        summary=None,
        provider="Bloomberg",
    ),
]
MSFT_OLD = [
    old_item(
        "9f8e7d6c-0001-4aaa-8bbb-000000000001",
        "Microsoft shares fall after weak cloud results, a terrible quarter",
        1746878594,  # 2025-05-10T12:03:14Z
        tickers=["MSFT"],
    ),
]


@pytest.fixture(autouse=True)
def _offline_yfinance(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from isolate_yfinance(monkeypatch)


def ctx_for(root: Path) -> RunContext:
    return RunContext(root=root, settings=Settings(), quiet=True)


def no_wait() -> RateLimiter:
    return RateLimiter(100, 1.0)


def rows(root: Path, where: str = "true") -> list[dict[str, Any]]:
    con = lake.connect(root, read_only=True)
    rel = con.sql(f"SELECT * FROM news WHERE {where} ORDER BY symbol, published_at, id")
    cols = rel.columns
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def test_both_item_shapes_land_scored_through_the_session_seam(lake_root: Path) -> None:
    adapter = ReplayAdapter(
        news={"AAPL": [Reply(200, ncp_body(AAPL_NEW))], "MSFT": [Reply(200, ncp_body(MSFT_OLD))]}
    )
    summary = news.run(
        ctx_for(lake_root), ["AAPL", "MSFT"], session=replay_session(adapter), now=RUN1, limiter=no_wait()
    )
    assert summary.ok, summary.errors
    assert summary.of("AAPL").rows_landed == 2 and summary.of("MSFT").rows_landed == 1

    got = rows(lake_root)
    by_id = {r["id"]: r for r in got}
    a = by_id["a1b2c3d4-0001-4e6f-9a0b-000000000001"]
    assert a["symbol"] == "AAPL"
    assert a["published_at"] == dt.datetime(2025, 5, 10, 12, 23, 14, tzinfo=dt.UTC)
    assert a["ingested_at"] == RUN1
    assert a["title"] == "Apple beats estimates as iPhone sales surge"
    assert a["summary"] == "Strong demand lifted revenue to a record."
    assert a["publisher"] == "Reuters"
    assert a["url"] == "https://finance.yahoo.com/news/a1b2c3d4-0001-4e6f-9a0b-000000000001.html"
    assert a["source"] == "yahoo"
    assert a["sentiment"] == score(a["title"], a["summary"]) > score(a["title"]) == 0.0  # summary counts
    assert by_id["a1b2c3d4-0002-4e6f-9a0b-000000000002"]["summary"] is None
    m = by_id["9f8e7d6c-0001-4aaa-8bbb-000000000001"]
    assert m["symbol"] == "MSFT"
    assert m["published_at"] == dt.datetime(2025, 5, 10, 12, 3, 14, tzinfo=dt.UTC)
    assert m["publisher"] == "Motley Fool"
    assert m["url"] == "https://finance.yahoo.com/m/9f8e7d6c-0001-4aaa-8bbb-000000000001/story.html"
    assert m["sentiment"] == score(m["title"]) < 0

    # what yfinance sent: one news request per symbol, the right query and body, the replayed crumb
    sent = adapter.news_requests()
    assert [b["serviceConfig"]["s"] for _, b in sent] == [["AAPL"], ["MSFT"]]
    for query, body in sent:
        assert query["queryRef"] == ["latestNews"] and query["crumb"] == ["replayed-crumb"]
        assert body["serviceConfig"]["snippetCount"] == news.YAHOO_NEWS_COUNT
    # the response as served is kept under raw/, and the lake's manifests still verify
    raw = sorted((lake_root / "raw" / "news" / "yahoo" / "AAPL").glob("*Z.json"))
    assert len(raw) == 1 and len(json.loads(raw[0].read_bytes())) == 2
    assert verify(lake_root) == []


def test_reruns_keep_first_seen_and_count_title_changes(lake_root: Path) -> None:
    adapter = ReplayAdapter(news={"AAPL": [Reply(200, ncp_body(AAPL_NEW))]})
    s1 = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert s1.ok and s1.of("AAPL").rows_landed == 2
    before = rows(lake_root)

    # Second run: Yahoo no longer serves item 2, retitled item 1, and serves a new item 3.
    retitled = new_item(
        "a1b2c3d4-0001-4e6f-9a0b-000000000001",
        "UPDATE: Apple beats estimates, shares slip after hours",
        "2025-05-10T12:23:14Z",
    )
    third = new_item(
        "a1b2c3d4-0003-4e6f-9a0b-000000000003", "Apple to hold developer event", "2025-05-10T13:40:00Z"
    )
    adapter.news["AAPL"] = [Reply(200, ncp_body([third, retitled]))]
    s2 = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN2, limiter=no_wait())
    assert s2.ok, s2.errors
    assert s2.of("AAPL").rows_landed == 1
    assert s2.duplicates["AAPL"] == 1 and s2.title_changes["AAPL"] == 1
    assert any("different title" in n and "a1b2c3d4-0001" in n for n in s2.notes), s2.notes

    after = {r["id"]: r for r in rows(lake_root)}
    assert len(after) == 3  # nothing seen before is lost
    for old in before:
        assert after[old["id"]] == old  # first title, first ingested_at, first score
    assert after["a1b2c3d4-0003-4e6f-9a0b-000000000003"]["ingested_at"] == RUN2

    # A third run that sees nothing new writes nothing and still counts the changed title.
    s3 = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN2, limiter=no_wait())
    assert s3.of("AAPL").rows_landed == 0 and s3.title_changes["AAPL"] == 1
    assert {r["id"]: r for r in rows(lake_root)} == after


def test_bad_items_are_reported_and_good_ones_land(lake_root: Path) -> None:
    no_time = new_item("b-0001", "Apple headline without a date", "2025-05-10T10:00:00Z")
    del no_time["content"]["pubDate"]
    naive = new_item("b-0002", "Apple headline with a naive date", "2025-05-10T10:00:00")
    millis = old_item("b-0003", "Apple headline in milliseconds", 1746878594000)
    unknown = {"headline": "what is this"}
    adapter = ReplayAdapter(
        news={"AAPL": [Reply(200, ncp_body([no_time, naive, millis, unknown, *AAPL_NEW]))]}
    )
    s = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert not s.ok
    assert s.of("AAPL").rows_landed == 2 and s.of("AAPL").rows_rejected == 4
    text = "\n".join(s.errors)
    assert "AAPL: Yahoo news item 1: no timestamp" in text
    assert "item 2: pubDate '2025-05-10T10:00:00' has no UTC offset" in text
    assert "item 3: providerPublishTime 1746878594000 is not epoch seconds" in text
    assert "item 4: unknown item shape (keys: headline)" in text
    assert len(rows(lake_root)) == 2


def test_rate_limit_is_retried_with_backoff(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(news, "RATE_LIMIT_WAIT_SECONDS", 0.0)
    too_many = Reply(429, b"Too Many Requests", "text/plain")
    # yfinance retries a >= 400 answer once itself before raising its rate-limit error: two 429s per error.
    adapter = ReplayAdapter(news={"AAPL": [too_many, too_many, Reply(200, ncp_body(AAPL_NEW))]})
    limiter = no_wait()
    s = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=limiter)
    assert s.ok, s.errors
    assert s.of("AAPL").rows_landed == 2
    assert len(adapter.news_requests()) == 3
    assert len(limiter._calls) == 2  # every attempt went through the shared limiter


def test_rate_limit_that_persists_fails_the_symbol_only(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(news, "RATE_LIMIT_WAIT_SECONDS", 0.0)
    adapter = ReplayAdapter(
        news={
            "AAPL": [Reply(429, b"Too Many Requests", "text/plain")],
            "MSFT": [Reply(200, ncp_body(MSFT_OLD))],
        }
    )
    s = news.run(
        ctx_for(lake_root), ["AAPL", "MSFT"], session=replay_session(adapter), now=RUN1, limiter=no_wait()
    )
    assert not s.ok
    assert len(s.errors) == 1 and s.errors[0].startswith(
        "AAPL: the Yahoo news request failed: YFRateLimitError"
    )
    assert s.of("AAPL").files_failed == 1 and s.of("MSFT").rows_landed == 1


def test_faulty_response_is_an_error_not_silence(lake_root: Path) -> None:
    adapter = ReplayAdapter(
        news={"AAPL": [Reply(200, b"<html>Will you accept cookies?</html>", "text/html")]}
    )
    s = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert not s.ok
    assert "AAPL: the Yahoo news request failed" in s.errors[0] and "faulty response" in s.errors[0]


def test_cli_ingest_news(runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with land(lake_root) as w:
        part = {"source": "yahoo", "interval": "1d", "symbol": "AAPL", "period": "2025"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2025, 5, 9, 13, 30, tzinfo=dt.UTC), [200.0]))
    adapter = ReplayAdapter(
        news={"AAPL": [Reply(200, ncp_body(AAPL_NEW))], "MSFT": [Reply(200, ncp_body(MSFT_OLD))]}
    )
    monkeypatch.setattr(news, "yahoo_session", lambda: replay_session(adapter))
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "news", "--symbols", "AAPL,MSFT"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())  # rich wraps long lines
    # MSFT has no bars: stored, with a note naming it; AAPL has bars: no note
    assert "note: MSFT: no bars of MSFT in the lake; its articles are stored" in out
    assert "AAPL: no bars" not in out
    r = runner.invoke(
        cli,
        [
            "--lake",
            str(lake_root),
            "sql",
            "SELECT symbol, count(*) AS n FROM news GROUP BY 1 ORDER BY 1",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"symbol": "AAPL", "n": 2}, {"symbol": "MSFT", "n": 1}]


def test_cli_refuses_hostile_symbols(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = ReplayAdapter()
    monkeypatch.setattr(news, "yahoo_session", lambda: replay_session(adapter))
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "news", "--symbols", "AAPL,../../etc"])
    assert r.exit_code == 1, r.output
    assert "invalid symbol '../../etc'" in r.output
    assert adapter.requests == []
    assert not (lake_root / "datasets" / "news").exists() or not list(
        (lake_root / "datasets" / "news").glob("symbol=AAPL")
    )


def test_share_class_is_asked_in_yahoo_spelling_and_stored_under_the_lake_symbol(lake_root: Path) -> None:
    # Yahoo spells share classes with a dash (BRK-B), the lake with a dot (BRK.B), as the price ingest does
    adapter = ReplayAdapter(
        news={
            "BRK-B": [
                Reply(200, ncp_body([new_item("brk-1", "Berkshire buys more", "2025-05-10T12:00:00Z")]))
            ],
            "BRK.B": [Reply(200, ncp_body([new_item("brk-2", "served for BRK.B", "2025-05-10T12:00:00Z")]))],
        }
    )
    s = news.run(ctx_for(lake_root), ["BRK.B"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert s.ok, s.errors
    assert [b["serviceConfig"]["s"] for _, b in adapter.news_requests()] == [["BRK-B"]]
    assert [(r["symbol"], r["id"]) for r in rows(lake_root)] == [("BRK.B", "brk-1")]
    assert s.of("BRK.B").rows_landed == 1 and list(s.symbols) == ["BRK.B"]


def test_cli_ingest_news_summary_shows_seen_known_and_title_changed(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the README promises a changed title "is counted in the summary (`title changed`)"
    adapter = ReplayAdapter(news={"AAPL": [Reply(200, ncp_body(AAPL_NEW))]})
    monkeypatch.setattr(news, "yahoo_session", lambda: replay_session(adapter))
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "news", "--symbols", "AAPL"])
    assert r.exit_code == 0, r.output
    retitled = new_item(
        "a1b2c3d4-0001-4e6f-9a0b-000000000001", "UPDATE: Apple beats estimates", "2025-05-10T12:23:14Z"
    )
    adapter.news["AAPL"] = [Reply(200, ncp_body([retitled, AAPL_NEW[1]]))]
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "news", "--symbols", "AAPL"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    for column in ("seen", "already", "title", "changed"):
        assert column in out, r.output
    row = next(line for line in r.output.splitlines() if "AAPL" in line and "│" in line)
    # symbol, articles seen 2, new 0, already known 2, title changed 1, rejected 0, failed 0
    assert [c.strip() for c in row.strip("│ ").split("│")] == ["AAPL", "2", "0", "2", "1", "0", "0"], r.output


YAHOO_500 = json.dumps(
    {"finance": {"result": None, "error": {"code": "internal-error", "description": "Internal Server Error"}}}
).encode()


def test_an_error_status_fails_the_symbol_not_read_as_no_news(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Yahoo's news endpoint answers 500 with its JSON error body: yfinance's get_news reads it as no news
    adapter = ReplayAdapter(news={"AAPL": [Reply(500, YAHOO_500)], "MSFT": [Reply(200, ncp_body(MSFT_OLD))]})
    monkeypatch.setattr(news, "yahoo_session", lambda: replay_session(adapter))
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest", "news", "--symbols", "AAPL,MSFT"])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "AAPL: the Yahoo news request failed: Yahoo answered HTTP 500: Internal Server Error" in out, out
    assert "MSFT" not in out.split("error:", 1)[1]  # MSFT's answer was good: it landed
    assert [r["symbol"] for r in rows(lake_root)] == ["MSFT"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            {"data": {"tickerStreamV2": {"stream": [AAPL_NEW[0]]}}, "status": "OK"},
            "data has no 'tickerStream' (it has: tickerStreamV2)",
        ),
        ({"status": "OK"}, "the answer has no 'data' (it has: status)"),
        ({"data": {"tickerStream": {"stream": {"0": AAPL_NEW[0]}}}}, "stream is a dict, not a list"),
        (
            {"data": {"tickerStream": {"pagination": {}}}},
            "data.tickerStream has no 'stream' (it has: pagination)",
        ),
        ([], "the answer has no 'data' (it has: list)"),
    ],
)
def test_an_answer_without_the_news_stream_fails_the_symbol(lake_root: Path, body: Any, why: str) -> None:
    adapter = ReplayAdapter(news={"AAPL": [Reply(200, json.dumps(body).encode())]})
    s = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert not s.ok and s.of("AAPL").files_failed == 1
    assert len(s.errors) == 1 and s.errors[0].startswith(
        "AAPL: the Yahoo news request failed: a faulty response"
    )
    assert why in s.errors[0], s.errors[0]
    assert not (lake_root / "datasets" / "news").exists()  # nothing landed


def test_a_well_formed_empty_stream_is_no_news(lake_root: Path) -> None:
    adapter = ReplayAdapter(news={"AAPL": [Reply(200, ncp_body([]))]})
    s = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert s.ok, s.errors
    assert s.seen.get("AAPL", 0) == 0 and s.of("AAPL").files_failed == 0


def test_an_ad_in_the_stream_is_dropped_as_yfinance_drops_it(lake_root: Path) -> None:
    ad = {**new_item("ad-1", "Buy now", "2025-05-10T12:00:00Z"), "ad": [{"x": 1}]}
    adapter = ReplayAdapter(news={"AAPL": [Reply(200, ncp_body([ad, AAPL_NEW[0]]))]})
    s = news.run(ctx_for(lake_root), ["AAPL"], session=replay_session(adapter), now=RUN1, limiter=no_wait())
    assert s.ok, s.errors
    assert [r["id"] for r in rows(lake_root)] == [AAPL_NEW[0]["id"]]
