"""One explicit Arrow schema per dataset. Every writer validates against these.

Partition columns (Hive `key=value` folders) are not stored inside the files; readers get them from the
path. All instants are `timestamp[us, tz=UTC]`; the views expose them as TIMESTAMPTZ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Dataset:
    """A Hive-partitioned Parquet dataset of the lake."""

    name: str
    schema: pa.Schema
    """Columns stored in each file, in order (the partition columns are not among them)."""
    partition_by: tuple[str, ...]
    """Hive partition keys, outermost first; values are validated before they become a path."""
    key: tuple[str, ...]
    """Columns that identify a row inside one partition; merges deduplicate on them."""
    keep: Literal["first", "last"]
    """On a duplicate key, keep the row already in the lake (`first`) or the incoming one (`last`)."""
    sort_by: tuple[str, ...]
    """Row order inside a file, so that the same rows always give the same bytes."""
    compression: str = "zstd"
    """The Parquet codec of its files: zstd (small) for what is kept; none where reading speed matters more
    than bytes (the feature store, derived and rebuilt at will: plain values decode fastest)."""
    row_group_rows: int | None = None
    """Rows per Parquet row group; None: pyarrow's default (one group up to about a million rows). Small
    groups let a reader of a time range skip the others unread, by their ts statistics."""

    def field(self, name: str) -> pa.Field:
        return self.schema.field(name)

    @property
    def all_columns(self) -> list[str]:
        return [*self.partition_by, *self.schema.names]


BARS = Dataset(
    name="bars",
    schema=pa.schema(
        [
            pa.field("asset_class", pa.string(), nullable=False),
            pa.field("ts", UTC_TS, nullable=False),
            pa.field("available_at", UTC_TS, nullable=False),
            pa.field("open", pa.float64(), nullable=False),
            pa.field("high", pa.float64(), nullable=False),
            pa.field("low", pa.float64(), nullable=False),
            pa.field("close", pa.float64(), nullable=False),
            pa.field("volume", pa.float64(), nullable=False),
            pa.field("trades", pa.int64(), nullable=True),
            pa.field("source_file", pa.string(), nullable=False),
        ]
    ),
    partition_by=("source", "interval", "symbol", "period"),
    key=("ts",),
    keep="last",
    sort_by=("ts",),
)

BARS_REJECTED = Dataset(
    name="bars_rejected",
    schema=pa.schema(
        [
            pa.field("symbol", pa.string(), nullable=True),
            pa.field("interval", pa.string(), nullable=True),
            pa.field("source_file", pa.string(), nullable=False),
            pa.field("line_number", pa.int64(), nullable=False),
            pa.field("raw", pa.string(), nullable=True),
            pa.field("ts", UTC_TS, nullable=True),
            pa.field("open", pa.float64(), nullable=True),
            pa.field("high", pa.float64(), nullable=True),
            pa.field("low", pa.float64(), nullable=True),
            pa.field("close", pa.float64(), nullable=True),
            pa.field("volume", pa.float64(), nullable=True),
            pa.field("reason", pa.string(), nullable=False),
        ]
    ),
    partition_by=("source", "period"),
    key=("source_file", "line_number"),
    keep="last",
    sort_by=("source_file", "line_number"),
)

NEWS = Dataset(
    name="news",
    schema=pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("published_at", UTC_TS, nullable=False),
            pa.field("ingested_at", UTC_TS, nullable=False),
            pa.field("title", pa.string(), nullable=False),
            pa.field("summary", pa.string(), nullable=True),
            pa.field("publisher", pa.string(), nullable=True),
            pa.field("url", pa.string(), nullable=True),
            pa.field("sentiment", pa.float64(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
        ]
    ),
    partition_by=("symbol",),
    key=("id",),
    keep="first",
    sort_by=("published_at", "id"),
)

RUNS = Dataset(
    # One row per training or evaluation run (rl/runlog.py): kind 'train' or 'evaluate'; status 'running',
    # 'finished', 'interrupted' or 'failed'; config and metrics JSON text; data_snapshot a hash over the
    # manifests of the lake files the run read, data_files those files (JSON); period = started_at's month.
    name="runs",
    schema=pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("started_at", UTC_TS, nullable=False),
            pa.field("finished_at", UTC_TS, nullable=True),
            pa.field("config", pa.string(), nullable=False),
            pa.field("data_snapshot", pa.string(), nullable=False),
            pa.field("metrics", pa.string(), nullable=True),
            pa.field("status", pa.string(), nullable=False),
            # added with rl/runlog.py (issue 12); older files lack them and read as NULL (union_by_name)
            pa.field("code_version", pa.string(), nullable=True),
            pa.field("run_dir", pa.string(), nullable=True),
            pa.field("parent_run_id", pa.string(), nullable=True),
            pa.field("data_files", pa.string(), nullable=True),
        ]
    ),
    partition_by=("period",),
    key=("run_id",),
    keep="last",
    sort_by=("started_at", "run_id"),
)

TRADING_SESSIONS = Dataset(
    name="trading_sessions",
    schema=pa.schema(
        [
            pa.field("day", pa.date32(), nullable=False),
            pa.field("open_at", UTC_TS, nullable=False),
            pa.field("close_at", UTC_TS, nullable=False),
            pa.field("is_early_close", pa.bool_(), nullable=False),
            pa.field("ext_open_at", UTC_TS, nullable=False),
            pa.field("ext_close_at", UTC_TS, nullable=False),
        ]
    ),
    partition_by=("calendar", "period"),
    key=("day",),
    keep="last",
    sort_by=("day",),
)

FEATURES = Dataset(
    name="features",
    # The `features` view materialised (features/store.py), one partition per interval, symbol and UTC year
    # of ts; the same columns in the same order as the view, less the partition columns, then the bar's
    # open, high, low and close. A test checks that this schema and the view's columns agree, and that the
    # stored rows equal the view's.
    schema=pa.schema(
        [
            pa.field("ts", UTC_TS, nullable=False),
            pa.field("available_at", UTC_TS, nullable=False),
            pa.field("asset_class", pa.string(), nullable=False),
            pa.field("calendar", pa.string(), nullable=False),
            pa.field("trading_day", pa.date32(), nullable=False),
            pa.field("segment_no", pa.int64(), nullable=False),
            pa.field("segment_pos", pa.int64(), nullable=False),
            pa.field("warmup", pa.bool_(), nullable=False),
            *(
                pa.field(n, pa.float64())
                for n in (
                    "ret_1",
                    "ret_5",
                    "ret_15",
                    "ret_60",
                    "vol_15",
                    "vol_60",
                    "rsi_14",
                    "volume_z_60",
                    "range_hl",
                    "range_mean_15",
                    "body",
                    "gap_open",
                    "idle_minutes",
                )
            ),
            pa.field("minute_of_day", pa.int64()),
            pa.field("day_of_week", pa.int64()),
            pa.field("tod_sin", pa.float64()),
            pa.field("tod_cos", pa.float64()),
            pa.field("minutes_since_open", pa.float64()),
            pa.field("minutes_to_close", pa.float64()),
            pa.field("last_news_at", UTC_TS),
            pa.field("sentiment_last", pa.float64()),
            pa.field("news_count_1h", pa.int64()),
            pa.field("news_count_1d", pa.int64()),
            pa.field("sentiment_mean_1h", pa.float64()),
            pa.field("sentiment_mean_1d", pa.float64()),
            *(
                f
                for m in ("spy", "qqq")
                for f in (
                    pa.field(f"{m}_available_at", UTC_TS),
                    pa.field(f"{m}_log_ret_1", pa.float64()),
                    pa.field(f"{m}_sentiment_last", pa.float64()),
                    pa.field(f"{m}_news_count_1d", pa.int64()),
                    pa.field(f"{m}_sentiment_mean_1d", pa.float64()),
                )
            ),
            # the bar's prices (not columns of the view: the `features_store` view leaves them out), so that
            # the episode source reads features and fill prices from one file, without joining `bars`
            *(pa.field(n, pa.float64(), nullable=False) for n in ("open", "high", "low", "close")),
        ]
    ),
    partition_by=("interval", "symbol", "year"),
    key=("ts",),
    keep="last",
    sort_by=("ts",),
    # read by every training run, a period at a time: uncompressed (decodes faster than LZ4, which is about
    # twice as fast as zstd; the store is derived and rebuilt at will), in row groups of 8,192 rows so that
    # a period's read skips the others unread (features/store.py, rl/episodes.py)
    compression="none",
    row_group_rows=8192,
)

BAR_REVISIONS = Dataset(
    name="bar_revisions",
    schema=pa.schema(
        [
            *(BARS.schema.field(n) for n in BARS.schema.names),
            pa.field("first_seen", UTC_TS, nullable=True),
            pa.field("last_seen", UTC_TS, nullable=False),
            pa.field("replaced_by", pa.string(), nullable=True),
        ]
    ),
    partition_by=BARS.partition_by,
    key=("ts", "last_seen"),
    keep="first",
    sort_by=("ts", "last_seen"),
)
"""Bars that a later write replaced (a vendor republished the file): the old row as it was, when it was
first landed (from its file's `landed_at` in the manifest; NULL when older than that record), when it was
replaced (last_seen), and the file that replaced it (NULL when the row was dropped without a successor).
Written by the lake writer itself whenever a bars partition changes a row; `bars` shows the latest."""

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (BARS, BARS_REJECTED, NEWS, RUNS, TRADING_SESSIONS, BAR_REVISIONS, FEATURES)
}


def empty_table(dataset: Dataset) -> pa.Table:
    return dataset.schema.empty_table()
