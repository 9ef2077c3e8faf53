"""Lake-level checks of an `ingest csv` import, called by ingest/csv.py around its parsing and landing.

A file's rows can be each right and still be wrong beside what the lake holds. These checks compare the
parsed file with the lake, before anything of it is written:

- **Adjusted prices** (`check_prices`): a split- or dividend-adjusted file (Yahoo's export) filling a
  vendor's gaps bar by bar would mix adjusted and traded prices (AAPL 435.75, 438.66, 110.06, 455.61: a fake
  -75% then +314%). Where the lake holds bars of the same symbol and interval from other files (other
  sources, and other files of this import's source), the closes of the bars both hold are compared
  (sql/ingest/csv_price_agreement.sql). Two closes differ when further apart than the larger of
  PRICE_TOLERANCE (0.5%) and PRICE_TICKS (two cents) over their close. For one source, the file is refused
  when the disagreement is steady: at least PRICE_MIN_BARS (10) shared bars of which at least STEADY_SHARE
  (80%) differ in the direction of the median ratio, or at least FAR_MIN_BARS (3) shared bars all differing
  in that direction with a median ratio more than FAR_OFF (10%) from 1 (a split's 0.25). The refusal is one
  line naming the symbol, the typical ratio, an example time with both closes and the likely cause
  (adjusted prices; for crypto, another venue or quote currency); `--allow-price-mismatch` lands it anyway
  (with a note). Fewer shared bars, or differences that are not steady: no verdict, the file lands (a note
  says when most shared bars differed but were too few to judge). No bar in common: the file lands.
- **Bars of another file of the same source** (`overlap_notes`): a source's partition keeps one bar per time,
  the last file landed wins (lake/writer.py, the bars' `keep = last`). A note names how many bars of which
  earlier file this file replaces with other values (sql/ingest/csv_same_source_overlap.sql).
- **Plausibility of a stock's intraday file** (`plausibility_notes`): a note when more than
  OUTSIDE_SHARE of the bars start outside 09:30-16:00 New York (a wrong `--tz`, or a crypto file stored as a
  stock; a full extended-hours export has about 60% outside), and when no session has a 09:30 bar while
  most sessions end with a 16:00 bar (bars stamped by their end, not their start).
- **Binance symbols** (`binance_note`): a note when a symbol listed under [binance] in the settings lands as
  a stock or ETF because `--asset-class` was not given (the default stays explicit: a stock or ETF unless
  told; a crypto file with weekend rows is refused anyway, naming --asset-class crypto).
- **An unchanged file is not read again** (`unchanged`, `Checked.record`): the raw cache keeps each imported
  file with its sha256 (`raw/<source>/<symbol>/<interval>/<name>.meta.json`); after a landing, its
  `landed` entry records the options (`--tz`, the asset class, `--date-order`), a digest of the code that
  parsed it (`code_digest`: ingest/csv.py, every ingest/ and lake/ module it imports, sql/ingest/csv_*.sql,
  and the versions of exchange_calendars, pandas, pyarrow, duckdb and numpy), the bars landed per period and
  the notes. A file of the same name, bytes and options, whose bars the lake still holds (the same count of
  its rows in each partition, each partition intact and its manifest naming the file with that sha256), is
  skipped before parsing: the same summary, nothing read.
- **Identical raw copies kept once** (`keep_raw`): one file imported for many symbols (Kaggle's
  all_stocks_5yr.csv, 501 tickers) is kept under raw/<source>/<symbol>/<interval>/<name> for each; where a
  copy of the same name and sha256 is already kept under raw/<source>/, the new one is a hard link to it
  (one copy of the bytes on disk), a plain copy where a link cannot be made. The layout and the
  `.meta.json` sidecars are as ever; every write of the raw cache replaces a file by a rename, never in
  place, so a later write to one name leaves the other's bytes alone.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.common import CachedFile, IngestSummary, RawCache, RunContext, interval_delta
from ingest.stamping import NEW_YORK
from lake.config import Settings
from lake.connect import sql_dir
from lake.errors import MarketlakeError
from lake.schemas import BARS, BARS_REJECTED, UTC_TS
from lake.writer import (
    TMP_MARK,
    atomic_write_bytes,
    manifest_inputs,
    partition_dir,
    partition_intact,
    sha256_file,
)

PRICE_TOLERANCE = 0.005
"""A shared bar's closes differ when they are further apart than this (0.5%) or than PRICE_TICKS, whichever
is larger: vendors' closes of one bar agree to a few hundredths of a percent; an adjusted file's differ by a
split's ratio or by the dividends since (a percent or more a few years back)."""
PRICE_TICKS = 0.02
"""Two cents: a shared bar's closes differ only when further apart than this over their close (1.3% of a
$1.50 stock, where one vendor's last trade a cent off another's is 0.7%)."""
PRICE_MIN_BARS = 10
"""A file is refused only when it shares at least this many bars with one source's and at least STEADY_SHARE
of them differ in the same direction (a steady ratio, as an adjusted file reads), or ..."""
STEADY_SHARE = 0.8
FAR_OFF = 0.10
FAR_MIN_BARS = 3
"""... when it shares at least FAR_MIN_BARS and every one of them differs in the same direction with a typical
(median) ratio more than FAR_OFF (10%) from 1 (a split's 0.25, a large dividend's adjustment). Fewer shared
bars, or differences that are not steady: no verdict, the file lands (with a note saying so when most
shared bars differ)."""
PRICE_FLAG = "--allow-price-mismatch"
OUTSIDE_SHARE = 2 / 3
"""A stock's intraday file with more than this share of its bars starting outside 09:30-16:00 New York gets a
note: a wrong --tz (times read hours off) or a crypto file (24 hours a day: 73% outside). A full
extended-hours export (04:00-20:00) has 59% outside, below it."""
PLAUSIBLE_MIN_BARS = 20
"""Fewer bars than this tell too little for the plausibility notes."""
SESSION_OPEN, SESSION_CLOSE = 9 * 60 + 30, 16 * 60
NOT_FINISHED = "bar not finished"
"""How ingest/csv.py's reason for a bar not finished when imported begins: a file with such a row is never
skipped unread (imported later, that row lands)."""


