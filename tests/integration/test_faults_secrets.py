"""Case 4 (machinery, proven on the commands that exist): with canary values in POLYGON_S3_SECRET_KEY and
SUPABASE_SERVICE_ROLE_KEY, at DEBUG log level, the canaries appear in no log line, error message,
exception text, lake file or run row. The helper itself is shown to catch a leak through each channel.
The ingest commands are added to COMMANDS as they land.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import lake
from ingest.sessions import land
from lake.errors import MarketlakeError
from lake.schemas import UTC_TS
from tests.conftest import bars_table
from tests.faults import marketlake_argv
from tests.secrets_canary import (
    CANARIES,
    Capture,
    assert_no_leak,
    canaries,
    leaks,
    run_callable,
    run_cli,
    run_subprocess,
)

pytestmark = pytest.mark.integration

SECRET = CANARIES["POLYGON_S3_SECRET_KEY"]
ROLE_KEY = CANARIES["SUPABASE_SERVICE_ROLE_KEY"]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def filled_lake(lake_root: Path) -> Path:
    with land(lake_root) as w:
        w.write(
            lake.BARS,
            {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"},
            bars_table(T0, [1.0, 2.0]),
            inputs=[{"file": "BTCUSDT-1m-2024-01-01.zip", "sha256": "0" * 64}],
        )
        run = {
            "run_id": ["r1"],
            "kind": ["train"],
            "started_at": pa.array([T0], type=UTC_TS),
            "finished_at": pa.array([None], type=UTC_TS),
            "config": [json.dumps({"symbols": ["BTCUSDT"], "seed": 0})],
            "data_snapshot": ["abc"],
            "metrics": [None],
            "status": ["finished"],
            **{c: [None] for c in ("code_version", "run_dir", "parent_run_id", "data_files")},
        }
        w.write(lake.RUNS, {"period": "2024-01"}, pa.table(run))
    return lake_root


# (arguments after --lake, expected exit code)
COMMANDS = [
    (["sql", "SELECT symbol, count(*) AS n FROM bars GROUP BY ALL", "--format", "json"], 0),
    (["runs", "--format", "json"], 0),
    (["verify"], 0),
    (["check", "--format", "json"], 0),
    (["check", "--strict"], 1),  # a failing command: configured symbols are not eligible
    (["sql", f"SELECT '{SECRET}'::INTEGER"], 1),  # a failing query whose error quotes the secret
    (["sql", f"SELECT * FROM read_parquet('{ROLE_KEY}/x.parquet')"], 1),  # an error naming a path with it
]


@pytest.mark.parametrize(
    ("args", "code"), COMMANDS, ids=lambda a: " ".join(a)[:40] if isinstance(a, list) else None
)
def test_commands_at_debug_leak_no_secret(
    monkeypatch: pytest.MonkeyPatch, runner: CliRunner, filled_lake: Path, args: list[str], code: int
) -> None:
    with canaries(monkeypatch):
        cap = run_cli(runner, ["--lake", str(filled_lake), *args])
    assert cap.exit_code == code, cap.stdout + cap.stderr
    assert cap.exception == "", cap.exception
    if code:
        assert cap.stderr.startswith("error: "), cap.stderr
    assert_no_leak(cap, filled_lake)


def test_the_secret_in_an_error_is_replaced_not_dropped(
    monkeypatch: pytest.MonkeyPatch, runner: CliRunner, filled_lake: Path
) -> None:
    with canaries(monkeypatch):
        cap = run_cli(runner, ["--lake", str(filled_lake), "sql", f"SELECT '{SECRET}'::INTEGER"])
    assert "'***'" in cap.stderr, cap.stderr  # the message is still useful: the value is masked in place
    assert_no_leak(cap, filled_lake)


def test_an_exception_holding_the_secret_logged_at_debug_with_exc_info(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = logging.getLogger("ingest.polygon")

    def failing_request() -> None:
        try:
            try:
                raise ConnectionError(f"403 for https://u:{SECRET}@files.example/x?key={ROLE_KEY}")
            except ConnectionError as inner:
                raise MarketlakeError(f"polygon: AAPL 2024-01-02: signing with {SECRET} failed") from inner
        except MarketlakeError:
            log.debug("request failed for key %s / %r", SECRET, {"role": ROLE_KEY}, exc_info=True)
            log.warning("polygon: AAPL 2024-01-02 failed (%s)", SECRET)
        logging.getLogger("botocore.credentials").debug("secret_key=%s", SECRET, stack_info=True)

    with canaries(monkeypatch):
        cap = run_callable(failing_request)
    # The lines were logged (so the test is not vacuous), with the secrets masked where they stood.
    assert "request failed for key *** / {'role': '***'}" in cap.stderr, cap.stderr
    assert "ConnectionError: 403 for https://u:***@files.example/x?key=***" in cap.stderr, cap.stderr
    assert "The above exception was the direct cause" in cap.stderr
    assert "WARNING ingest.polygon: polygon: AAPL 2024-01-02 failed (***)" in cap.stderr
    assert len(cap.records) == 3, cap.records  # every handler got them redacted, not just the CLI's
    assert_no_leak(cap)


def test_an_uncaught_exception_prints_a_redacted_traceback(tmp_path: Path) -> None:
    script = (
        "import os\nfrom lake.logs import setup_logging\nsetup_logging('DEBUG')\n"
        "raise RuntimeError('bad key ' + os.environ['POLYGON_S3_SECRET_KEY'])\n"
    )
    cap = run_subprocess([sys.executable, "-c", script])
    assert cap.exit_code == 1
    assert "RuntimeError: bad key ***" in cap.stderr, cap.stderr
    assert_no_leak(cap)


def test_the_cli_in_a_subprocess_leaks_nothing(filled_lake: Path) -> None:
    cap = run_subprocess(
        marketlake_argv("--log-level", "DEBUG", "--lake", str(filled_lake), "sql", f"SELECT '{SECRET}'::DATE")
    )
    assert cap.exit_code == 1 and cap.stderr.startswith("error: "), cap.stderr
    assert_no_leak(cap, filled_lake)


# --- the helper catches a leak through each channel ------------------------------------------------------


def _leaky_lake(root: Path, how: str) -> None:
    with land(root) as w:
        if how == "parquet":  # zstd-compressed: only decoding finds it
            t = bars_table(T0, [1.0] * 50, source_file=f"https://x/{SECRET}")
            w.write(
                lake.BARS,
                {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"},
                t,
            )
        elif how == "manifest":
            w.write(
                lake.BARS,
                {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"},
                bars_table(T0, [1.0]),
                inputs=[
                    {
                        "url": f"https://files.example/x?X-Secret={SECRET.replace('/', '%2F').replace('+', '%2B')}"
                    }
                ],
            )
        elif how == "run-row":
            run = {
                "run_id": ["r1"],
                "kind": ["train"],
                "started_at": pa.array([T0], type=UTC_TS),
                "finished_at": pa.array([None], type=UTC_TS),
                "config": [json.dumps({"supabase_key": ROLE_KEY})],
                "data_snapshot": ["abc"],
                "metrics": [None],
                "status": ["finished"],
                **{c: [None] for c in ("code_version", "run_dir", "parent_run_id", "data_files")},
            }
            w.write(lake.RUNS, {"period": "2024-01"}, pa.table(run))
    if how == "raw-gzip":
        p = root / "raw" / "polygon" / "x.csv.gz"
        p.parent.mkdir(parents=True)
        p.write_bytes(gzip.compress(f"ticker,key\nAAPL,{ROLE_KEY}\n".encode()))


@pytest.mark.parametrize("how", ["parquet", "manifest", "run-row", "raw-gzip"])
def test_the_helper_finds_a_secret_in_the_lake(lake_root: Path, how: str) -> None:
    _leaky_lake(lake_root, how)
    found = leaks(Capture(), lake_root)
    assert found, f"{how}: the canary was not found"
    with pytest.raises(AssertionError, match="a secret leaked"):
        assert_no_leak(Capture(), lake_root)


@pytest.mark.parametrize("channel", ["stdout", "stderr", "exception", "base64-header"])
def test_the_helper_finds_a_secret_in_output(monkeypatch: pytest.MonkeyPatch, channel: str) -> None:
    import base64

    def leaky() -> None:
        if channel == "stdout":
            print(f"key={SECRET}")
        elif channel == "stderr":
            print(ROLE_KEY, file=sys.stderr)
        elif channel == "exception":
            raise ValueError(SECRET)
        else:
            print("Authorization: Basic " + base64.b64encode(SECRET.encode()).decode())

    with canaries(monkeypatch):
        cap = run_callable(leaky)
    assert leaks(cap), channel
