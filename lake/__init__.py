"""marketlake's storage layer: paths, Arrow schemas, the atomic partition writer, manifests, connect()."""

import warnings

from lake.connect import connect, consistent
from lake.errors import MarketlakeError, NotBuiltYet
from lake.paths import validate_symbol
from lake.schemas import BARS, BARS_REJECTED, DATASETS, FEATURES, NEWS, RUNS, TRADING_SESSIONS, Dataset
from lake.writer import LakeWriter, snapshot_hash, verify

# duckdb 1.5.6's relation .df() converts a TIMESTAMPTZ column with DataFrame.drop(inplace=True), which pandas
# 3.1 deprecates: two warnings for every .df() of a lake view (each has ts), about duckdb's code, not the
# caller's. This one message is silenced; every other warning is left as it is.
warnings.filterwarnings("ignore", message=r"The inplace keyword in DataFrame\.drop is deprecated")

__all__ = [
    "BARS",
    "BARS_REJECTED",
    "DATASETS",
    "FEATURES",
    "NEWS",
    "RUNS",
    "TRADING_SESSIONS",
    "Dataset",
    "LakeWriter",
    "MarketlakeError",
    "NotBuiltYet",
    "connect",
    "consistent",
    "snapshot_hash",
    "validate_symbol",
    "verify",
]