def binance_note(path: Path, symbol: str, asset_class: str, settings: Settings) -> str | None:
    """A note when a symbol listed under [binance] in the settings (a Binance pair: crypto) is stored as
    another asset class because `--asset-class` was not given (the default is a US stock or ETF)."""
    if asset_class == "crypto" or symbol.upper() not in {s.upper() for s in settings.binance.symbols}:
        return None
    return (
        f"{path.name}: {symbol} is a [binance] symbol in the settings, but without --asset-class it was "
        f"stored as a {asset_class} (US trading days and hours); if the file is crypto, import it again with "
        "--asset-class crypto"
    )


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


@dataclass
class Checked:
    """What `before_landing` found: the notes a re-import of the same file would give again (kept with the
    landing by `record`, for `unchanged` to repeat)."""

    replayable: list[str] = field(default_factory=list)
    bars: int = 0
    reusable: bool = True

    def record(
        self,
        ctx: RunContext,
        relpath: str,
        *,
        source: str,
        source_file: str,
        interval: str,
        periods: dict[str, int],
        rejected: int,
        options: dict[str, Any],
        sha256: str,
    ) -> None:
        """After a landing: record in the raw copy's `.meta.json` what landed from it with which options, for
        `unchanged`. `periods`: the bars landed per period; `sha256`: the landed file's (a raw copy of other
        bytes, another import's of the same name since, gets no record)."""
        cache_ = RawCache(ctx.paths, source)
        meta_path = cache_.meta_path(relpath)
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return
        if meta.get("sha256") != sha256:
            return
        meta["landed"] = {
            "file": source_file,
            "interval": interval,
            "options": options,
            "code": code_digest(),
            "periods": periods,
            "rejected": rejected,
            "notes": self.replayable,
            "reusable": self.reusable and self.bars > 0,
        }
        atomic_write_bytes(meta_path, (json.dumps(meta, sort_keys=True, indent=1) + "\n").encode())


