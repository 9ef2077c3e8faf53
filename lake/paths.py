"""Where things live in a lake, and which names may become a path."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from lake.errors import InvalidName, MarketlakeError

DEFAULT_LAKE_ROOT = "./data/lake"

# A symbol: letters and digits, then letters, digits, '.', '-', '_' or '^' (BRK.B, BTC-USD, ^GSPC is refused
# on purpose: it starts with a non alphanumeric). Upper and lower case are both kept as given.
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
# Other partition values (source, interval, period): a little stricter.
_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
SCHEMA_ANCHOR = "__empty__"


def validate_symbol(symbol: str) -> str:
    """Return the symbol if it is safe as data and as a path segment; raise InvalidName otherwise."""
    if not isinstance(symbol, str) or not _SYMBOL_RE.fullmatch(symbol) or ".." in symbol:
        raise InvalidName(
            f"invalid symbol {symbol!r}: a symbol is 1-32 characters of letters, digits, '.', '-' or '_', "
            "starting with a letter or digit (no '/', '..', spaces, quotes or other punctuation)"
        )
    return symbol


def validate_partition_value(key: str, value: str) -> str:
    if key == "symbol":
        return validate_symbol(value)
    if value == SCHEMA_ANCHOR:
        return value
    if not isinstance(value, str) or not _PART_RE.fullmatch(value) or ".." in value:
        raise InvalidName(f"invalid value {value!r} for partition key {key!r}")
    return value


def parse_symbols(text: str) -> list[str]:
    """Split a comma separated list of symbols, validating each one."""
    out: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            validate_symbol(part)
            if part not in out:
                out.append(part)
    if not out:
        raise InvalidName("no symbols given")
    return out


def resolve_lake_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The lake's root: an explicit path, else LAKE_ROOT, else ./data/lake. Never created here."""
    raw = path if path is not None else os.environ.get("LAKE_ROOT") or DEFAULT_LAKE_ROOT
    root = Path(raw).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise MarketlakeError(f"lake path {root} is a file, not a directory")
    return root


def no_lake(root: Path) -> str | None:
    """Why `root` holds no lake, or None when it holds one. A lake is a folder with a datasets/ folder in
    it (every writer and a writable `lake.connect()` make it first): a missing path, or a folder without
    one, is never taken for an empty lake by what only reads."""
    if (root / "datasets").is_dir():
        return None
    return "no lake" if not root.exists() else "no lake (no datasets/ folder)"


def require_lake(root: Path, how_to_fix: str) -> Path:
    """`root` when it holds a lake (`no_lake`); else a MarketlakeError naming the path, the reason and
    `how_to_fix`."""
    why = no_lake(root)
    if why is not None:
        raise MarketlakeError(f"{why} at {root}: {how_to_fix}")
    return root


@dataclass(frozen=True)
class LakePaths:
    """The folders of one lake."""

    root: Path

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    def dataset(self, name: str) -> Path:
        return self.datasets / name
