"""Configuration: marketlake.toml for settings, the environment or a git-ignored .env for secrets.

Errors name the file, the key and the line, before any work starts.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lake.errors import ConfigError

DEFAULT_CONFIG = "marketlake.toml"
SECRET_VARS = ("POLYGON_S3_ACCESS_KEY", "POLYGON_S3_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")


@dataclass
class SourceConfig:
    """Symbols and interval for one source."""

    symbols: list[str] = field(default_factory=list)
    """Symbols (tickers) to ingest from this source."""
    interval: str = "1m"
    """Bar interval: 1m, 1h or 1d."""


@dataclass
class Settings:
    """Every setting of marketlake.toml, with the defaults the product started from."""

    data_days: int = 60
    """Days of history to ingest when no start/end is given (ending yesterday, UTC)."""
    start: dt.date | None = None
    """First day to ingest (inclusive, UTC); overrides data_days."""
    end: dt.date | None = None
    """Last day to ingest (inclusive, UTC)."""
    min_bars_per_symbol: int = 1000
    """A symbol is eligible only with at least this many bars."""
    max_missing_ratio: float = 0.05
    """A symbol is eligible only when at most this share of expected trading time is missing."""
    session: str = "regular"
    """Which hours count for stocks and ETFs: regular (09:30-16:00 New York) or extended (04:00-20:00)."""
    news_time: str = "published"
    """Which instant of an article counts for the as-of join: published or ingested (first seen)."""
    max_gap_minutes: int = 15
    """No feature is carried across a gap longer than this (or across a session boundary)."""
    max_news_age_minutes: int = 1440
    """Market-context news (SPY/QQQ sentiment and counts) older than this at a bar is NULL, like stale bars."""
    etfs: list[str] = field(default_factory=list)
    """Symbols stored with asset_class 'etf' besides the built-in list (ingest/stamping.py ETFS)."""
    split_method: str = "fraction"
    """How train, validation and test periods are cut: by `fraction` of the bar range or by `date`."""
    train_fraction: float = 0.7
    """split_method = fraction: share of the range (less the embargoes) for training."""
    validation_fraction: float = 0.15
    """split_method = fraction: share for validation; the test period gets the rest."""
    train_end: dt.date | None = None
    """split_method = date: last day of the train period (inclusive, UTC)."""
    validation_end: dt.date | None = None
    """split_method = date: last day of the validation period (inclusive, UTC)."""
    embargo_bars: int = 60
    """Gap between train and validation and between validation and test, in bars of the lake's shortest
    interval (default 60, the longest feature window): scales with the data, so a one-day lake of 1m bars
    still has three periods."""
    embargo_days: int | None = None
    """The gap in whole days instead of bars (when set, embargo_bars is not used)."""
    binance: SourceConfig = field(default_factory=lambda: SourceConfig(["BTCUSDT", "ETHUSDT"], "1m"))
    """Binance Data Vision spot klines."""
    polygon: SourceConfig = field(default_factory=lambda: SourceConfig([], "1m"))
    """Polygon flat files (needs POLYGON_S3_* keys)."""
    yahoo: SourceConfig = field(default_factory=lambda: SourceConfig([], "1d"))
    """Yahoo Finance prices, to fill gaps."""
    news: SourceConfig = field(default_factory=lambda: SourceConfig([], ""))
    """Symbols whose latest Yahoo news is ingested."""
    train: dict[str, Any] = field(default_factory=dict)
    """Training settings (num_iterations, episodes_per_iteration, batch_size, commission, …)."""
    path: Path | None = None
    """The file these settings came from, if any."""

    def date_range(self, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
        today = today or dt.datetime.now(dt.UTC).date()
        end = self.end or today - dt.timedelta(days=1)
        start = self.start or end - dt.timedelta(days=self.data_days - 1)
        return start, end

    def sql_settings(self) -> dict[str, Any]:
        """The settings the SQL views read (table `lake_settings`)."""
        return {
            "min_bars_per_symbol": self.min_bars_per_symbol,
            "max_missing_ratio": self.max_missing_ratio,
            "session": self.session,
            "news_time": self.news_time,
            "max_gap_minutes": self.max_gap_minutes,
            "max_news_age_minutes": self.max_news_age_minutes,
            "split_method": self.split_method,
            "train_fraction": self.train_fraction,
            "validation_fraction": self.validation_fraction,
            "train_end": self.train_end.isoformat() if self.train_end else None,
            "validation_end": self.validation_end.isoformat() if self.validation_end else None,
            "embargo_days": self.embargo_days or 0,
            "embargo_bars": self.embargo_bars,
        }


_TOP_TYPES: dict[str, type | tuple[type, ...]] = {
    "data_days": int,
    "start": dt.date,
    "end": dt.date,
    "min_bars_per_symbol": int,
    "max_missing_ratio": (int, float),
    "session": str,
    "news_time": str,
    "max_gap_minutes": int,
    "max_news_age_minutes": int,
    "etfs": list,
}
_CHOICES = {"session": ("regular", "extended"), "news_time": ("published", "ingested")}
_SOURCES = ("binance", "polygon", "yahoo", "news")
_SPLIT_TYPES: dict[str, type | tuple[type, ...]] = {
    "method": str,
    "train_fraction": (int, float),
    "validation_fraction": (int, float),
    "train_end": dt.date,
    "validation_end": dt.date,
    "embargo_days": int,
    "embargo_bars": int,
}


def _is_a(value: Any, want: type | tuple[type, ...]) -> bool:
    return not isinstance(value, bool) and isinstance(value, want)


_TOML_HEADER = re.compile(r"^\s*\[\[?([^\]]+)\]\]?\s*(?:#.*)?$")
_TOML_KEY = re.compile(
    r"""^\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)