def before_landing(
    ctx: RunContext,
    path: Path,
    bars: Sequence[dict[str, Any]],
    rejected: Sequence[dict[str, Any]],
    summary: IngestSummary,
    *,
    symbol: str,
    interval: str,
    source: str,
    source_file: str,
    asset_class: str,
    tz: str | None,
    allow_price_mismatch: bool = False,
    asset_class_given: bool = True,
) -> Checked:
    """Every check of a parsed file against the lake, before it lands: raises MarketlakeError (nothing
    stored) for prices that disagree with the lake's (`check_prices`), adds the notes to `summary`."""
    checked = Checked(replayable=list(summary.notes), bars=len(bars))
    checked.reusable = not any(str(r.get("reason", "")).startswith(NOT_FINISHED) for r in rejected)
    plausible = plausibility_notes(
        path, bars, symbol=symbol, interval=interval, asset_class=asset_class, tz=tz
    )
    if not asset_class_given:
        plausible += [n for n in [binance_note(path, symbol, asset_class, ctx.settings)] if n]
    summary.notes += plausible
    checked.replayable += plausible
    files = _bar_files(ctx, symbol, interval) if bars else []
    if not files:
        return checked
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
        prices = {**params, "tolerance": PRICE_TOLERANCE, "ticks": PRICE_TICKS}
        summary.notes += check_prices(
            con.execute(_sql("csv_price_agreement"), prices).fetchall(),
            path,
            symbol=symbol,
            interval=interval,
            source=source,
            asset_class=asset_class,
            allow=allow_price_mismatch,
        )
        overlap = con.execute(_sql("csv_same_source_overlap"), {**params, "source": source}).fetchall()
    except duckdb.Error as exc:
        summary.notes.append(
            f"{path.name}: could not compare its bars with the lake's ({str(exc).splitlines()[0]}); it lands "
            "unchecked"
        )
        return checked
    finally:
        con.close()
    summary.notes += overlap_notes(
        overlap, path, symbol=symbol, interval=interval, source=source, asset_class=asset_class
    )
    return checked


def check_prices(
    rows: Sequence[tuple[Any, ...]],
    path: Path,
    *,
    symbol: str,
    interval: str,
    source: str,
    asset_class: str,
    allow: bool,
) -> list[str]:
    """Raise MarketlakeError for the first source (the furthest off) whose closes disagree steadily with the
    file's (`steady`); with `allow`, a note saying the file landed anyway instead. A note per source whose
    shared bars mostly differ but are too few to judge. `rows`: per source, (source, bars both hold, median
    ratio, how many differ in its direction, an example time, this file's close, theirs, their file) from
    csv_price_agreement.sql."""
    notes = []
    for other, n, ratio, off, ts, mine, theirs, their_file in rows:
        if ratio is None or not off:
            continue
        whose, where = (
            (f"{other} bars", other)
            if other != source
            else (f"bars of other {source} files", _file_name(their_file))
        )
        example = f"e.g. {_when(ts, interval, asset_class)}: {mine:g} here, {theirs:g} in {where}"
        if not steady(n, ratio, off):
            if off * 2 > n and n < PRICE_MIN_BARS:
                notes.append(
                    f"{path.name}: {off} of the {n} {symbol} {interval} bar{'s' if n != 1 else ''} it shares "
                    f"with the lake's {whose} close{'s' if n == 1 else ''} differently (typically {ratio:.4g}x "
                    f"theirs; {example}): too few shared bars to judge whether one of the two is adjusted (at "
                    f"least {PRICE_MIN_BARS}, or {FAR_MIN_BARS} all off alike by more than {FAR_OFF:.0%}); it "
                    "landed"
                )
            continue
        said = (
            f"{symbol} {interval} closes disagree with the lake's {whose}: this file's are typically "
            f"{ratio:.4g}x theirs ({off} of the {n} bar{'s' if n != 1 else ''} both hold differ alike; "
            f"{example})"
        )
        if allow:
            return [*notes, f"{path.name}: {said}; landed anyway ({PRICE_FLAG})"]
        cause = (
            "the two look like prices of another venue or quote currency (USD vs USDT: a premium of a "
            "fraction of a percent), or one is adjusted"
            if asset_class == "crypto"
            else "one of the two looks adjusted (split- or dividend-adjusted prices, as Yahoo's export has "
            "them), not the prices that traded"
        )
        raise MarketlakeError(
            f"{path}: {said}: {cause}, and landing it would mix them, a fake jump wherever one fills the "
            f"other's gaps; nothing was stored (if its prices are right, import it with {PRICE_FLAG})"
        )
    return notes


def steady(n: int, ratio: float, off: int) -> bool:
    """Whether `off` of `n` shared bars differing in the direction of the median `ratio` is a steady
    disagreement: at least PRICE_MIN_BARS bars, STEADY_SHARE of them off; or at least FAR_MIN_BARS, all of
    them off, the median more than FAR_OFF from 1."""
    if n >= PRICE_MIN_BARS and off >= STEADY_SHARE * n:
        return True
    return n >= FAR_MIN_BARS and off == n and abs(ratio - 1) > FAR_OFF


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


