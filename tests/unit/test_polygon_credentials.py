"""Missing Polygon keys: a clear message naming the variable, before any request."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli


@pytest.fixture(autouse=True)
def _no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an S3 client was made although the keys are missing")

    monkeypatch.setattr(boto3, "client", refuse)


ARGS = [
    "ingest",
    "polygon",
    "--tickers",
    "AAPL",
    "--interval",
    "1m",
    "--start",
    "2024-01-02",
    "--end",
    "2024-01-02",
]


def test_missing_access_key_is_named(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "s")
    r = runner.invoke(cli, ["--lake", str(lake_root), *ARGS])
    assert r.exit_code == 1, r.output
    assert "POLYGON_S3_ACCESS_KEY is not set" in r.output
    assert "POLYGON_S3_SECRET_KEY" not in r.output


def test_both_missing_are_named(runner: CliRunner, lake_root: Path) -> None:
    r = runner.invoke(cli, ["--lake", str(lake_root), *ARGS])
    assert r.exit_code == 1, r.output
    assert "POLYGON_S3_ACCESS_KEY and POLYGON_S3_SECRET_KEY are not set" in r.output


def test_keys_from_dotenv_are_used(runner: CliRunner, lake_root: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("POLYGON_S3_ACCESS_KEY=a\n")  # cwd is tmp_path
    r = runner.invoke(cli, ["--lake", str(lake_root), *ARGS])
    assert r.exit_code == 1, r.output
    assert "POLYGON_S3_SECRET_KEY is not set" in r.output and "POLYGON_S3_ACCESS_KEY" not in r.output
