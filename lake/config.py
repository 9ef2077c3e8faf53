"""Configuration: marketlake.toml for settings, the environment or a git-ignored .env for secrets.

Errors name the file, the key and the line, before any work starts.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Iterable
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
    """Bar interval: one of SOURCE_INTERVALS of the source."""


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
    interval (default 60, the longest feature window) counted in trading time (session time for stocks,
    the clock for crypto): scales with the data, so a one-day lake of 1m bars still has three periods."""
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

    def with_sql_settings(self, values: dict[str, Any]) -> Settings:
        """A copy with the settings the views read replaced by `values` (what `sql_settings()` gave, e.g.
        as a run folder keeps them): a saved run is judged by the rules it was trained with (its periods are
        recomputed from the lake as it is: rl/evaluate.py keeps them clear of what the run trained on). A value
        the config file would refuse is a ValueError naming the key (a damaged run folder, not a query that
        fails later)."""
        import dataclasses

        known = set(self.sql_settings())  # (any other key is not the views': not taken)
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                continue
            changes[key] = _sql_setting(key, value)
        out = dataclasses.replace(self, **changes)
        if out.train_fraction + out.validation_fraction >= 1:
            raise ValueError("train_fraction + validation_fraction must be below 1")
        if out.split_method == "date" and (
            out.train_end is None or out.validation_end is None or out.validation_end <= out.train_end
        ):
            raise ValueError("split_method date needs a train_end before its validation_end")
        return out


def _sql_setting(key: str, value: Any) -> Any:
    """A value of `Settings.sql_settings()` as a run folder keeps it, checked like the config file's (a
    ValueError naming the key and the value otherwise) and converted back (dates from ISO text)."""

    def bad(why: str) -> ValueError:
        return ValueError(f"key {key!r}: {why}, got {value!r}")

    choices = {**_CHOICES, "split_method": ("fraction", "date")}
    if key in choices:
        if value not in choices[key]:
            raise bad(f"must be one of {', '.join(choices[key])}")
        return value
    if key in ("train_end", "validation_end"):
        if value is None:
            return None
        if not isinstance(value, str):
            raise bad("expected an ISO date")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise bad("expected an ISO date") from None
    if key in ("train_fraction", "validation_fraction"):
        if not _is_a(value, (int, float)) or not 0 < value < 1:
            raise bad("expected a number between 0 and 1 (exclusive)")
        return float(value)
    if key == "max_missing_ratio":
        if not _is_a(value, (int, float)) or not 0 <= value <= 1:
            raise bad("expected a number between 0 and 1")
        return float(value)
    if key == "embargo_days" and value is None:
        return None
    low = 1 if key == "embargo_bars" else 0  # (the counts: min_bars_per_symbol, the minutes, the embargo)
    if not _is_a(value, int) or value < low:
        raise bad(f"expected a whole number >= {low}")
    return (value or None) if key == "embargo_days" else value


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
SOURCE_INTERVALS: dict[str, tuple[str, ...]] = {
    "binance": ("1m", "5m", "15m", "1h", "1d"),  # Data Vision's klines of the intervals a lake holds
    "polygon": ("1m", "1d"),  # its minute and day flat files (ingest/polygon.py FILE_SETS)
    "yahoo": ("1m", "1d"),  # ingest/yahoo.py INTERVALS
}
"""The bar intervals each price source can land ([news] has none); tests keep them equal to the ingests'."""
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


# --- the [train] table ---------------------------------------------------------------------------------------
# Its keys belong to rl/ (rl/ppo.py PPOConfig, rl/market.py EnvConfig, rl/train.py RunOptions), which lake/ may
# not import: their names, types and ranges are held here as data, so that every command that loads the file
# refuses a bad [train] key or value before any work, naming the file, the key and the line. rl/ checks the
# same rules again when it builds its configs (a test keeps the key sets equal), and `marketlake train --set
# KEY=VALUE` is checked by `check_train_value` like a value of the file.

TRAIN_INTERVALS = ("1m", "5m", "15m", "1h", "1d")
"""Bar intervals a lake can hold (ingest/common.py INTERVALS; a test keeps them equal)."""