def plausibility_notes(
    path: Path,
    bars: Sequence[dict[str, Any]],
    *,
    symbol: str,
    interval: str,
    asset_class: str,
    tz: str | None,
) -> list[str]:
    """Notes on a stock's or ETF's intraday bars that look misplaced in the day: most of them outside the
    regular session (OUTSIDE_SHARE), or stamped by their end (no 09:30 bar in any session, most sessions
    ending with a 16:00 bar)."""
    if asset_class == "crypto" or interval_delta(interval) >= dt.timedelta(days=1):
        return []
    n = len(bars)
    if n < PLAUSIBLE_MIN_BARS:
        return []
    ts = pa.array([b["ts"] for b in bars], type=UTC_TS).cast(pa.timestamp("us", tz=NEW_YORK.key))
    local = pc.local_timestamp(ts).cast(pa.int64()).to_numpy()
    day_us = 86_400_000_000
    days, minutes = local // day_us, (local % day_us) // 60_000_000
    notes = []
    outside = int(np.count_nonzero((minutes < SESSION_OPEN) | (minutes >= SESSION_CLOSE)))
    if outside > OUTSIDE_SHARE * n:
        zone = (
            f"are its times in another zone than --tz {tz} (check --tz)"
            if tz
            else "are the UTC offsets its times are written with right"
        )
        notes.append(
            f"{path.name}: {outside / n:.0%} of {symbol}'s {interval} bars ({outside:,} of {n:,}) start "
            f"outside 09:30-16:00 New York, the regular session of a US {asset_class}: {zone}, or is it "
            "crypto (--asset-class crypto)? (an extended-hours export has at most about 60% outside)"
        )
    unique_days = np.unique(days)
    last_minute = np.full(len(unique_days), -1)
    np.maximum.at(last_minute, np.searchsorted(unique_days, days), minutes)
    opens = int(np.count_nonzero(minutes == SESSION_OPEN))
    ends = int(np.count_nonzero(last_minute == SESSION_CLOSE))
    if not opens and ends * 2 > len(unique_days):
        notes.append(
            f"{path.name}: no session of {symbol} has a 09:30 bar and {ends} of {len(unique_days)} sessions "
            f"end with a 16:00 bar: the bars look stamped by their end, not their start (the lake stamps a "
            f"bar by its start: the session's first {interval} bar is the 09:30 one); if so, shift the times "
            f"back by {interval} and import the file again"
        )
    return notes


DIGEST_PACKAGES = ("exchange_calendars", "pandas", "pyarrow", "duckdb", "numpy")
"""The installed packages whose versions are part of `code_digest` (the NYSE calendar, the Arrow writer, the
SQL of the checks)."""


