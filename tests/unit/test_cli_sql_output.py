"""`marketlake sql` output: CSV and JSON stream with bounded memory and print only a consistent read; JSON is
valid (NaN and infinities as null); the table shows its first TABLE_ROWS rows and says how many it left out.
The streamed text is the text the former in-memory `emit` printed (its code is kept here as the reference),
but CSV gives lists, arrays, structs and maps as JSON text and blobs in hex, and JSON a JSON column's values
as JSON values."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import lake
from cli import cli, reading
from cli.main import TABLE_ROWS, write_rows
from lake.writer import LakeWriter
from tests.conftest import bars_table
from tests.faults import marketlake_argv, subprocess_env

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PART = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}


def _no_constant(name: str) -> None:
    raise ValueError(f"not JSON: {name}")


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity (Python's json accepts them; JSON does not)."""
    return json.loads(text, parse_constant=_no_constant)


# --- the reference: the former in-memory emit, for csv and json ------------------------------------------


def _old_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _ref_cell(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(_nulled(value), default=_old_default, ensure_ascii=False)
    return value


def ref_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The former text, but a list, array, struct or map as JSON text (NaN and infinities in it as null) and
    a blob in hex, not Python's repr of them."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows([_ref_cell(v) for v in r] for r in rows)
    return buf.getvalue()


def old_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return (
        json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=_old_default, indent=1) + "\n"
    )


def _nulled(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_nulled(v) for v in value]
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    return value


