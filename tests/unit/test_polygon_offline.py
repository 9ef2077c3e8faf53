"""Offline, a Polygon ingest says in one line which endpoint host it cannot reach, before any S3 request."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No name resolves (the resolver is never asked), and any S3 client call fails the test."""
    asked: list[str] = []

    def fail(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an S3 client was made offline")

    monkeypatch.setattr("boto3.client", never)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "AKIAFAKEACCESSKEY0001")
    monkeypatch.setenv("POLYGON_S3_SECRET_KEY", "fake-secret-key-never-printed")
    monkeypatch.delenv("POLYGON_S3_BUCKET", raising=False)
    return asked


def test_polygon_offline_is_one_line_naming_the_default_host(
    runner: CliRunner, tmp_path: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLYGON_S3_ENDPOINT", raising=False)
    r = runner.invoke(
        cli,
        ["--lake", str(tmp_path / "lake"), "ingest", "polygon", "--symbols", "AAPL"]
        + ["--start", "2024-01-02", "--end", "2024-01-31"],
    )
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert lines[0].startswith("error: cannot reach files.massive.com: offline?"), r.output
    assert "AKIAFAKE" not in r.output and "fake-secret" not in r.output
    assert offline == ["files.massive.com"]  # asked once for the run, not once per day


def test_polygon_offline_names_the_configured_endpoint(
    runner: CliRunner, tmp_path: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", "https://mirror.invalid:9000")
    r = runner.invoke(
        cli, ["--lake", str(tmp_path / "lake"), "ingest", "polygon", "--symbols", "AAPL", "--interval", "1d"]
    )
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        "error: cannot reach mirror.invalid: offline? Polygon flat files need the network "
        "(or set POLYGON_S3_ENDPOINT for another endpoint)"
    ]
    assert offline == ["mirror.invalid"]


def test_make_ingest_offline_reports_polygon_in_one_line(
    runner: CliRunner, tmp_path: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLYGON_S3_ENDPOINT", raising=False)
    (tmp_path / "marketlake.toml").write_text(
        '[binance]\nsymbols = []\n[polygon]\nsymbols = ["AAPL"]\n[yahoo]\nsymbols = []\n[news]\nsymbols = []\n'
    )
    r = runner.invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest"])
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if "cannot reach" in line]
    assert len(lines) == 1 and "files.massive.com" in lines[0], r.output
    assert "fake-secret" not in r.output and "AKIAFAKE" not in r.output
    assert offline == ["files.massive.com"]
