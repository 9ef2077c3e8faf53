"""Offline, the Yahoo sources say so in one line naming the host, and never start their requests."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No name resolves (no packet leaves the machine: the resolver is never asked)."""
    asked: list[str] = []

    def fail(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Yahoo request was started offline")

    monkeypatch.setattr("ingest.yahoo.YahooClient", never)
    monkeypatch.setattr("yfinance.Ticker", never)
    monkeypatch.setattr("yfinance.data.YfData", never)  # the news ingest asks through yfinance's YfData
    return asked


def test_make_ingest_offline_names_the_yahoo_host_once(
    runner: CliRunner, tmp_path: Path, offline: list[str]
) -> None:
    (tmp_path / "marketlake.toml").write_text(
        '[binance]\nsymbols = []\n[yahoo]\nsymbols = ["AAPL", "MSFT"]\n[news]\nsymbols = ["AAPL"]\n'
    )
    r = runner.invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest"])
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if "cannot reach" in line]
    assert len(lines) == 1 and "query2.finance.yahoo.com" in lines[0], r.output
    assert "yahoo and news" in lines[0]
    assert offline == ["query2.finance.yahoo.com"]


@pytest.mark.parametrize("command", [["yahoo", "--symbols", "AAPL"], ["news", "--symbols", "AAPL"]])
def test_a_yahoo_ingest_offline_is_one_line(
    runner: CliRunner, tmp_path: Path, offline: list[str], command: list[str]
) -> None:
    r = runner.invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest", *command])
    assert r.exit_code == 1, r.output
    said = [line for line in r.output.splitlines() if "cannot reach" in line or "error" in line]
    assert said == [
        "error: cannot reach query2.finance.yahoo.com: offline? Yahoo prices and news need the network"
    ], r.output
