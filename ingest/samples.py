"""The real sample files the repository ships (samples/, see samples/README.md), and how each one is
imported: the offline demo's data, landed through `ingest csv` like any user's file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest import csv as csv_ingest
from ingest.common import IngestSummary, RunContext
from lake.errors import MarketlakeError


@dataclass(frozen=True)
class Sample:
    file: str
    symbol: str
    interval: str
    tz: str | None
    """Zone of the file's local times (None: daily dates)."""


SAMPLES: tuple[Sample, ...] = (
    Sample("yahoofinance-SPY-20080101-20180101.csv", "SPY", "1d", None),
    Sample("yahoofinance-AAPL-20040819-20180120.csv", "AAPL", "1d", None),
    Sample("yahoofinance-GOOG-20040819-20180120.csv", "GOOG", "1d", None),
    Sample("SP500_NOV2019_IDay.csv", "SPX", "1m", "America/New_York"),
)


def samples_dir() -> Path:
    """samples/ at the repository's root (beside the `ingest` package)."""
    return Path(__file__).resolve().parent.parent / "samples"


def run(
    ctx: RunContext, symbols: Iterable[str] | None = None, directory: Path | None = None
) -> list[IngestSummary]:
    """Import the shipped samples (all, or those of `symbols`) into the lake, one summary per file. A
    re-run changes nothing."""
    folder = directory or samples_dir()
    wanted = None if symbols is None else set(symbols)
    chosen = [s for s in SAMPLES if wanted is None or s.symbol in wanted]
    if wanted is not None and len(chosen) != len(wanted):
        known = ", ".join(s.symbol for s in SAMPLES)
        raise MarketlakeError(
            f"no sample for {sorted(wanted - {s.symbol for s in chosen})} (samples: {known})"
        )
    if not folder.is_dir():
        raise MarketlakeError(f"the samples folder {folder} is missing (it ships with the repository)")
    return [csv_ingest.run(ctx, folder / s.file, s.symbol, s.interval, s.tz) for s in chosen]