def _chunks(rows: Sequence[Sequence[Any]], size: int) -> Iterator[Sequence[Sequence[Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.datetimes(),
    st.times(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9),
    st.binary(max_size=8),
    st.timedeltas(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    columns=st.lists(st.sampled_from(["a", "b", "c", "é", 'q"x', "a,b"]), min_size=1, max_size=4),
    data=st.data(),
    size=st.integers(min_value=1, max_value=4),
)
def test_streamed_csv_and_json_are_the_former_text(
    columns: list[str], data: st.DataObject, size: int
) -> None:
    """Chunk by chunk, CSV is the former text byte for byte, but nested values as JSON text and blobs in hex
    (`ref_csv`); JSON is the former text, NaN and infinities as null."""
    rows = data.draw(st.lists(st.tuples(*[VALUES] * len(columns)), max_size=6))
    out = io.StringIO()
    assert write_rows(columns, _chunks(rows, size), "csv", out) == len(rows)
    assert out.getvalue() == ref_csv(columns, rows)
    out = io.StringIO()
    assert write_rows(columns, _chunks(rows, size), "json", out) == len(rows)
    assert out.getvalue() == old_json(columns, [_nulled(list(r)) for r in rows])
    strict_json(out.getvalue())


EVERY_TYPE = (
    "SELECT 1::HUGEINT AS h, '5b9ac9e4-8d1b-4c46-9a4e-2d7c6b1d2a11'::UUID AS u, INTERVAL 1 DAY + INTERVAL 3 HOUR "
    "AS iv, MAP {'a': 1} AS m, {'x': 1.5, 'y': [1, 2]} AS st, [DATE '2024-01-01'] AS l, 'a'::ENUM('a', 'b') AS "
    "e, TIME '12:00:01.5' AS t, TIMETZ '12:00:00+02' AS ttz, TIMESTAMP_NS '2024-01-01 00:00:00.123456789' AS "
    "tns, TIMESTAMP_S '2024-01-01 00:00:01' AS tsec, TIMESTAMPTZ '2024-01-01 05:00:00+05' AS tz, TIMESTAMP "
    "'2024-01-01 00:00:00' AS naive, 'infinity'::TIMESTAMP AS inf, DATE '2024-02-29' AS d, '\\x00\\xff'::BLOB "
    "AS bl, 1.25::DECIMAL(5, 2) AS dec, 1.5::DOUBLE AS f, 1.5::FLOAT AS f4, '101'::BITSTRING AS bs, "
    "union_value(k := 2) AS un, [1, 2]::INTEGER[2] AS arr, 300::USMALLINT AS us, NULL::INTEGER AS nul, true AS "
    "bo, 'é, \"q\"\nx' AS s, '{\"a\":1}'::JSON AS js FROM range(3)"
)


def test_every_duckdb_type_prints_as_before(runner: CliRunner, filled_lake: Path) -> None:
    """As the former text, but in CSV nested values as JSON text and blobs in hex (`ref_csv`), and in JSON a
    JSON column's values as JSON values."""
    con = lake.connect(filled_lake, read_only=True)
    rel = con.sql(EVERY_TYPE)
    columns, rows, types = rel.columns, rel.fetchall(), [str(t) for t in rel.types]
    con.close()
    parsed = [[json.loads(v) if t == "JSON" else v for v, t in zip(r, types, strict=True)] for r in rows]
    for fmt, expected in (("csv", ref_csv(columns, rows)), ("json", old_json(columns, parsed))):
        r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", EVERY_TYPE, "--format", fmt])
        assert r.exit_code == 0, r.output
        assert r.stdout == expected
    assert "2024-01-01T00:00:00+00:00" in r.stdout  # a TIMESTAMPTZ in UTC, ISO 8601


def test_json_gives_nan_and_infinities_as_null(runner: CliRunner, filled_lake: Path) -> None:
    query = (
        "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, '-inf'::FLOAT AS m, [1.5, 'nan'::DOUBLE] AS l, "
        "{'x': 'inf'::DOUBLE} AS s, 2.5 AS ok, NULL AS z"
    )
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert "NaN" not in r.stdout and "Infinity" not in r.stdout, r.stdout
    assert strict_json(r.stdout) == [
        {"n": None, "i": None, "m": None, "l": [1.5, None], "s": {"x": None}, "ok": 2.5, "z": None}
    ]
    r = runner.invoke(
        cli, ["--lake", str(filled_lake), "sql", "SELECT 1 AS a WHERE false", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == "[]\n"


def test_json_columns_are_json_values_in_json(runner: CliRunner, filled_lake: Path) -> None:
    """A JSON-typed column (runs.config, metrics, data_files) is a JSON value in `--format json`, not a string
    holding JSON text: `jq '.[0].metrics.overall'` works."""
    from rl import runlog

    rec = runlog.start_run(filled_lake, "evaluate", {"seed": 7}, run_id="r-json")
    rec.metrics = {"overall": {"agent": {"sharpe": 0.5}}}
    runlog.finish_run(filled_lake, rec)
    r = runner.invoke(
        cli, ["--lake", str(filled_lake), "sql", "SELECT config, metrics FROM runs", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    (row,) = strict_json(r.stdout)
    assert row["metrics"]["overall"] == {"agent": {"sharpe": 0.5}} and row["config"]["seed"] == 7, r.stdout
    query = "SELECT '[1, 2.5, null, \"x\"]'::JSON AS a, '3'::JSON AS b, NULL::JSON AS c, '{}'::JSON AS d"
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert strict_json(r.stdout) == [{"a": [1, 2.5, None, "x"], "b": 3, "c": None, "d": {}}], r.stdout


def test_csv_gives_lists_and_structs_as_json_and_blobs_in_hex(runner: CliRunner, filled_lake: Path) -> None:
    """A list, an array, a struct or a map is one cell of JSON text in `--format csv` (not Python's repr:
    ['csv'], {'a': 1}); a blob is its bytes in hex (not b'\\x00\\xff'); JSON columns stay their JSON text."""
    query = (
        "SELECT ['csv', 'x'] AS l, {'a': 1, 'b': [DATE '2024-01-02']} AS s, MAP {'k': 1.5} AS m, "
        "[1, 2]::INTEGER[2] AS arr, '\\x00\\xff'::BLOB AS b, [NULL, 'nan'::DOUBLE] AS n, "
        "'{\"a\": 1}'::JSON AS j, 'é' AS t"
    )
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", query, "--format", "csv"])
    assert r.exit_code == 0, r.output
    (row,) = csv.DictReader(io.StringIO(r.stdout))
    assert row == {
        "l": '["csv", "x"]',
        "s": '{"a": 1, "b": ["2024-01-02"]}',
        "m": '{"k": 1.5}',
        "arr": "[1, 2]",
        "b": "00ff",
        "n": "[null, null]",
        "j": '{"a": 1}',
        "t": "é",
    }, r.stdout
    assert json.loads(row["s"]) == {"a": 1, "b": ["2024-01-02"]}


def test_the_table_shows_its_first_rows_and_says_how_many_it_left_out(
    runner: CliRunner, filled_lake: Path
) -> None:
    assert TABLE_ROWS == 1000
    r = runner.invoke(
        cli, ["--lake", str(filled_lake), "sql", "SELECT range + 100000 AS i FROM range(13000)"]
    )
    assert r.exit_code == 0, r.output
    assert "100999" in r.stdout and "101000" not in r.stdout, r.stdout[-500:]
    assert r.stderr.strip() == (
        "note: the table shows the first 1,000 of 13,000 rows (12,000 not shown); `--format csv` or "
        "`--format json` prints every row, or narrow the query (LIMIT, WHERE)"
    )
    r = runner.invoke(cli, ["--lake", str(filled_lake), "sql", "SELECT range + 100000 AS i FROM range(1000)"])
    assert r.exit_code == 0, r.output
    assert "100999" in r.stdout and r.stderr == ""


def _write(root: Path, closes: list[float]) -> None:
    with LakeWriter.open(root) as w:
        w.write(lake.BARS, PART, bars_table(T0, closes), mode="replace")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_a_write_overlapped_prints_only_the_read_run_again(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """An ingest replaces the file while the first chunk is being written out: that read is run again and
    only the second read's rows are printed, never some of each version."""
    _write(lake_root, [1.0] * 25_000)
    real = reading.write_rows
    writes: list[int] = []

    def write_rows_overlapped(columns: Any, chunks: Any, *args: Any, **kwargs: Any) -> int:
        def overlapped() -> Iterator[Any]:
            for i, chunk in enumerate(chunks):
                yield chunk
                if i == 0 and not writes:  # a replacement after the first chunk of the first read
                    _write(lake_root, [2.0] * 30_000)
                    writes.append(1)

        return real(columns, overlapped(), *args, **kwargs)

    monkeypatch.setattr(reading, "write_rows", write_rows_overlapped)
    r = runner.invoke(cli, ["--lake", str(lake_root), "sql", "SELECT close FROM lake_bars", "--format", fmt])
    assert r.exit_code == 0, r.output
    assert writes == [1]
    if fmt == "csv":
        assert r.stdout == "close\n" + "2.0\n" * 30_000
    else:
        assert strict_json(r.stdout) == [{"close": 2.0}] * 30_000


N = 400_000
BIG = (
    "SELECT range AS i, range / 4 AS f, 'x' || range AS s, TIMESTAMPTZ '2024-01-01' + to_seconds(range) AS ts, "
    "(TIMESTAMPTZ '2024-01-01' + to_seconds(range))::DATE AS d, ((range % 1000) / 8)::DECIMAL(9, 3) AS dec, "
    "CASE WHEN range % 3 = 0 THEN NULL ELSE range END AS maybe, range % 2 = 0 AS even "
    f"FROM range({N})"
)


def _expected_big() -> str:
    lines = ["i,f,s,ts,d,dec,maybe,even"]
    for i in range(N):
        ts = T0 + dt.timedelta(seconds=i)
        maybe = "" if i % 3 == 0 else str(i)
        lines.append(
            f"{i},{i / 4!r},x{i},{ts.isoformat()},{ts.date()},{(i % 1000) / 8:.3f},{maybe},{i % 2 == 0}"
        )
    return "\n".join(lines) + "\n"


def _peak_rss_kib(root: Path, query: str, out: Path, *more: str) -> int:
    """The peak resident memory of `marketlake sql QUERY --format csv` in its own process, stdout to `out`."""
    with out.open("wb") as f:
        p = subprocess.Popen(
            marketlake_argv("--lake", str(root), "sql", query, "--format", "csv", *more),
            stdout=f,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
        )
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode() if p.stderr else ""
        if p.stderr:
            p.stderr.close()
    assert p.returncode == 0, err
    return int(usage.ru_maxrss)  # KiB on Linux


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_large_csv_export_streams_in_bounded_memory(filled_lake: Path, tmp_path: Path) -> None:
    """400,000 rows x 8 columns (~30 MB of CSV): the process grows by far less than the rows would take in
    memory (the former code held every row and the whole text: ~+300 MB), and prints every row as before."""
    small = _peak_rss_kib(filled_lake, "SELECT 1 AS i", tmp_path / "small.csv")
    big = _peak_rss_kib(filled_lake, BIG, tmp_path / "big.csv")
    growth_mib = (big - small) / 1024
    text = (tmp_path / "big.csv").read_text()
    assert text == _expected_big()
    print(f"growth {growth_mib:.0f} MiB")
    assert growth_mib < 80, f"peak RSS grew by {growth_mib:.0f} MiB for {len(text) / 2**20:.0f} MiB of CSV"


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_large_csv_export_with_params_streams_too(filled_lake: Path, tmp_path: Path) -> None:
    """With --param the query runs on the connection, whose result streams (DuckDB's con.sql with params
    holds the whole result: ~+100 MiB for these rows)."""
    small = _peak_rss_kib(filled_lake, "SELECT 1 AS i", tmp_path / "small.csv")
    query = f"SELECT * FROM ({BIG}) WHERE i >= $lo AND s <> $no"
    big = _peak_rss_kib(filled_lake, query, tmp_path / "big.csv", "--param", "lo=0", "--param", "no=y")
    growth_mib = (big - small) / 1024
    assert (tmp_path / "big.csv").read_text() == _expected_big()
    assert growth_mib < 80, f"peak RSS grew by {growth_mib:.0f} MiB"


def test_a_full_spool_folder_is_one_line_naming_it(
    runner: CliRunner, filled_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's spool on a full $TMPDIR said only "the disk is full": a read-only query, naming no folder."""
    import errno
    import tempfile

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(reading.tempfile, "TemporaryFile", lambda *a, **k: Full())
    r = runner.invoke(
        cli, ["--lake", str(filled_lake), "sql", "SELECT * FROM range(100000)", "--format", "csv"]
    )
    assert r.exit_code == 1, r.output
    (line,) = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert f"temporary file in {tmp_path}" in line and "TMPDIR" in line and "lake is untouched" in line, line


class _ClosedPipe(io.TextIOBase):
    """A stdout whose reader has gone (`marketlake sql ... | head -2`)."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_the_output_quietly(
    filled_lake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--lake", str(filled_lake), "sql", "SELECT * FROM bars", "--format", "csv"])
    assert exit_.value.code == 141  # 128 + SIGPIPE, as `yes | head -1` ends `yes`
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_that_is_not_stdouts_is_an_error(
    filled_lake: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Only stdout's reader going away ends quietly (141): a BrokenPipeError from anything else (a socket of
    ours whose peer closed) while stdout is fine is an error line and 1."""
    from cli import reading

    def broken(*_: object, **__: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(reading.lake, "consistent", broken)  # the read itself breaks a pipe
    out = open(tmp_path / "out.txt", "w")  # stdout a real file: its reader cannot go away
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--lake", str(filled_lake), "sql", "SELECT 1", "--format", "csv"])
    out.close()
    assert exit_.value.code == 1
    assert "error: [Errno 32] Broken pipe" in capfd.readouterr().err


def test_a_pipe_whose_reader_is_gone_is_told_apart_from_one_still_read() -> None:
    from cli.main import _stdout_reader_gone

    r, w = os.pipe()
    with open(w, "w") as writer:
        saved = sys.stdout
        try:
            sys.stdout = writer
            assert not _stdout_reader_gone()
            os.close(r)
            assert _stdout_reader_gone()
        finally:
            sys.stdout = saved


def test_a_socket_whose_reader_is_gone_counts_as_gone_too() -> None:
    """Under systemd or socat stdout is a socket: Linux says POLLHUP there, not POLLERR as on a pipe."""
    import socket

    from cli.main import _stdout_reader_gone

    ours, theirs = socket.socketpair()
    with ours, ours.makefile("w") as writer:
        saved = sys.stdout
        try:
            sys.stdout = writer
            assert not _stdout_reader_gone()
            theirs.close()
            assert _stdout_reader_gone()
        finally:
            sys.stdout = saved
