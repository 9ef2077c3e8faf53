"""One file imported for several symbols (Kaggle's all-tickers file) keeps its bytes once in the raw cache:
raw/<source>/<symbol>/<interval>/<name> of each symbol is a hard link to the first copy
(ingest/csv_checks.py `keep_raw`), its sidecar as ever; other bytes under the same name get their own copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import csv as csv_ingest
from ingest import csv_checks
from ingest.common import RawCache, RunContext
from lake.config import Settings
from lake.paths import LakePaths

ALL_TICKERS = (
    "date,open,high,low,close,volume,Name\n"
    "2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL\n"
    "2013-02-11,14.89,15.01,14.26,14.46,8882000,AAL\n"
    "2013-02-08,67.7142,68.4014,66.8928,67.8542,158168416,AAPL\n"
    "2013-02-11,68.0714,69.2771,67.6071,68.5614,129029425,AAPL\n"
)


def ctx(root: Path) -> RunContext:
    return RunContext(root, Settings(), quiet=True)


def test_two_symbols_from_one_file_share_one_raw_copy(lake_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "all_stocks_5yr.csv"
    path.write_text(ALL_TICKERS)
    for symbol in ("AAL", "AAPL"):
        assert csv_ingest.run(ctx(lake_root), path, symbol, "1d").ok
    aal, aapl = (lake_root / "raw" / "csv" / s / "1d" / "all_stocks_5yr.csv" for s in ("AAL", "AAPL"))
    assert aal.read_text() == aapl.read_text() == ALL_TICKERS
    assert aal.stat().st_ino == aapl.stat().st_ino and aal.stat().st_nlink == 2
    for raw in (aal, aapl):  # each sidecar as ever: its sha256, its own periods and landing
        meta = json.loads(raw.with_name(raw.name + ".meta.json").read_text())
        assert meta["bytes"] == len(ALL_TICKERS.encode()) and meta["landed"]["periods"] == {"2013": 2}
    # the file changed: the next symbol's copy is its own, the earlier two keep their bytes
    path.write_text(ALL_TICKERS.replace("15.07", "15.08"))
    assert csv_ingest.run(ctx(lake_root), path, "AAL", "1d").ok
    assert aal.stat().st_ino != aapl.stat().st_ino and aapl.read_text() == ALL_TICKERS


def test_a_copy_where_no_link_can_be_made(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = RawCache(LakePaths(lake_root), "csv")
    first = csv_checks.keep_raw(cache, "A/1d/f.csv", b"x,y\n1,2\n", source="f.csv")

    def no_link(*_: object) -> None:
        raise OSError("links not supported")

    monkeypatch.setattr(csv_checks.os, "link", no_link)
    second = csv_checks.keep_raw(cache, "B/1d/f.csv", b"x,y\n1,2\n", source="f.csv")
    assert second.path.read_bytes() == b"x,y\n1,2\n" and second.path.stat().st_ino != first.path.stat().st_ino
    assert cache.get("B/1d/f.csv") is not None and not list(second.path.parent.glob("*.tmp-*"))
