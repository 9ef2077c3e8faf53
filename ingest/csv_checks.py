"""Lake-level checks of an `ingest csv` import, called by ingest/csv.py around its parsing and landing.

A file's rows can be each right and still be wrong beside what the lake holds. These checks compare the
parsed file with the lake, before anything of it is written:

- **Adjusted prices** (`check_prices`): a split- or dividend-adjusted file (Yahoo's export) filling a
  vendor's gaps bar by bar would mix adjusted and traded prices (AAPL 435.75, 438.66, 110.06, 455.61: a fake
  -75% then +314%). Where the lake holds bars of the same symbol and interval from other files (other
  sources, and other files of this import's source), the closes of the bars both hold are compared
  (sql/ingest/csv_price_agreement.sql); when, for one source, the median ratio of the file's close to
  theirs is off 1 by more than PRICE_TOLERANCE (0.5%), the file is refused, one line naming the symbol, the
  typical ratio, an example time with both closes and the likely cause; `--allow-price-mismatch` lands it
  anyway (with a note). No bar in common: nothing to compare, the file lands.
- **Bars of another file of the same source** (`overlap_notes`): a source's partition keeps one bar per time,
  the last file landed wins (lake/writer.py, the bars' `keep = last`). A note names how many bars of which
  earlier file this file replaces with other values (sql/ingest/csv_same_source_overlap.sql).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.common import IngestSummary, RunContext, interval_delta
from ingest.stamping import NEW_YORK
from lake.connect import sql_dir
from lake.errors import MarketlakeError
from lake.schemas import BARS, UTC_TS

PRICE_TOLERANCE = 0.005
"""A file whose closes are, for one source, typically (the median ratio over the bars both hold) more than
this far from that source's (0.5%) is refused: vendors' closes of one bar agree to a few hundredths of a
percent; an adjusted file's differ by a split's ratio or by the dividends since (a percent or more a few
years back)."""
PRICE_FLAG = "--allow-price-mismatch"


@cache
def _sql(name: str) -> str:
    return (sql_dir() / "ingest" / f"{name}.sql").read_text(encoding="utf-8")


def _bar_files(ctx: RunContext, symbol: str, interval: str) -> list[str]:
    """The data files of every source's bars partitions of `symbol` at `interval`."""
    base = ctx.paths.dataset(BARS.name)
    if not base.is_dir():
        return []
    out = []
    for source_dir in sorted(base.iterdir()):
        where = source_dir / f"interval={interval}" / f"symbol={symbol}"
        if not (source_dir.name.startswith("source=") and where.is_dir()):
            continue
        out += [
            str(p / "data.parquet")
            for p in sorted(where.iterdir())
            if p.name.startswith("period=") and (p / "data.parquet").is_file()
        ]
    return out


def _incoming(bars: Sequence[dict[str, Any]]) -> pa.Table:
    """The parsed bars as a table (ts and their values), for DuckDB."""
    return pa.table(
        {
            "ts": pa.array([b["ts"] for b in bars], type=UTC_TS),
            **{k: pa.array([b[k] for b in bars], type=pa.float64()) for k in _VALUES},
            "trades": pa.array([b["trades"] for b in bars], type=pa.int64()),
        }
    )


_VALUES = ("open", "high", "low", "close", "volume")


def _file_name(source_file: str) -> str:
    """`csv:AAPL/1d/a.csv` -> `a.csv`; another source's file name as it is."""
    return source_file.rsplit("/", 1)[-1] if ":" in source_file else source_file


def _when(ts: dt.datetime, interval: str, asset_class: str) -> str:
    """A bar's time in a message: its trading day for daily bars, else its UTC instant."""
    if interval_delta(interval) >= dt.timedelta(days=1):
        return str(ts.astimezone(dt.UTC if asset_class == "crypto" else NEW_YORK).date())
    return ts.astimezone(dt.UTC).isoformat()


