"""marketlake's storage layer: paths, Arrow schemas, the atomic partition writer, manifests, connect()."""

from lake.connect import connect
from lake.errors import MarketlakeError, NotBuiltYet
from lake.paths import validate_symbol
from lake.schemas import BARS, BARS_REJECTED, DATASETS, FEATURES, NEWS, RUNS, TRADING_SESSIONS, Dataset
from lake.writer import LakeWriter, snapshot_hash, verify

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
    "snapshot_hash",
    "validate_symbol",
    "verify",
]
