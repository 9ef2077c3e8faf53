"""Two files of one source holding the same bar: the lake keeps the last one landed (the writer's keep-last
per time in a partition); `ingest csv` says how many of which file's bars it replaces with other values
(ingest/csv_checks.py, sql/ingest/csv_same_source_overlap.sql)."""

from __future__ import annotations

from pathlib import Path

from ingest import csv as csv_ingest
from ingest.common import RunContext
from lake.config import Settings

A = (
    "Date,Open,High,Low,Close,Volume\n2024-01-02,187.15,188.44,183.89,185.64,82488700\n"
    "2024-01-03,184.22,185.88,183.43,184.25,58414500\n"
)
B = (
    "Date,Open,High,Low,Close,Volume\n2024-01-03,184.22,185.88,183.43,184.30,58414999\n"
    "2024-01-04,182.15,183.09,180.88,181.91,71983600\n"
)


def ctx(root: Path) -> RunContext:
    return RunContext(root, Settings(), quiet=True)


def test_bars_of_another_file_of_the_source_replaced_with_other_values_are_named(
    lake_root: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(A)
    b.write_text(B)
    assert not [n for n in csv_ingest.run(ctx(lake_root), a, "AAPL", "1d").notes if "held by" in n]
    notes = [n for n in csv_ingest.run(ctx(lake_root), b, "AAPL", "1d").notes if "held by" in n]
    assert notes == [
        "b.csv: 1 AAPL 1d bar held by a.csv replaced by this file's (values differ; e.g. 2024-01-03: close "
        "184.25 in a.csv, 184.3 here): source csv keeps one bar per time, of the file imported last "
        "(importing a.csv again puts its values back); bar_revisions keeps the replaced ones; import one of "
        "them with another --source to keep both"
    ]
    # importing a.csv again flips the bar back, and says so
    notes = [n for n in csv_ingest.run(ctx(lake_root), a, "AAPL", "1d").notes if "held by" in n]
    assert len(notes) == 1 and notes[0].startswith("a.csv: 1 AAPL 1d bar held by b.csv replaced")


def test_the_same_values_or_another_source_need_no_note(lake_root: Path, tmp_path: Path) -> None:
    a, same = tmp_path / "a.csv", tmp_path / "same.csv"
    a.write_text(A)
    same.write_text(A)
    assert csv_ingest.run(ctx(lake_root), a, "AAPL", "1d").ok
    assert not [n for n in csv_ingest.run(ctx(lake_root), same, "AAPL", "1d").notes if "held by" in n]
    b = tmp_path / "b.csv"
    b.write_text(B)
    summary = csv_ingest.run(ctx(lake_root), b, "AAPL", "1d", source="broker")  # its own partition
    assert not [n for n in summary.notes if "held by" in n]