def digest_modules() -> list[Path]:
    """The source files of ingest/csv.py and of every module of the project's `ingest` and `lake` packages
    it imports, directly or through one another (ingest/sessions.py, lake/writer.py, lake/schemas.py, ...),
    and the SQL of its checks (sql/ingest/csv_*.sql)."""
    root = Path(__file__).resolve().parent.parent
    seen: set[Path] = set()
    todo = [root / "ingest" / "csv.py"]
    while todo:
        here = todo.pop()
        if here in seen or not here.is_file():
            continue
        seen.add(here)
        for node in ast.walk(ast.parse(here.read_bytes())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                parts = name.split(".")
                if parts[0] not in ("ingest", "lake"):
                    continue
                for i in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                    base = root.joinpath(*parts[:i])
                    todo += [base.with_suffix(".py"), base / "__init__.py"]
    return sorted(seen) + sorted((sql_dir() / "ingest").glob("csv_*.sql"))


@cache
def code_digest() -> str:
    """A digest of the code that parses, checks and lands a CSV file (`digest_modules`) and of the versions
    of DIGEST_PACKAGES: a file landed by other code is read again."""
    h = hashlib.sha256()
    for path in digest_modules():
        h.update(f"{path.parent.name}/{path.name}".encode() + b"\0" + path.read_bytes() + b"\0")
    for package in DIGEST_PACKAGES:
        try:
            h.update(f"{package}=={metadata.version(package)}\0".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{package} missing\0".encode())
    return h.hexdigest()


def unchanged(
    ctx: RunContext,
    path: Path,
    data: bytes,
    relpath: str,
    *,
    symbol: str,
    interval: str,
    source: str,
    source_file: str,
    options: dict[str, Any],
) -> IngestSummary | None:
    """The summary of a file that need not be read: the raw cache holds a file of this name with the same
    sha256, landed with the same options by the same code, and the lake still holds what it landed (each
    partition intact, its manifest naming the file with this sha256, as many of its bars as were landed).
    None otherwise: the file is parsed and landed as ever."""
    previous = RawCache(ctx.paths, source).get(relpath)
    digest = hashlib.sha256(data).hexdigest()
    if previous is None or previous.sha256 != digest:
        return None
    landed = previous.meta.get("landed")
    if not (
        isinstance(landed, dict)
        and landed.get("reusable") is True
        and landed.get("file") == source_file
        and landed.get("options") == options
        and landed.get("code") == code_digest()
        and isinstance(landed.get("periods"), dict)
        and landed["periods"]
    ):
        return None
    the_input = {"file": source_file, "sha256": digest}
    bars = 0
    for period, count in landed["periods"].items():
        part = {"source": source, "interval": interval, "symbol": symbol, "period": period}
        if not _holds(partition_dir(ctx.paths, BARS, part), source_file, the_input, count):
            return None
        bars += count
    for period in previous.meta.get("rejected_periods", []):
        directory = partition_dir(ctx.paths, BARS_REJECTED, {"source": source, "period": period})
        if not (partition_intact(directory) and _names(directory, the_input)):
            return None
    summary = IngestSummary(source)
    s = summary.of(symbol)
    s.rows_rejected = int(landed.get("rejected", 0))
    s.files_skipped = 1
    summary.notes += [str(n) for n in landed.get("notes", [])]
    rejected = f" ({s.rows_rejected} rows rejected, as before)" if s.rows_rejected else ""
    ctx.say(
        f"{source} {interval} {symbol} {path.name}: {bars} bars, already in the lake as "
        f"{options.get('asset_class')}: nothing landed or changed{rejected} (not read again: same bytes and "
        "options)"
    )
    return summary


def _names(directory: Path, the_input: dict[str, str]) -> bool:
    return any(
        i.get("file") == the_input["file"] and i.get("sha256") == the_input["sha256"]
        for i in manifest_inputs(directory)
    )


def _holds(directory: Path, source_file: str, the_input: dict[str, str], count: int) -> bool:
    """Whether a bars partition holds `count` bars of `source_file`, is intact and names the file's input."""
    target = directory / "data.parquet"
    if not (target.is_file() and (directory / "_manifest.json").is_file()):
        return False
    if not (partition_intact(directory) and _names(directory, the_input)):
        return False
    try:
        files = pq.read_table(target, columns=["source_file"], partitioning=None).column("source_file")
    except (pa.ArrowInvalid, OSError):
        return False
    return int(pc.sum(pc.equal(files, source_file)).as_py() or 0) == count


def keep_raw(cache_: RawCache, relpath: str, data: bytes, **meta: Any) -> CachedFile:
    """`cache_.put(relpath, data, **meta)`, but bytes already kept under the source's raw folder in a file of
    the same name (another symbol's or interval's copy) are hard-linked, not written again."""
    twin = _kept_twin(cache_, relpath, data)
    if twin is None:
        return cache_.put(relpath, data, **meta)
    p = cache_.path(relpath)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f"{p.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        os.link(twin, tmp)
        os.replace(tmp, p)
    except OSError:
        tmp.unlink(missing_ok=True)
        return cache_.put(relpath, data, **meta)
    full = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), **meta}
    atomic_write_bytes(
        cache_.meta_path(relpath), (json.dumps(full, sort_keys=True, indent=1) + "\n").encode()
    )
    return CachedFile(p, full["sha256"], full)


def _kept_twin(cache_: RawCache, relpath: str, data: bytes) -> Path | None:
    """A raw copy under raw/<source>/<symbol>/<interval>/ of the same name, size and sha256 (its sidecar's,
    checked against its bytes), or None."""
    target = cache_.path(relpath)
    base = cache_.base.resolve()
    if not base.is_dir():
        return None
    digest = None
    for candidate in sorted(base.glob(f"*/*/{_glob_escape(target.name)}")):
        if candidate == target or not candidate.is_file() or candidate.stat().st_size != len(data):
            continue
        try:
            meta = json.loads(candidate.with_name(candidate.name + ".meta.json").read_text())
        except (OSError, ValueError):
            continue
        digest = digest or hashlib.sha256(data).hexdigest()
        if meta.get("sha256") == digest and sha256_file(candidate) == digest:
            return candidate
    return None


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
