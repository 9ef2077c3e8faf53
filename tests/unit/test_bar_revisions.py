"""A republished vendor file replaces bars in place; the replaced rows are kept (issue 14, item 8):
`bar_revisions` shows the old values, when they were first and last seen and the file that replaced them,
while `bars` shows the latest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

import lake
from ingest.sessions import land
from lake.writer import replaced_bars
from tests.conftest import bars_table

T0 = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
PART = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}


def write(root: Path, table: pa.Table, file: str) -> None:
    with land(root) as w:
        w.write(lake.BARS, PART, table, mode="replace", inputs=[{"file": file, "sha256": file * 2}])


def rows(root: Path, sql: str) -> list[dict[str, Any]]:
    con = lake.connect(root, read_only=True)
    rel = con.sql(sql)
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_a_republished_file_keeps_the_values_it_replaced(lake_root: Path) -> None:
    before = dt.datetime.now(dt.UTC)
    write(lake_root, bars_table(T0, [100.0, 101.0, 102.0], source_file="day.zip"), "day.zip")
    between = dt.datetime.now(dt.UTC)
    # the vendor republishes the day: the second bar corrected, the third gone
    write(lake_root, bars_table(T0, [100.0, 101.5], source_file="day.zip"), "day.zip")
    after = dt.datetime.now(dt.UTC)

    current = rows(lake_root, "SELECT ts, close FROM bars ORDER BY ts")
    assert [(r["ts"], r["close"]) for r in current] == [(T0, 100.0), (T0 + dt.timedelta(minutes=1), 101.5)]
    revs = rows(lake_root, "SELECT * FROM bar_revisions ORDER BY ts")
    assert [(r["ts"], r["close"], r["version"], r["replaced_by"]) for r in revs] == [
        (T0 + dt.timedelta(minutes=1), 101.0, 1, "day.zip"),  # changed: the file that replaced it
        (T0 + dt.timedelta(minutes=2), 102.0, 1, "day.zip"),  # dropped by the file's new version
    ]
    for r in revs:
        assert r["symbol"] == "BTCUSDT" and r["source"] == "binance" and r["source_file"] == "day.zip"
        assert before <= r["first_seen"] <= between <= r["last_seen"] <= after, r
    assert lake.verify(lake_root) == []


def test_every_version_is_kept_and_an_unchanged_rewrite_adds_none(lake_root: Path) -> None:
    write(lake_root, bars_table(T0, [100.0], source_file="a.zip"), "a.zip")
    write(lake_root, bars_table(T0, [100.0], source_file="a.zip"), "a.zip")  # same values: no revision
    assert rows(lake_root, "SELECT * FROM bar_revisions") == []
    write(lake_root, bars_table(T0, [100.5], source_file="b.zip"), "b.zip")
    write(lake_root, bars_table(T0, [100.7], source_file="c.zip"), "c.zip")
    revs = rows(lake_root, "SELECT * FROM bar_revisions ORDER BY version")
    assert [(r["version"], r["close"], r["source_file"], r["replaced_by"]) for r in revs] == [
        (1, 100.0, "a.zip", "b.zip"),
        (2, 100.5, "b.zip", "c.zip"),
    ]
    # version 2 was first seen when it replaced version 1
    assert revs[1]["first_seen"] is not None and revs[1]["first_seen"] >= revs[0]["last_seen"]
    assert rows(lake_root, "SELECT close FROM bars") == [{"close": 100.7}]


def test_replaced_bars_ignores_a_new_file_name_with_the_same_values() -> None:
    old = bars_table(T0, [1.0, 2.0], source_file="daily.zip")
    new = bars_table(T0, [1.0, 2.0], source_file="monthly.zip")  # the month's file, same values
    assert replaced_bars(old, new).num_rows == 0
    changed = bars_table(T0, [1.0, 2.5], source_file="monthly.zip")
    got = replaced_bars(old, changed)
    assert got.column("close").to_pylist() == [2.0]
    assert got.column("__successor").to_pylist() == ["monthly.zip"]
