"""Case 1 at the ingest level: `marketlake ingest binance` (and `ingest polygon`) killed with SIGKILL at
several points, then re-run: the re-run completes, no duplicate or partial row, no temporary file read
by any view (before the re-run) or left behind (after it), and the lake is byte for byte (every
data.parquet and _manifest.json, and the raw cache) the lake of a run that was never killed.

The commands run in subprocesses against the local Data Vision (tests/binance_server.py) and moto
(tests/s3_server.py). Two kill points are too narrow for a signal (between one file's bars and
bars_rejected writes; between the data and manifest renames); they are hit exactly in-process, by an
exception standing for SIGKILL at that instruction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake
from ingest import binance
from ingest.common import RunContext
from lake.config import Settings
from lake.paths import SCHEMA_ANCHOR
from lake.schemas import DATASETS, Dataset
from lake.writer import DATA_FILE, LakeWriter, WriteResult
from tests.binance_server import DataVision, csv_bytes, kline_line, klines, serve, zip_path
from tests.faults import (
    Running,
    Trigger,
    assert_lake_consistent,
    kill_at,
    kill_then_rerun,
    lake_files,
    marketlake_argv,
    raw_files,
    run,
    subprocess_env,
    temp_files,
)
from tests.s3_server import BUCKET, S3Server, day_file, minute_key, ns, running_s3

pytestmark = pytest.mark.integration

UTC = dt.UTC
JAN = dt.date(2024, 1, 1)
T_JAN = dt.datetime(2024, 1, 1, tzinfo=UTC)
FEB = [dt.date(2024, 2, 1), dt.date(2024, 2, 2)]
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START, END = "2024-01-01", "2024-02-02"  # January monthly, two daily files in February


def _binance_args(root: Path) -> list[str]:
    return ["--lake", str(root), "ingest", "binance", "--symbols", ",".join(SYMBOLS),
            "--interval", "1m", "--start", START, "--end", END]  # fmt: skip


@pytest.fixture(scope="module")
def dv() -> Iterator[DataVision]:
    """Two symbols: a large January file each (with bad rows for bars_rejected), two February days."""
    for server in serve():
        for k, sym in enumerate(SYMBOLS):
            base = 42000.0 if k == 0 else 2300.0
            rows = klines(T_JAN, 30_000, base=base)
            bad = [kline_line(r).replace(r.high, "oops", 1) for r in klines(T_JAN + dt.timedelta(days=25), 3)]
            csv = csv_bytes(rows) + ("\n".join(bad) + "\n").encode()
            server.publish(sym, "1m", JAN, "monthly", csv=csv)
            for d in FEB:
                start = dt.datetime.combine(d, dt.time(), UTC)
                server.publish(sym, "1m", d, "daily", klines(start, 1440, base=base))
        yield server


def _env(dv: DataVision) -> dict[str, str]:
    return subprocess_env(BINANCE_BASE_URL=dv.base_url)


@pytest.fixture(scope="module")
def reference(dv: DataVision, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lake of a binance ingest nobody killed."""
    root = tmp_path_factory.mktemp("reference") / "lake"
    p = run(marketlake_argv(*_binance_args(root)), env=_env(dv))
    assert p.returncode == 0, p.stderr
    n = lake.connect(root, read_only=True).sql("SELECT count(*) FROM lake_bars_rejected").fetchone()
    assert n == (6,), "the reference run quarantines the bad rows"
    return root


def _files_under(root: Path, sub: str, pred: Callable[[Path], bool]) -> bool:
    base = root / sub
    if not base.exists():
        return False
    return any(pred(Path(d) / f) for d, _, fs in os.walk(base) for f in fs)


def _temp_under(root: Path, sub: str) -> Trigger:
    return lambda _: _files_under(root, sub, lambda p: ".tmp-" in p.name)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z")


def _frozen(check: Trigger) -> Trigger:
    """Fire only if `check` still holds once the process is stopped (SIGSTOP): the state seen is the
    state it is killed in, never one it left between the check and the kill."""

    def trigger(r: Running) -> bool:
        if not check(r):
            return False
        os.kill(r.proc.pid, signal.SIGSTOP)
        while r.proc.poll() is None and not _stopped(r.proc.pid):
            time.sleep(0.0005)
        if check(r):
            return True  # SIGKILL ends a stopped process too
        os.kill(r.proc.pid, signal.SIGCONT)
        return False

    return trigger


def _kill_points(dv: DataVision, root: Path) -> dict[str, Trigger]:
    eth_jan = zip_path("ETHUSDT", "1m", JAN, "monthly")
    btc_jan_cached = root / "raw/binance" / zip_path("BTCUSDT", "1m", JAN, "monthly").lstrip("/")

    def downloading(_: Running) -> bool:  # one zip verified in the cache, another still on the wire
        pending = any(st == 0 for _, _, st in dv.requests(eth_jan))
        return pending and btc_jan_cached.exists()

    first_partition = root / "datasets/bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-01"
    return {
        "while-downloading": downloading,
        "inside-a-bars-write": _frozen(_temp_under(root, "datasets/bars")),
        "after-the-first-partition": lambda _: (first_partition / "_manifest.json").exists(),
    }


