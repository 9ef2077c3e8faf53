"""`marketlake check`: a data-quality report per symbol from the bar_quality / symbol_quality views and
the data checks of sql/checks (each a query returning the failing rows)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from typing import Any

import click

from lake.context import RunContext, plain
from lake.errors import MarketlakeError

PRICE_SOURCES = ("binance", "polygon", "yahoo")


def _check_sql(sql: str) -> str:
    return sql.strip().rstrip(";")


def run_checks(con: Any) -> dict[str, dict[tuple[str, str], int]]:
    """Failing rows of every sql/checks/*.sql query, per check and (symbol, interval): ('', '') when the
    check's rows have no symbol column, (symbol, '') when they have no interval column."""
    from lake.connect import check_files

    out: dict[str, dict[tuple[str, str], int]] = {}
    for name, path in check_files():
        rel = con.sql(_check_sql(path.read_text(encoding="utf-8")))
        counts: dict[tuple[str, str], int] = {}
        if "symbol" in rel.columns and "interval" in rel.columns:
            for sym, interval, n in rel.aggregate(
                'symbol, "interval", count(*)', 'symbol, "interval"'
            ).fetchall():
                counts[(str(sym), str(interval))] = int(n)
        elif "symbol" in rel.columns:
            for sym, n in rel.aggregate("symbol, count(*)", "symbol").fetchall():
                counts[(str(sym), "")] = int(n)
        else:
            n_rows = len(rel.fetchall())
            if n_rows:
                counts[("", "")] = n_rows
        out[name] = counts
    return out


def _checks_of(checks: dict[str, dict[tuple[str, str], int]], symbol: str, interval: str) -> dict[str, int]:
    """The failing-row counts of one (symbol, interval), counting a check without an interval column for
    every interval of the symbol."""
    got: dict[str, int] = {}
    for name, counts in checks.items():
        n = counts.get((symbol, interval), 0) + counts.get((symbol, ""), 0)
        if n:
            got[name] = n
    return got


def configured(ctx: RunContext) -> dict[tuple[str, str], list[str]]:
    """(symbol, interval) pairs configured in marketlake.toml, with the sources that configure them."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for source in PRICE_SOURCES:
        cfg = getattr(ctx.settings, source)
        for sym in cfg.symbols:
            pairs.setdefault((sym, cfg.interval), []).append(source)
    return pairs


def report(ctx: RunContext) -> list[dict[str, Any]]:
    """One dict per (symbol, interval) in the lake or configured: bars, range, missing share, longest gap,
    violations, failing checks, eligibility and why. `rejected` counts the pair's quarantined bars, each
    (ts, reason) once however many files or re-imports carried it (sql/report/check_rejected.sql)."""
    from lake.connect import connect, consistent, sql_dir

    def read() -> tuple[
        list[dict[str, Any]], dict[str, dict[tuple[str, str], int]], dict[tuple[str, str], int]
    ]:
        con = connect(ctx.root, read_only=True, settings=ctx.settings)
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute((sql_dir() / "report" / "check_begin.sql").read_text(encoding="utf-8"))
            rel = con.sql('SELECT * FROM symbol_quality ORDER BY symbol, "interval"')
            cols = rel.columns
            quality = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
            checks = run_checks(con)
            rejected_pairs = {
                (str(sym), str(iv)): int(n)
                for sym, iv, n in con.execute(
                    (sql_dir() / "report" / "check_rejected.sql").read_text(encoding="utf-8")
                ).fetchall()
            }
        finally:
            con.close()
        return quality, checks, rejected_pairs

    quality, checks, rejected_pairs = consistent(
        ctx.root, read
    )  # again if an ingest replaced a file meanwhile
    wanted = configured(ctx)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for q in quality:
        key = (q["symbol"], q["interval"])
        seen.add(key)
        missing = q["missing_ratio"]
        rows.append(
            {
                "symbol": q["symbol"],
                "interval": q["interval"],
                "asset_class": q["asset_class"],
                "calendar": q["calendar"],
                "sources": q["sources"],
                "configured": key in wanted,
                "first_ts": q["first_ts"],
                "last_ts": q["last_ts"],
                "trading_days": q["trading_days"],
                "bars": q["n_bars"],
                "expected_bars": q["expected_bars"],
                "missing_pct": None if missing is None else round(100 * missing, 3),
                "longest_gap_minutes": q["max_gap_minutes"],
                "ohlc_violations": q["ohlc_violations"],
                "duplicates": q["duplicates"],
                "out_of_order": q["out_of_order"],
                "bars_not_in_session": q["bars_not_in_session"],
                "bars_outside_any_session": _checks_of(checks, q["symbol"], q["interval"]).get(
                    "bars_outside_session", 0
                ),
                "rejected": rejected_pairs.get(key, 0),
                "checks": _checks_of(checks, q["symbol"], q["interval"]),
                "session": q["session"],
                "eligible": bool(q["eligible"]),
                "why": q["reason"],
            }
        )
    # configured pairs without bars, and pairs whose every row was quarantined (no bar stored at all):
    # bar_quality has no trading day for them, but they must not vanish from the report
    only_rejected: dict[tuple[str, str], list[str]] = {
        pair: [] for pair in rejected_pairs if pair[0] and pair not in seen and pair not in wanted
    }
    for (sym, interval), sources in sorted({**wanted, **only_rejected}.items()):
        if (sym, interval) in seen:
            continue
        if sources:
            why = f"no {interval} bars in the lake (configured in [{', '.join(sources)}])"
        else:
            why = (
                f"no {interval} bars in the lake: all {rejected_pairs[(sym, interval)]} bar(s) were "
                "quarantined in bars_rejected"
            )
        rows.append(
            {
                "symbol": sym,
                "interval": interval,
                "asset_class": None,
                "calendar": None,
                "sources": None,
                "configured": bool(sources),
                "first_ts": None,
                "last_ts": None,
                "trading_days": 0,
                "bars": 0,
                "expected_bars": 0,
                "missing_pct": None,
                "longest_gap_minutes": None,
                "ohlc_violations": 0,
                "duplicates": 0,
                "out_of_order": 0,
                "bars_not_in_session": 0,
                "bars_outside_any_session": 0,
                "rejected": rejected_pairs.get((sym, interval), 0),
                "checks": _checks_of(checks, sym, interval),
                "session": ctx.settings.session,
                "eligible": False,
                "why": why,
            }
        )
    rows.sort(key=lambda r: (r["symbol"], r["interval"]))
    return rows


def _fmt_ts(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    return "-"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_json_default, indent=1)


def not_in_the_lake(row: dict[str, Any]) -> bool:
    """A configured (symbol, interval) pair with no bar at all in the lake and no quarantined bar of its
    own: nothing to look at but its absence (a lake built from a few CSV files leaves most of
    marketlake.toml's pairs so)."""
    return bool(row["configured"]) and row["first_ts"] is None and not row["bars"] and not row["rejected"]


def absent_line(rows: list[dict[str, Any]]) -> str:
    """The configured pairs with no bar in the lake (`not_in_the_lake`), in one line: their symbols by
    interval."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r["interval"], []).append(r["symbol"])
    parts = [f"{iv}: {', '.join(sorted(syms))}" for iv, syms in sorted(groups.items())]
    return f"not in the lake ({len(rows)} configured pair(s), no bar at all; NOT eligible): " + "; ".join(
        parts
    )


UNWRAPPED = 1000
"""The width of the table off a terminal: wide enough that no row wraps (cron's mail, a file, a pipe)."""


def _table_width() -> int:
    """A terminal's width (at least 120); off a terminal (COLUMNS unset) UNWRAPPED: one line per row for
    whatever reads it (a script should read `--format json`)."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return UNWRAPPED
    return max(120, shutil.get_terminal_size().columns)


def print_table(rows: list[dict[str, Any]]) -> None:
    """A table per symbol and interval, then one line per symbol saying whether and why it is eligible;
    the configured pairs with no bar at all in the lake are one line at the end (`--format json` has a
    row for each)."""
    from rich.console import Console
    from rich.table import Table

    absent = [r for r in rows if not_in_the_lake(r)]
    shown = [r for r in rows if not not_in_the_lake(r)]

    header = (
        "symbol",
        "interval",
        "bars",
        "not in session",
        "range (UTC)",
        "missing %",
        "longest gap (min)",
        "violations",
        "eligible",
    )
    cells = [
        [
            r["symbol"],
            r["interval"],
            str(r["bars"]),
            str(r["bars_not_in_session"]),
            f"{_fmt_ts(r['first_ts'])} .. {_fmt_ts(r['last_ts'])}",
            "-" if r["missing_pct"] is None else f"{r['missing_pct']:.2f}",
            "-" if r["longest_gap_minutes"] is None else f"{r['longest_gap_minutes']:.0f}",
            f"ohlc {r['ohlc_violations']}, dup {r['duplicates']}, order {r['out_of_order']}, "
            f"outside all sessions {r['bars_outside_any_session']}, rejected {r['rejected']}",
            "yes" if r["eligible"] else "NO",
        ]
        for r in shown
    ]
    sessions = sorted({str(r["session"]) for r in rows if r.get("session")})
    t = Table(
        title="marketlake check" + (f" (session: {', '.join(sessions)})" if sessions else ""),
        show_lines=False,
    )
    for i, c in enumerate(header):
        # only the range and the violations wrap, between words: never an ellipsis in a date or a count
        wraps = c in ("range (UTC)", "violations")
        t.add_column(
            c,
            no_wrap=not wraps,
            min_width=max(len(w) for text in [c, *(r[i] for r in cells)] for w in text.split())
            if wraps
            else None,
        )
    for row in cells:
        t.add_row(*map(plain, row))
    if shown or not rows:
        console = Console(width=_table_width(), soft_wrap=True)
        console.print(t)
    if not rows:
        click.echo("no bars in the lake and no symbol configured")
    elif any(r["bars_not_in_session"] or r["bars_outside_any_session"] for r in shown):
        click.echo(
            "bars: bars in the session named above (setting `session`), the ones counted and made into "
            "features; not in session: the other stored bars; outside all sessions: stock or ETF bars in no "
            "session even with extended hours (the failing check bars_outside_session)"
        )
    for r in shown:
        verdict = "eligible" if r["eligible"] else "NOT eligible"
        extra = ""
        if r["checks"]:
            extra = " [failing checks: " + ", ".join(f"{k} {v}" for k, v in sorted(r["checks"].items())) + "]"
        click.echo(f"{r['symbol']} {r['interval']}: {verdict}: {r['why']}{extra}")
    if absent:
        click.echo(absent_line(absent))


def strict_failures(rows: list[dict[str, Any]]) -> list[str]:
    """Configured (symbol, interval) pairs that are not eligible, each with why (for `check --strict`):
    every pair marketlake.toml asks for must be usable, not just some interval of the symbol."""
    failures = []
    for r in sorted(rows, key=lambda r: (r["symbol"], r["interval"])):
        if r["configured"] and not r["eligible"]:
            failures.append(f"{r['symbol']} {r['interval']} ({r['why']})")
    return failures


def run(ctx: RunContext, fmt: str, strict: bool) -> None:
    """The body of `marketlake check`."""
    rows = report(ctx)
    if fmt == "json":
        click.echo(to_json(rows))
    else:
        print_table(rows)
    if strict:
        failures = strict_failures(rows)
        if failures:
            raise MarketlakeError(
                f"{len(failures)} configured symbol/interval pair(s) not eligible: " + ", ".join(failures)
            )
