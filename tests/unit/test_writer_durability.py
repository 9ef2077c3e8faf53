"""The order in which the lake's renames become durable, and what a failed fsync reports: a write that
depends on an earlier one (bar_revisions on the bars they record) finds that one's folder fsynced first;
an fsync error at the end is a clear MarketlakeError, and never hides the error that ended the block."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

import lake
import lake.writer as writer_mod
from lake.errors import MarketlakeError
from lake.writer import LakeWriter
from tests.conftest import bars_table

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
PART = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-03"}


def test_the_bars_folder_is_durable_before_their_revisions_are_renamed_in(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LakeWriter.open(lake_root) as w:
        first = w.write(lake.BARS, PART, bars_table(T0, [1.0, 2.0]))
    bars_dir = first.path.parent
    events: list[tuple[str, Path]] = []
    real_fsync, real_replace = writer_mod._fsync_dir, os.replace

    def fsync(path: Path) -> None:
        events.append(("fsync", Path(path)))
        real_fsync(path)

    def replace(src: Any, dst: Any) -> None:
        events.append(("rename", Path(dst).parent))
        real_replace(src, dst)

    monkeypatch.setattr(writer_mod, "_fsync_dir", fsync)
    monkeypatch.setattr(writer_mod.os, "replace", replace)
    with LakeWriter.open(lake_root) as w:  # the vendor republished: other closes, so revisions are kept
        w.write(lake.BARS, PART, bars_table(T0, [1.5, 2.5]), mode="replace")
    revisions = [i for i, (kind, d) in enumerate(events) if kind == "rename" and "bar_revisions" in d.parts]
    assert revisions, events
    bars_synced = [i for i, e in enumerate(events) if e == ("fsync", bars_dir)]
    assert bars_synced and bars_synced[0] < revisions[0], events


def test_an_fsync_error_at_the_end_is_a_clear_error(lake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path) -> None:
        raise OSError(5, "Input/output error")

    with LakeWriter.open(lake_root):  # the anchors exist before the disk fails
        pass
    monkeypatch.setattr(writer_mod, "_fsync_dir", broken)
    with pytest.raises(MarketlakeError, match="could not be made durable"):
        with LakeWriter.open(lake_root) as w:
            w.write(lake.BARS, PART, bars_table(T0, [1.0]))


def test_an_fsync_error_never_hides_the_error_that_ended_the_block(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path) -> None:
        raise OSError(5, "Input/output error")

    with LakeWriter.open(lake_root):
        pass
    monkeypatch.setattr(writer_mod, "_fsync_dir", broken)
    with pytest.raises(ValueError, match="the caller's own error"):
        with LakeWriter.open(lake_root) as w:
            w.write(lake.BARS, PART, bars_table(T0, [1.0]))
            raise ValueError("the caller's own error")


def _many_partitions(w: LakeWriter, n: int) -> None:
    for i in range(n):
        part = {**PART, "symbol": f"S{i:02d}"}
        w.write(lake.BARS, part, bars_table(T0, [1.0 + i]))


def test_many_folders_are_made_durable_by_one_syncfs(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    fsynced: list[Path] = []
    real_syncfs, real_fsync = writer_mod._syncfs, writer_mod._fsync_dir

    def syncfs(path: Path) -> bool:
        synced.append(Path(path))
        return real_syncfs(path)

    def fsync(path: Path) -> None:
        fsynced.append(Path(path))
        real_fsync(path)

    with LakeWriter.open(lake_root) as w:
        monkeypatch.setattr(writer_mod, "_syncfs", syncfs)
        monkeypatch.setattr(writer_mod, "_fsync_dir", fsync)
        _many_partitions(w, writer_mod.SYNCFS_FROM + 2)
        synced.clear()
    if writer_mod._LIBC is None or not hasattr(writer_mod._LIBC, "syncfs"):
        pytest.skip("no syncfs here: every folder is fsynced")
    # one syncfs for every folder; then only the bars mirror's mark of being whole and its sequence
    # (lake/chosen.py), written after the renames are durable, fsync their own folder
    assert len(synced) == 1 and [p.name for p in fsynced] in ([], ["bars_chosen"] * 2), fsynced


def test_when_syncfs_fails_each_folder_is_fsynced_and_an_error_is_clear(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path) -> None:
        raise OSError(5, "Input/output error")

    with LakeWriter.open(lake_root):
        pass
    monkeypatch.setattr(writer_mod, "_syncfs", lambda path: False)
    monkeypatch.setattr(writer_mod, "_fsync_dir", broken)
    with pytest.raises(MarketlakeError, match="could not be made durable"):
        with LakeWriter.open(lake_root) as w:
            _many_partitions(w, writer_mod.SYNCFS_FROM + 2)