def _toml_name(raw: str) -> str:
    """`a . "b"` -> `a.b`: a (dotted, maybe quoted) TOML key or table name, as one dotted string."""
    parts = re.findall(r""""((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", raw)
    return ".".join(next(x for x in part if x) if any(part) else "" for part in parts)


def _line_of(text: str, dotted: str) -> int | None:
    """The line of `section.key` (a key inside a [section], or a dotted key), or of a table's header:
    found by the table each line sits in, so `symbols` of [yahoo] is not taken for `symbols` of [binance]."""
    current = ""
    for i, line in enumerate(text.splitlines(), start=1):
        header = _TOML_HEADER.match(line)
        if header:
            current = _toml_name(header.group(1))
            if current == dotted:
                return i
            continue
        key = _TOML_KEY.match(line)
        if key:
            name = _toml_name(key.group(1))
            full = f"{current}.{name}" if current else name
            if full == dotted or full.startswith(dotted + "."):
                return i
    return None


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read marketlake.toml (or the given file); no file at the default place means defaults."""
    explicit = path is not None or "MARKETLAKE_CONFIG" in os.environ
    p = Path(path or os.environ.get("MARKETLAKE_CONFIG") or DEFAULT_CONFIG)
    if not p.exists():
        if explicit:
            raise ConfigError(f"config file {p} does not exist")
        return Settings()
    text = _read_text(p)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        lines = text.splitlines()
        line_no = int(m.group(1)) if m else _unclosed_line(lines)
        key_match = _TOML_KEY.match(lines[line_no - 1]) if line_no and line_no <= len(lines) else None
        where = f", line {line_no}" if line_no else ""
        what = f": key {_toml_name(key_match.group(1))!r}" if key_match else ""
        raise ConfigError(f"{p}{where}{what}: not valid TOML: {exc}") from exc

    def bad(key: str, why: str) -> ConfigError:
        line = _line_of(text, key)
        where = f", line {line}" if line else ""
        return ConfigError(f"{p}{where}: key {key!r}: {why}")

    settings = Settings(path=p)
    data: dict[str, Any] = dict(doc.get("data", {}))
    for key, raw_value in data.items():
        value: Any = raw_value
        if key not in _TOP_TYPES:
            raise bad(f"data.{key}", f"unknown setting (known: {', '.join(sorted(_TOP_TYPES))})")
        want = _TOP_TYPES[key]
        if not _is_a(value, want):
            raise bad(f"data.{key}", f"expected {getattr(want, '__name__', 'a number')}, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise bad(f"data.{key}", f"must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        if (
            key in ("data_days", "min_bars_per_symbol", "max_gap_minutes", "max_news_age_minutes")
            and value < 0
        ):
            raise bad(f"data.{key}", "must not be negative")
        if key == "max_missing_ratio" and not 0 <= value <= 1:
            raise bad(f"data.{key}", "must be between 0 and 1")
        if key == "etfs":
            from lake.paths import validate_symbol

            if not all(isinstance(v, str) for v in value):
                raise bad("data.etfs", "expected a list of strings")
            try:
                value = [validate_symbol(v) for v in value]
            except ValueError as exc:
                raise bad("data.etfs", str(exc)) from exc
        setattr(settings, key, float(value) if key == "max_missing_ratio" else value)
    for name in _SOURCES:
        section = doc.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise bad(name, "expected a table")
        src: SourceConfig = getattr(settings, name)
        for key, value in section.items():
            if key == "symbols" or key == "tickers":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise bad(f"{name}.{key}", "expected a list of strings")
                from lake.paths import validate_symbol

                try:
                    src.symbols = [validate_symbol(v) for v in value]
                except ValueError as exc:
                    raise bad(f"{name}.{key}", str(exc)) from exc
            elif key == "interval":
                if value not in ("1m", "1h", "1d"):
                    raise bad(f"{name}.interval", f"must be 1m, 1h or 1d, got {value!r}")
                src.interval = value
            else:
                raise bad(f"{name}.{key}", "unknown setting")
    splits = doc.get("splits", {})
    if not isinstance(splits, dict):
        raise bad("splits", "expected a table")
    for key, value in splits.items():
        if key not in _SPLIT_TYPES:
            raise bad(f"splits.{key}", f"unknown setting (known: {', '.join(sorted(_SPLIT_TYPES))})")
        want = _SPLIT_TYPES[key]
        if not _is_a(value, want) or (want is dt.date and isinstance(value, dt.datetime)):
            raise bad(f"splits.{key}", f"expected {getattr(want, '__name__', 'a number')}, got {value!r}")
        if key == "method" and value not in ("fraction", "date"):
            raise bad("splits.method", f"must be one of fraction, date, got {value!r}")
        if key.endswith("_fraction") and not 0 < value < 1:
            raise bad(f"splits.{key}", "must be between 0 and 1 (exclusive)")
        if key == "embargo_days" and value < 1:
            raise bad(
                "splits.embargo_days",
                f"must be at least 1 (got {value}): a bar's available_at can lie a day after its ts, so "
                "periods without an embargo would share bars' information",
            )
        if key == "embargo_bars" and value < 1:
            raise bad("splits.embargo_bars", f"must be at least 1 (got {value})")
        if key == "embargo_bars" and "embargo_days" in splits:
            raise bad("splits.embargo_bars", "set embargo_bars or embargo_days, not both")
        setattr(
            settings,
            "split_method" if key == "method" else key,
            float(value) if key.endswith("_fraction") else value,
        )
    if settings.train_fraction + settings.validation_fraction >= 1:
        raise bad("splits.validation_fraction", "train_fraction + validation_fraction must be below 1")
    if settings.split_method == "date":
        if settings.train_end is None or settings.validation_end is None:
            raise bad("splits.method", "method = date needs train_end and validation_end")
        if settings.validation_end <= settings.train_end:
            raise bad(
                "splits.validation_end",
                f"validation_end {settings.validation_end} must be after train_end {settings.train_end}",
            )
    train = doc.get("train", {})
    if not isinstance(train, dict):
        raise bad("train", "expected a table")
    settings.train = dict(train)
    known = {"data", "train", "lake", "splits", *_SOURCES}
    for key in doc:
        if key not in known:
            raise bad(key, f"unknown section (known: {', '.join(sorted(known))})")
    if settings.start and settings.end and settings.start > settings.end:
        raise bad("data.start", f"start {settings.start} is after end {settings.end}")
    return settings


def _unclosed_line(lines: list[str]) -> int | None:
    """For an error `at end of document` (an unclosed string, array or table): the line where the last
    parseable prefix of the file ends, plus one, is where the unclosed thing opens."""
    if len(lines) > 5000:
        return None
    for i in range(len(lines) - 1, -1, -1):
        try:
            tomllib.loads("\n".join(lines[:i]))
        except tomllib.TOMLDecodeError:
            continue
        return i + 1
    return None


def _read_text(p: Path) -> str:
    """A config file's text; an unreadable or non-UTF-8 file is a ConfigError naming the file (and line)."""
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}, line {line}: not UTF-8 text") from None


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def load_dotenv_file(path: str | os.PathLike[str] = ".env") -> None:
    """Load a .env file into the environment (existing variables win). A malformed line is an error that
    names the file and line number, never its value (it may be a secret)."""
    p = Path(path)
    if not p.exists():
        return
    text = _read_text(p)
    for i, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not _ENV_LINE.match(line):
            raise ConfigError(f"{p}, line {i}: not a KEY=value line")
    import io

    from dotenv import load_dotenv
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:  # e.g. an unclosed quote: python-dotenv would skip the line with a warning
            m = _ENV_LINE.match(binding.original.string)
            key = f": key {m.group(1)!r}" if m else ""
            raise ConfigError(
                f"{p}, line {binding.original.line}{key}: the value cannot be parsed (check quotes)"
            )

    load_dotenv(p, override=False)


def settings_field_docs() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(Settings)}
