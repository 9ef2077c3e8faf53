"""market_context carries no stale news (issue 14, item 9): SPY/QQQ sentiment and counts older than
max_news_age_minutes (default one day) at a bar are NULL, like stale bars."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import lake
from ingest.sessions import land
from lake.config import Settings
from lake.schemas import NEWS
from tests.conftest import bars_table
from tests.unit.test_news_asof import Art, news_table

UTC = dt.UTC
SPY_ARTICLE = dt.datetime(2023, 3, 28, 14, 5, tzinfo=UTC)
BTC_BAR = dt.datetime(2024, 9, 21, 12, 0, tzinfo=UTC)  # a Saturday: no SPY bar, no SPY news for 18 months


@pytest.fixture
def stale_lake(lake_root: Path) -> Path:
    with land(lake_root) as w:
        w.write(
            lake.BARS,
            {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-09"},
            bars_table(BTC_BAR, [63000.0, 63010.0]),
        )
        w.write(NEWS, {"symbol": "SPY"}, news_table([Art("SPY", "a1", SPY_ARTICLE, SPY_ARTICLE, 0.4215)]))
        w.write(
            NEWS,
            {"symbol": "QQQ"},
            news_table([Art("QQQ", "q1", BTC_BAR - dt.timedelta(hours=3), BTC_BAR, -0.25)]),
        )
    return lake_root


def context(root: Path, settings: Settings) -> list[dict[str, Any]]:
    con = lake.connect(root, read_only=True, settings=settings)
    rel = con.sql("SELECT * FROM market_context WHERE symbol = 'BTCUSDT' ORDER BY ts")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_an_article_of_last_year_gives_no_sentiment_today(stale_lake: Path) -> None:
    rows = context(stale_lake, Settings())
    assert len(rows) == 2
    for row in rows:
        assert row["spy_sentiment_last"] is None, row
        assert row["spy_news_count_1d"] is None and row["spy_sentiment_mean_1d"] is None, row
        # QQQ's article is three hours old: fresh, carried
        assert row["qqq_sentiment_last"] == pytest.approx(-0.25)
        assert row["qqq_news_count_1d"] == 1 and row["qqq_sentiment_mean_1d"] == pytest.approx(-0.25)


def test_the_age_limit_is_the_setting(stale_lake: Path) -> None:
    two_years = Settings(max_news_age_minutes=2 * 366 * 1440)
    row = context(stale_lake, two_years)[0]
    assert row["spy_sentiment_last"] == pytest.approx(0.4215)  # carried: the setting allows it
    assert row["spy_news_count_1d"] == 0  # none in the last day, and the state is not stale
    two_hours = Settings(max_news_age_minutes=120)
    row = context(stale_lake, two_hours)[0]
    assert row["qqq_sentiment_last"] is None and row["qqq_news_count_1d"] is None  # three hours old: stale


def test_the_setting_is_read_from_marketlake_toml(tmp_path: Path) -> None:
    from lake.config import load_settings

    cfg = tmp_path / "m.toml"
    cfg.write_text("[data]\nmax_news_age_minutes = 60\n")
    assert load_settings(cfg).max_news_age_minutes == 60
    cfg.write_text("[data]\nmax_news_age_minutes = -1\n")
    with pytest.raises(lake.MarketlakeError, match="max_news_age_minutes"):
        load_settings(cfg)