def before_landing(
    ctx: RunContext,
    path: Path,
    bars: Sequence[dict[str, Any]],
    summary: IngestSummary,
    *,
    symbol: str,
    interval: str,
    source: str,
    source_file: str,
    asset_class: str,
    allow_price_mismatch: bool = False,
) -> None:
    """Every check of a parsed file against the lake, before it lands: raises MarketlakeError (nothing
    stored) for prices that disagree with the lake's (`check_prices`), adds the notes to `summary`."""
    files = _bar_files(ctx, symbol, interval) if bars else []
    if not files:
        return
    table = _incoming(bars)
    con = duckdb.connect()
    try:
        con.register("incoming", table)
        span = pc.min_max(table.column("ts")).as_py()
        params = {
            "files": files,
            "symbol": symbol,
            "interval": interval,
            "source_file": source_file,
            "first": span["min"],
            "last": span["max"],
        }
        mismatch = check_prices(
            con.execute(_sql("csv_price_agreement"), params).fetchall(),
            path,
            symbol=symbol,
            interval=interval,
            source=source,
            asset_class=asset_class,
            allow=allow_price_mismatch,
        )
        if mismatch:
            summary.notes.append(mismatch)
        overlap = con.execute(_sql("csv_same_source_overlap"), {**params, "source": source}).fetchall()
    except duckdb.Error as exc:
        summary.notes.append(
            f"{path.name}: could not compare its bars with the lake's ({str(exc).splitlines()[0]}); it lands "
            "unchecked"
        )
        return
    finally:
        con.close()
    summary.notes += overlap_notes(
        overlap, path, symbol=symbol, interval=interval, source=source, asset_class=asset_class
    )


def check_prices(
    rows: Sequence[tuple[Any, ...]],
    path: Path,
    *,
    symbol: str,
    interval: str,
    source: str,
    asset_class: str,
    allow: bool,
) -> str | None:
    """Raise MarketlakeError for the first source (the furthest off) whose typical ratio is off 1 by more than
    PRICE_TOLERANCE; with `allow`, return a note saying the file landed anyway. `rows`: per source, (source,
    bars both hold, median ratio, an example time, this file's close, theirs) from csv_price_agreement.sql."""
    for other, n, ratio, ts, mine, theirs in rows:
        if ratio is None or abs(ratio - 1) <= PRICE_TOLERANCE:
            continue
        whose = f"{other} bars" if other != source else f"bars of other {source} files"
        said = (
            f"{symbol} {interval} closes disagree with the lake's {whose}: this file's are typically "
            f"{ratio:.4g}x theirs (the median over the {n} bar{'s' if n != 1 else ''} both hold; e.g. "
            f"{_when(ts, interval, asset_class)}: {mine:g} here, {theirs:g} in {other})"
        )
        if allow:
            return f"{path.name}: {said}; landed anyway ({PRICE_FLAG})"
        raise MarketlakeError(
            f"{path}: {said}: its prices look adjusted (split- or dividend-adjusted, as Yahoo's export), not "
            "the prices that traded, and would fill gaps between traded prices with a fake jump at each; "
            f"nothing was stored (if its prices are right, import it with {PRICE_FLAG})"
        )
    return None


def overlap_notes(
    rows: Sequence[tuple[Any, ...]],
    path: Path,
    *,
    symbol: str,
    interval: str,
    source: str,
    asset_class: str,
) -> list[str]:
    """A note per earlier file of the same source whose bars this file replaces with other values. `rows`:
    (source_file, how many, the earliest time, this file's close, theirs) from csv_same_source_overlap.sql."""
    out = []
    for other, n, ts, mine, theirs in rows:
        name = _file_name(other)
        out.append(
            f"{path.name}: {n} {symbol} {interval} bar{'s' if n != 1 else ''} held by {name} replaced by this "
            f"file's (values differ; e.g. {_when(ts, interval, asset_class)}: close {theirs:g} in {name}, "
            f"{mine:g} here): source {source} keeps one bar per time, of the file imported last (importing "
            f"{name} again puts its values back); bar_revisions keeps the replaced ones; import one of them "
            "with another --source to keep both"
        )
    return out
