"""A Polygon run that yields nothing must not look like success (issue 14, item 4): a bucket that does not
exist or refused credentials are named (bucket and endpoint, never the keys), a ticker that is in no file
is named, and each exits non-zero."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from tests.s3_server import BUCKET, S3Server, day_file, minute_key, ns, running_s3

pytestmark = pytest.mark.integration
D1 = dt.date(2024, 1, 2)
KEY, SECRET = "AKIA-holes-test-key", "holes-test-secret-value"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_s3() as server:
        yield server


@pytest.fixture
def env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    s3_server.reset()
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", KEY)
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", SECRET)
    return s3_server


def ingest(runner: CliRunner, root: Path, *args: str) -> tuple[int, str]:
    r = runner.invoke(
        cli,
        [
            "-q",
            "--lake",
            str(root),
            "ingest",
            "polygon",
            *args,
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-05",
        ],
    )
    return r.exit_code, r.output


def test_a_bucket_that_does_not_exist_is_named_and_fails(
    env: S3Server, runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYGON_S3_BUCKET", "no-such-bucket")
    code, out = ingest(runner, lake_root, "--symbols", "AAPL")
    assert code != 0, out
    assert "no-such-bucket" in out and env.endpoint in out and "does not exist" in out, out
    assert KEY not in out and SECRET not in out


def test_a_ticker_in_no_file_is_named_and_fails_also_quietly(
    env: S3Server, runner: CliRunner, lake_root: Path
) -> None:
    client = env.client()
    client.create_bucket(Bucket=BUCKET)
    at = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    client.put_object(
        Bucket=BUCKET, Key=minute_key(D1), Body=day_file([("AAPL", 100, 1.0, 1.0, 1.0, 1.0, ns(at), 1)])
    )
    code, out = ingest(runner, lake_root, "--symbols", "AAPL,aapl")
    assert code != 0, out
    assert "aapl: no rows" in out and "AAPL?" in out, out
    code, out = ingest(runner, lake_root, "--symbols", "AAPL")
    assert code == 0, out  # the rows are there: skipped this time, no failure


@pytest.mark.parametrize("quiet", [False, True])
def test_polygon_shows_progress_per_day_file_unless_quiet(
    env: S3Server, lake_root: Path, quiet: bool
) -> None:
    import io

    from rich.console import Console

    from ingest import polygon
    from ingest.common import RunContext
    from lake.config import Settings

    client = env.client()
    client.create_bucket(Bucket=BUCKET)
    at = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    client.put_object(
        Bucket=BUCKET, Key=minute_key(D1), Body=day_file([("AAPL", 100, 1.0, 1.0, 1.0, 1.0, ns(at), 1)])
    )
    out = io.StringIO()
    ctx = RunContext(root=lake_root, settings=Settings(), quiet=quiet, console=Console(file=out, width=120))
    s = polygon.run(ctx, ["AAPL"], "1m", D1, D1)
    assert s.ok, s.errors
    if quiet:
        assert out.getvalue() == ""
    else:
        assert "polygon 1m" in out.getvalue() and "1/1 day files" in out.getvalue(), out.getvalue()
        assert "0 failed" in out.getvalue()