@dataclass(frozen=True)
class TrainRule:
    """What one [train] key accepts: `kind` is int, number, bool, str, ints (a list of integers, or
    "64,64"), symbols (a list of symbols, or "A,B") or path; `low`/`high` bound a number (`open_low` /
    `open_high`: the bound itself is excluded); `choices` for a str."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    high_why: str = ""
    """Why the high bound (said with a value above it)."""


SEED_MAX = 2**64 - 1
"""The largest seed: torch.manual_seed takes 0 .. 2**64 - 1 (numpy's generators any whole number >= 0)."""
LEARNING_RATE_MAX = 1.0
"""The largest learning rate: Adam's step is about the rate itself, and rates near 1e308 overflow."""
CPU_COUNT = os.cpu_count() or 1
"""The machine's CPUs: more torch threads than these only wait on each other (hundreds of times slower)."""


TRAIN_RULES: dict[str, TrainRule] = {
    # the learner (rl/ppo.py PPOConfig)
    "num_iterations": TrainRule("int", low=1),
    "episodes_per_iteration": TrainRule("int", low=1),
    "batch_size": TrainRule("int", low=1),
    "seed": TrainRule("int", low=0, high=SEED_MAX, high_why="2**64 - 1, the largest seed torch takes"),
    "num_envs": TrainRule("int", low=0),
    "learning_rate": TrainRule("number", low=0, open_low=True, high=LEARNING_RATE_MAX),
    "anneal_lr": TrainRule("bool"),
    "gamma": TrainRule("number", low=0, high=1),
    "gae_lambda": TrainRule("number", low=0, high=1),
    "update_epochs": TrainRule("int", low=1),
    "norm_reward": TrainRule("bool"),
    "norm_adv": TrainRule("bool"),
    "clip_coef": TrainRule("number", low=0, open_low=True),
    "clip_vloss": TrainRule("bool"),
    "ent_coef": TrainRule("number", low=0),
    "vf_coef": TrainRule("number", low=0),
    "max_grad_norm": TrainRule("number", low=0, open_low=True),
    "target_kl": TrainRule("number", low=0),  # 0: no early stop
    "hidden_sizes": TrainRule("ints", low=1),
    "bar_width": TrainRule("int", low=0),
    "device": TrainRule("str", choices=("auto", "cpu", "cuda", "cuda:N")),
    # (at most the CPU count: checked when a run starts, rl/ppo.py, not when the file is read, so that a
    # file written on a larger machine still serves every other command here)
    "torch_threads": TrainRule("int", low=1),
    "validate_every": TrainRule("int", low=1),
    # the market (rl/market.py EnvConfig)
    "window": TrainRule("int", low=1),
    "episode_length": TrainRule("int", low=1),
    "commission": TrainRule("number", low=0, high=1, open_high=True),
    "slippage": TrainRule("str", choices=("bps", "range")),
    "slippage_bps": TrainRule("number", low=0, high=1e4, open_high=True),
    "slippage_range_fraction": TrainRule("number", low=0, high=1),
    "allow_short": TrainRule("bool"),
    "hold_overnight": TrainRule("bool"),
    # the run (rl/train.py RunOptions)
    "symbols": TrainRule("symbols"),
    "interval": TrainRule("str", choices=TRAIN_INTERVALS),
    "runs_dir": TrainRule("path"),
}


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _unknown(what: str, key: str, known: Iterable[str]) -> str:
    """`unknown setting (did you mean 'x'? known: ...)`: a typo names its likely key."""
    import difflib

    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {what} ({hint}known: {', '.join(names)})"


def _table_of(key: str) -> str | None:
    """The table of the settings file a key belongs in ([train], [data] or [splits]), or None."""
    for table, keys in (("train", TRAIN_RULES), ("data", _TOP_TYPES), ("splits", _SPLIT_TYPES)):
        if key in keys:
            return table
    return None


def _unknown_in(table: str, key: str, known: Iterable[str]) -> str:
    """`unknown setting ...` of the [table] `table`; a key of another table says which (a source's own keys,
    symbols and interval, are not taken for [train]'s)."""
    home = _table_of(key)
    if home is not None and home != table and not (table in _SOURCES and key in ("symbols", "interval")):
        return f"{key} is a [{home}] setting, not a [{table}] one: set it in the config file's [{home}] table"
    return _unknown("setting", key, known)


def set_takes_train_keys_only(key: str) -> str:
    """For `marketlake train --set KEY=...` with a key of [data] or [splits]: that --set cannot set it."""
    home = _table_of(key)
    return " (--set takes [train] keys only)" if home is not None and home != "train" else ""


def _date_hint(value: Any) -> str:
    """For a date given as a quoted string ("2013-12-31"): the advice to drop the quotes."""
    if isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            return ""
        return f" (a quoted string: write the date without quotes, {day.isoformat()})"  # ("20131231": an int)
    return ""


def check_train_value(key: str, value: Any) -> Any:
    """`value` for the [train] key `key`, checked against TRAIN_RULES: returned as given (symbols given as
    "A,B" become a list); a ValueError says why not (without the file, key or line: the caller adds them)."""
    rule = TRAIN_RULES.get(key)
    if rule is None:
        raise ValueError(_unknown_in("train", key, TRAIN_RULES))
    kind = rule.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a path (a string), got {value!r}")
        return value
    if kind == "symbols":
        from lake.paths import validate_symbol

        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
            raise ValueError(f"expected a non-empty list of symbols, got {value!r}")
        symbols = [validate_symbol(s) for s in items]  # InvalidName is a ValueError too
        twice = sorted({s for s in symbols if symbols.count(s) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} given twice in {value!r}: list each symbol once")
        return symbols
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if "cuda:N" in rule.choices and re.fullmatch(r"cuda:\d+", value):
            return value
        if rule.choices and (value not in rule.choices or value == "cuda:N"):  # (N stands for a number)
            raise ValueError(f"must be one of {', '.join(rule.choices)}, got {value!r}")
        return value
    numbers: list[Any]
    if kind == "ints":
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", value):  # "64,64"
            value = [int(v) for v in value.split(",")]
        if not isinstance(value, list):  # one number is not a list of layers (rl/ppo.py refuses it too)
            raise ValueError(f"expected a non-empty list of whole numbers, e.g. [64, 64], got {value!r}")
        numbers = value
        if not value or not all(_is_a(v, int) for v in numbers):
            raise ValueError(f"expected a non-empty list of whole numbers, e.g. [64, 64], got {value!r}")
    elif kind == "int":
        if not _is_a(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        numbers = [value]
    else:  # number
        if not _is_a(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a number, got {value!r}")
        numbers = [value]
    for v in numbers:
        if rule.low is not None and (v <= rule.low if rule.open_low else v < rule.low):
            raise ValueError(
                f"must be {'above' if rule.open_low else 'at least'} {_num(rule.low)}, got {value!r}"
            )
        if rule.high is not None and (v >= rule.high if rule.open_high else v > rule.high):
            why = f" ({rule.high_why})" if rule.high_why else ""
            raise ValueError(
                f"must be {'below' if rule.open_high else 'at most'} {_num(rule.high)}{why}, got {value!r}"
            )
    return value


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


def lines_of(settings: Settings, dotted: Iterable[str]) -> dict[str, int]:
    """The line of each `section.key` of `dotted` in the file `settings` came from, for a message about keys
    taken together (a key not found, or settings not from a file, has none)."""
    if settings.path is None:
        return {}
    try:
        text = settings.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    found = {key: _line_of(text, key) for key in dotted}
    return {key: line for key, line in found.items() if line is not None}


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
        try:
            setattr(settings, key, data_value(key, raw_value))
        except ValueError as exc:
            raise bad(f"data.{key}", str(exc)) from exc
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
            elif key == "interval" and name in SOURCE_INTERVALS:
                if value not in SOURCE_INTERVALS[name]:
                    raise bad(
                        f"{name}.interval",
                        f"must be one of {', '.join(SOURCE_INTERVALS[name])}, got {value!r}",
                    )
                src.interval = value
            else:
                known = ["symbols", "tickers", *(["interval"] if name in SOURCE_INTERVALS else [])]
                raise bad(f"{name}.{key}", _unknown_in(name, key, known))
    splits = doc.get("splits", {})
    if not isinstance(splits, dict):
        raise bad("splits", "expected a table")
    for key, value in splits.items():
        try:
            checked = split_value(key, value)
            if key == "embargo_bars" and "embargo_days" in splits:
                raise ValueError("set embargo_bars or embargo_days, not both")
        except ValueError as exc:
            raise bad(f"splits.{key}", str(exc)) from exc
        setattr(settings, "split_method" if key == "method" else key, checked)
    # the method's keys first, then their values (the fractions' sum was refused, then the fractions)
    unused = _unused_split_keys(settings.split_method, splits)
    if unused:
        raise bad(f"splits.{unused[0]}", _unused_why(settings.split_method, unused, "method" in splits))
    problem = splits_problem(settings)
    if problem:
        raise bad(*problem)
    train = doc.get("train", {})
    if not isinstance(train, dict):
        raise bad("train", "expected a table")
    for key, value in train.items():
        try:
            check_train_value(key, value)
        except ValueError as exc:
            raise bad(f"train.{key}", str(exc)) from exc
    settings.train = dict(train)
    sections = {"data", "train", "lake", "splits", *_SOURCES}
    for key in doc:
        if key not in sections:
            home = _table_of(key)
            if home is not None and not isinstance(doc[key], dict):  # a setting written before any [table]
                raise bad(
                    key,
                    f"{key} is a [{home}] setting, written here before any [table] header: move it under "
                    f"[{home}]",
                )
            raise bad(key, _unknown("section", key, sections))
    lake_table = doc.get("lake", {})
    if not isinstance(lake_table, dict):
        raise bad("lake", "expected a table")
    if lake_table:  # (an empty [lake] is allowed: older files have one)
        key = next(iter(lake_table))
        raise bad(f"lake.{key}", "unknown setting: the lake's folder is --lake or $LAKE_ROOT, not the file")
    if settings.start and settings.end and settings.start > settings.end:
        raise bad("data.start", f"start {settings.start} is after end {settings.end}")
    return settings


def data_value(key: str, value: Any) -> Any:
    """A value of the [data] key `key`, checked by the settings file's rules and returned as Settings keeps
    it; a ValueError says why not (without the file or line: the caller adds them)."""
    if key not in _TOP_TYPES:
        raise ValueError(_unknown_in("data", key, _TOP_TYPES))
    want = _TOP_TYPES[key]
    if not _is_a(value, want):
        hint = _date_hint(value) if want is dt.date else ""
        raise ValueError(f"expected {getattr(want, '__name__', 'a number')}, got {value!r}{hint}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ValueError(f"must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    if key in ("data_days", "min_bars_per_symbol", "max_gap_minutes", "max_news_age_minutes") and value < 0:
        raise ValueError("must not be negative")
    if key == "max_missing_ratio" and not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    if key == "etfs":
        from lake.paths import validate_symbol

        if not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return [validate_symbol(v) for v in value]  # InvalidName is a ValueError
    return float(value) if key == "max_missing_ratio" else value


def split_value(key: str, value: Any) -> Any:
    """A value of the [splits] key `key` (`method`, not split_method), checked by the settings file's rules
    and returned as Settings keeps it; a ValueError says why not. (Rules across keys: `splits_problem`.)"""
    if key not in _SPLIT_TYPES:
        raise ValueError(_unknown_in("splits", key, _SPLIT_TYPES))
    want = _SPLIT_TYPES[key]
    if not _is_a(value, want) or (want is dt.date and isinstance(value, dt.datetime)):
        hint = _date_hint(value) if want is dt.date else ""
        raise ValueError(f"expected {getattr(want, '__name__', 'a number')}, got {value!r}{hint}")
    if key == "method" and value not in ("fraction", "date"):
        raise ValueError(f"must be one of fraction, date, got {value!r}")
    if key.endswith("_fraction") and not 0 < value < 1:
        raise ValueError("must be between 0 and 1 (exclusive)")
    if key == "embargo_days" and value < 1:
        raise ValueError(
            f"must be at least 1 (got {value}): a bar's available_at can lie a day after its ts, so "
            "periods without an embargo would share bars' information"
        )
    if key == "embargo_bars" and value < 1:
        raise ValueError(f"must be at least 1 (got {value})")
    return float(value) if key.endswith("_fraction") else value


_METHOD_KEYS = {
    "fraction": ("train_fraction", "validation_fraction"),
    "date": ("train_end", "validation_end"),
}
"""The [splits] keys that only one `method` reads (embargo_days / embargo_bars serve both)."""


def _unused_split_keys(method: str, given: Iterable[str]) -> list[str]:
    """The keys of `given` that `method` does not read (the other method's): ignored silently, they would
    make a run's periods differ from what the file says."""
    other = next(m for m in _METHOD_KEYS if m != method)
    return [k for k in given if k in _METHOD_KEYS[other]]


def _unused_why(method: str, keys: list[str], method_given: bool, *, keywords: bool = False) -> str:
    """Why keys of the other split method are refused, and the two ways out: in the file's words, or, for
    `keywords` (the environment's, rl/env.py), in a keyword's (method="date")."""
    other = next(m for m in _METHOD_KEYS if m != method)
    it = "it" if len(keys) == 1 else "them"
    if keywords:
        return (
            f'{" and ".join(keys)} {"is" if len(keys) == 1 else "are"} read only with method="{other}", and '
            f'the method here, "{method}", would ignore {it}: pass method="{other}" too, or leave out '
            f"{' and '.join(keys)}"
        )
    chosen = f'method = "{method}"' + ("" if method_given else " (the default)")
    return (
        f'{" and ".join(keys)} {"is" if len(keys) == 1 else "are"} read only with method = "{other}", '
        f'and {chosen} would ignore {it}: set method = "{other}" in [splits], or remove {" and ".join(keys)}'
    )


def splits_problem(settings: Settings) -> tuple[str, str] | None:
    """What is wrong with the split settings taken together, as (the key to name, why); None when sound.
    Only the chosen method's keys are checked (the fractions are not read with method = "date")."""
    if settings.split_method == "fraction" and settings.train_fraction + settings.validation_fraction >= 1:
        return "splits.validation_fraction", "train_fraction + validation_fraction must be below 1"
    if settings.split_method == "date":
        if settings.train_end is None or settings.validation_end is None:
            return "splits.method", "method = date needs train_end and validation_end"
        if settings.validation_end <= settings.train_end:
            return (
                "splits.validation_end",
                f"validation_end {settings.validation_end} must be after train_end {settings.train_end}",
            )
    return None


def settings_with_values(settings: Settings, values: dict[str, Any]) -> Settings:
    """A copy of `settings` with [data] and [splits] settings replaced by `values` (keys as in the file,
    `method` or `split_method`), each checked by the file's rules, and the split rules across keys after:
    a ConfigError `setting splits.KEY: why` otherwise. Dates may be given as ISO text ("2013-12-31");
    train_end, validation_end and embargo_days may be None (unset). embargo_bars given alone unsets
    embargo_days (the one given is the one used)."""
    import dataclasses

    changes: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = "method" if raw_key == "split_method" else raw_key
        section = "splits" if key in _SPLIT_TYPES else "data"
        want = _SPLIT_TYPES.get(key, _TOP_TYPES.get(key))
        try:
            if want is dt.date and isinstance(value, str):
                try:
                    value = dt.date.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"expected an ISO date (YYYY-MM-DD), got {value!r}") from None
            if value is None and key in ("train_end", "validation_end", "embargo_days", "start", "end"):
                checked = None
            elif section == "splits":
                checked = split_value(key, value)
            else:
                checked = data_value(key, value)
        except ValueError as exc:
            raise ConfigError(f"setting {section}.{key}: {exc}") from None
        changes["split_method" if key == "method" else key] = checked
    if "embargo_bars" in changes and "embargo_days" in changes and changes["embargo_days"] is not None:
        raise ConfigError("setting splits.embargo_bars: set embargo_bars or embargo_days, not both")
    if "embargo_bars" in changes:
        changes.setdefault("embargo_days", None)
    out = dataclasses.replace(settings, **changes)
    given = ["method" if k == "split_method" else k for k, v in values.items() if v is not None]
    unused = _unused_split_keys(out.split_method, given)  # (first: the method's keys, then their values)
    if unused:
        why = _unused_why(out.split_method, unused, True, keywords=True)
        raise ConfigError(f"setting splits.{unused[0]}: {why}")
    problem = splits_problem(out)
    if problem:
        raise ConfigError(f"setting {problem[0]}: {problem[1]}")
    if out.start and out.end and out.start > out.end:
        raise ConfigError(f"setting data.start: start {out.start} is after end {out.end}")
    return out


def settings_source(settings: Settings) -> str:
    """Where `settings` came from, for a person: the settings file's absolute path, or the built-in defaults
    (no file at the default place, ./marketlake.toml, which is read from the working folder)."""
    if settings.path is None:
        return f"the built-in defaults (no {DEFAULT_CONFIG} in {Path.cwd()})"
    return str(settings.path.absolute())


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