def _visible_rows_are_whole_files(root: Path) -> None:
    """Between a kill and the re-run: every view reads exactly the rows of the final-named data files,
    never a temporary or half-written one."""
    con = lake.connect(root, read_only=True)
    try:
        for name in DATASETS:
            base = root / "datasets" / name
            on_disk = sum(pq.ParquetFile(p).metadata.num_rows for p in base.rglob(DATA_FILE))
            (n,) = con.sql(f"SELECT count(*) FROM lake_{name}").fetchone()  # type: ignore[misc]
            assert n == on_disk, f"lake_{name}: {n} rows visible, whole data files hold {on_disk}"
    finally:
        con.close()


def _assert_same_lake(root: Path, reference: Path) -> None:
    assert_lake_consistent(root)
    assert lake_files(root) == lake_files(reference), "re-run after a kill differs from a clean run"
    assert raw_files(root) == raw_files(reference), "the raw cache differs from a clean run's"


@pytest.mark.parametrize("point", ["while-downloading", "inside-a-bars-write", "after-the-first-partition"])
def test_binance_ingest_killed_then_rerun_gives_the_lake_of_an_unkilled_run(
    dv: DataVision, reference: Path, lake_root: Path, point: str
) -> None:
    if point == "while-downloading":
        dv.fault(zip_path("ETHUSDT", "1m", JAN, "monthly"), "slow:1")
    dv.clear_log()
    argv = marketlake_argv(*_binance_args(lake_root))
    killed, first = _kill(argv, _kill_points(dv, lake_root)[point], _env(dv))
    assert killed, f"{point}: finished before the kill point\n{first}"
    _visible_rows_are_whole_files(lake_root)
    if point == "inside-a-bars-write":
        assert temp_files(lake_root), "killed inside a write: its temporary file is still there"
    rerun = run(argv, env=_env(dv))
    assert rerun.returncode == 0, rerun.stderr
    _assert_same_lake(lake_root, reference)


def _kill(argv: list[str], trigger: Trigger, env: dict[str, str]) -> tuple[bool, str]:
    killed, proc = kill_at(argv, trigger, env=env, timeout=60)
    return killed, proc.output()


class _Killed(BaseException):
    """Stands for SIGKILL at one exact instruction (the window is too narrow to hit with a signal)."""


def _ingest_in_process(root: Path) -> None:
    ctx = RunContext(root=root, settings=Settings(), quiet=True)
    s = binance.run(ctx, list(SYMBOLS), "1m", dt.date.fromisoformat(START), dt.date.fromisoformat(END))
    assert s.ok, s.errors


