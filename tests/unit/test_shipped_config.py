"""The shipped marketlake.toml covers what a user expects at the seed's scale (issue 13)."""

from __future__ import annotations

from pathlib import Path

from ingest.stamping import asset_class
from lake.config import load_settings

SHIPPED = Path(__file__).resolve().parents[2] / "marketlake.toml"


def test_us_stocks_across_sectors_plus_spy_and_qqq_from_polygon_with_yahoo_as_backup() -> None:
    s = load_settings(SHIPPED)
    stocks = [x for x in s.polygon.symbols if asset_class(x, s.etfs) == "stock"]
    assert len(set(stocks)) >= 25
    assert {"SPY", "QQQ"} <= set(s.polygon.symbols)
    assert set(s.yahoo.symbols) == set(s.polygon.symbols)
    assert set(s.news.symbols) >= set(s.polygon.symbols)


def test_twenty_or_more_major_crypto_pairs_from_binance() -> None:
    s = load_settings(SHIPPED)
    pairs = set(s.binance.symbols)
    assert len(pairs) >= 20
    assert all(p.endswith("USDT") and p.isupper() for p in pairs)
    assert {"BTCUSDT", "ETHUSDT"} <= pairs


def test_the_shipped_train_table_sets_nothing_a_run_would_warn_of() -> None:
    """A newcomer's first `marketlake train` with the shipped file says no warning of the file's own: no
    [train] key that the chosen settings do not read (a slippage parameter of the other mode)."""
    from rl.train import unused_settings

    s = load_settings(SHIPPED)
    assert unused_settings(s) == []
