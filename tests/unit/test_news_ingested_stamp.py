"""ingested_at is the instant the lake had the article: taken per symbol after its response arrived, never
at the start of the run (an article published while the run was under way must not precede its own
publication in the lake)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ingest import news
from ingest.common import RunContext
from lake.config import Settings


def test_ingested_at_is_taken_after_each_symbols_response(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: dict[str, dt.datetime] = {}

    def fake_fetch(symbol: str, session: Any = None, **_: Any) -> list[Any]:
        # the article is published now, i.e. after the run started (and after the previous symbol's fetch)
        start = dt.datetime.now(dt.UTC)
        while (t := dt.datetime.now(dt.UTC)) <= start:
            pass
        published[symbol] = t
        return [
            {
                "id": f"{symbol}-1",
                "content": {
                    "title": f"{symbol} rallies",
                    "pubDate": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "provider": {"displayName": "Wire"},
                },
            }
        ]

    monkeypatch.setattr(news, "fetch_yahoo_news", fake_fetch)
    summary = news.run(RunContext(root=lake_root, settings=Settings(), quiet=True), ["AAPL", "MSFT"])
    assert not summary.errors, summary.errors
    for symbol in ("AAPL", "MSFT"):
        files = list((lake_root / "datasets" / "news").glob(f"symbol={symbol}/*.parquet"))
        assert files, symbol
        rows = pq.read_table(files[0]).to_pylist()
        assert len(rows) == 1
        got_published = rows[0]["published_at"]
        # pubDate may be parsed to a coarser precision; it is never later than the real instant
        assert got_published <= published[symbol]
        assert rows[0]["ingested_at"] >= published[symbol], (
            f"{symbol}: ingested_at {rows[0]['ingested_at']} precedes the article's publication"
        )