def test_binance_killed_between_a_files_bars_and_its_rejected_rows_rerun_lands_them(
    dv: DataVision, reference: Path, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's rows are written to two datasets; a kill after the first write must not make the
    re-run skip the file as already landed (its quarantined rows would be lost for good)."""
    monkeypatch.setenv("BINANCE_BASE_URL", dv.base_url)
    # one partition at a time, so that the simulated kill (an exception, which stops only its own thread)
    # comes right after the first write; a real kill of the threaded landing is the SIGKILL test above
    monkeypatch.setattr(binance, "LAND_THREADS", 1)
    real_write = LakeWriter.write
    writes: list[str] = []

    def die_after_the_first_dataset(
        self: LakeWriter, dataset: Dataset, partition: Mapping[str, str], table: pa.Table, **kw: Any
    ) -> WriteResult:
        if writes and dataset.name != writes[0]:
            raise _Killed
        writes.append(dataset.name)
        return real_write(self, dataset, partition, table, **kw)

    monkeypatch.setattr(LakeWriter, "write", die_after_the_first_dataset)
    with pytest.raises(_Killed):
        _ingest_in_process(lake_root)
    monkeypatch.setattr(LakeWriter, "write", real_write)
    assert len(writes) == 1
    _ingest_in_process(lake_root)
    _assert_same_lake(lake_root, reference)


def test_binance_half_download_left_by_a_killed_run_is_removed_and_fetched_whole(
    dv: DataVision, reference: Path, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run killed mid-download leaves (the window is a few milliseconds, too narrow to hit with a
    signal reliably): the first half of a zip under its temporary name, and the same half under the
    final name with no sidecar (as if a buggy copy had been made). The re-run removes the first, never
    trusts the second, and lands the lake of an unkilled run."""
    monkeypatch.setenv("BINANCE_BASE_URL", dv.base_url)
    rel = zip_path("BTCUSDT", "1m", JAN, "monthly").lstrip("/")
    whole = dv.files["/" + rel]
    final = lake_root / "raw/binance" / rel
    final.parent.mkdir(parents=True)
    tmp = final.with_name(final.name + ".tmp-99999")
    tmp.write_bytes(whole[: len(whole) // 2])
    final.write_bytes(whole[: len(whole) // 2])

    _ingest_in_process(lake_root)

    assert not tmp.exists()
    assert final.read_bytes() == whole
    _assert_same_lake(lake_root, reference)


def _manifest_problems(root: Path) -> list[str]:
    """Data files whose manifest is missing or describes another file."""
    missing = [
        str(p) for p in (root / "datasets").rglob(DATA_FILE)
        if SCHEMA_ANCHOR not in str(p) and not (p.parent / "_manifest.json").exists()
    ]  # fmt: skip
    return missing + lake.verify(root)


@pytest.mark.parametrize("partition", ["new", "growing"])
def test_binance_killed_between_the_data_and_manifest_renames_is_repaired(
    dv: DataVision, reference: Path, lake_root: Path, monkeypatch: pytest.MonkeyPatch, partition: str
) -> None:
    """`new`: the first partition a run writes; `growing`: a partition that held a day already and gets
    the next one (its manifest then trails by one input)."""
    monkeypatch.setenv("BINANCE_BASE_URL", dv.base_url)
    if partition == "growing":
        ctx = RunContext(root=lake_root, settings=Settings(), quiet=True)
        assert binance.run(ctx, ["BTCUSDT"], "1m", FEB[0], FEB[0]).ok
    target = "bars/source=binance/interval=1m/symbol=BTCUSDT/period=2024-02/_manifest.json"
    real_replace = os.replace

    def die_before_the_manifest(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if str(dst).endswith("_manifest.json") and (partition == "new" or str(dst).endswith(target)):
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", die_before_the_manifest)
    with pytest.raises(_Killed):
        _ingest_in_process(lake_root)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _manifest_problems(lake_root) != [], "the manifest trails the data: the state such a kill leaves"
    _ingest_in_process(lake_root)
    _assert_same_lake(lake_root, reference)


# --- polygon -----------------------------------------------------------------------------------------

P_DAYS = [dt.date(2024, 1, 29), dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
TICKERS = ("AAPL", "MSFT", "SPY")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        for d in P_DAYS:
            open_ = dt.datetime.combine(d, dt.time(14, 30), UTC)
            rows: list[tuple[object, ...]] = [
                (t, 100 + i, 10.5 + k, 10.75 + k, 11 + k, 10 + k, ns(open_ + dt.timedelta(minutes=i)), 7)
                for i in range(390)
                for k, t in enumerate((*TICKERS, "ZZZ"))
            ]
            rows.append(("MSFT", 1, 1, 1, 1, 1, "123", 1))  # a bad row: bars_rejected
            client.put_object(Bucket=BUCKET, Key=minute_key(d), Body=day_file(rows))
        yield server


def _polygon(s3: S3Server, root: Path) -> tuple[list[str], dict[str, str]]:
    argv = marketlake_argv("--lake", str(root), "ingest", "polygon", "--tickers", ",".join(TICKERS),
                           "--interval", "1m", "--start", P_DAYS[0].isoformat(), "--end", P_DAYS[-1].isoformat())  # fmt: skip
    env = subprocess_env(
        POLYGON_S3_ENDPOINT=s3.endpoint,
        POLYGON_S3_ACCESS_KEY="test-access",
        POLYGON_S3_SECRET_KEY="test-secret",
    )
    return argv, env


def test_polygon_ingest_killed_inside_a_write_then_rerun_gives_the_lake_of_an_unkilled_run(
    s3: S3Server, tmp_path: Path
) -> None:
    ref = tmp_path / "reference"
    argv, env = _polygon(s3, ref)
    p = run(argv, env=env)
    assert p.returncode == 0, p.stderr
    root = tmp_path / "lake"
    argv, env = _polygon(s3, root)

    # inside the second day's writes: the first day landed whole, the second is half done
    def inside_the_second_day(_: Running) -> bool:
        ledger = root / "raw/polygon" / (minute_key(P_DAYS[0]) + ".ingested.json")
        return ledger.exists() and _files_under(root, "datasets", lambda p: ".tmp-" in p.name)

    report = kill_then_rerun(argv, inside_the_second_day, env=env, timeout=60)
    assert report.killed, f"finished before the kill point\n{report.first_output}"
    assert report.rerun.returncode == 0, report.rerun.stderr
    _assert_same_lake(root, ref)
    ledger = json.loads((root / "raw/polygon" / (minute_key(P_DAYS[1]) + ".ingested.json")).read_text())
    assert ledger["tickers"] == sorted(TICKERS)
