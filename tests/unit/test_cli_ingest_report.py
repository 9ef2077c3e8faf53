"""What `marketlake ingest` reports: --quiet hides progress and the summary tables, never a note or an error;
a configured Polygon without its keys is skipped with a note even under --quiet (DESIGN: with no keys at all
`make ingest` still works), while `ingest polygon` fails without them; the settings file is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli
from ingest.common import IngestSummary

POLYGON_ONLY = (
    "[data]\nstart = 2024-03-01\nend = 2024-03-05\n[binance]\nsymbols = []\n[polygon]\n"
    'symbols = ["AAPL"]\n[yahoo]\nsymbols = []\n[news]\nsymbols = []\n'
)


def _noted(*a: Any, **k: Any) -> IngestSummary:
    s = IngestSummary("binance")
    s.of("MATICUSDT").files_missing = 7
    s.notes.append("MATICUSDT: not on Data Vision (404) from 2024-09-04: delisted?")
    return s


def test_quiet_hides_the_table_but_not_the_notes(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import binance

    monkeypatch.setattr(binance, "run", _noted)
    args = ["ingest", "binance", "--symbols", "MATICUSDT", "--start", "2024-09-01", "--end", "2024-09-10"]
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", *args])
    assert r.exit_code == 0, r.output
    assert "note: MATICUSDT: not on Data Vision (404) from 2024-09-04: delisted?" in r.stderr, r.output
    assert "ingest summary" not in r.output and "lake:" not in r.output, r.output

    r = runner.invoke(cli, ["--lake", str(lake_root), *args])
    assert r.exit_code == 0, r.output
    assert "note: MATICUSDT: not on Data Vision" in r.stderr and "ingest summary" in r.output, r.output


def test_a_configured_polygon_without_keys_is_skipped_with_a_note_even_quiet(
    runner: CliRunner, lake_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "marketlake.toml").write_text(POLYGON_ONLY)
    for quiet in (["-q"], []):
        r = runner.invoke(cli, ["--lake", str(lake_root), *quiet, "ingest"])
        assert r.exit_code == 0, r.output
        assert "note: polygon: POLYGON_S3_ACCESS_KEY and POLYGON_S3_SECRET_KEY are not set" in r.stderr, (
            r.output
        )
        assert f"symbols = [] under [polygon] in {tmp_path / 'marketlake.toml'}" in r.stderr, r.output
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "ingest", "polygon", "--tickers", "AAPL"])
    assert r.exit_code == 1, r.output
    assert "POLYGON_S3_ACCESS_KEY and POLYGON_S3_SECRET_KEY are not set" in r.stderr, r.output


def test_a_configured_polygon_without_its_secret_key_is_named_too(
    runner: CliRunner, lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "marketlake.toml").write_text(POLYGON_ONLY)
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY", "a")
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "ingest"])
    assert r.exit_code == 0, r.output
    assert "note: polygon: POLYGON_S3_SECRET_KEY is not set" in r.stderr, r.output


def test_the_default_settings_do_not_ask_for_polygon_keys(
    runner: CliRunner, lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import binance

    ran: list[list[str]] = []

    def fine(ctx: Any, symbols: list[str], *a: Any, **k: Any) -> IngestSummary:
        ran.append(symbols)
        return IngestSummary("binance")

    monkeypatch.setattr(binance, "run", fine)
    r = runner.invoke(cli, ["--lake", str(lake_root), "-q", "ingest"])
    assert r.exit_code == 0, r.output
    assert ran == [["BTCUSDT", "ETHUSDT"]]
    assert r.output == "", r.output


def test_ingest_names_the_settings_file_it_used(
    runner: CliRunner, lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import binance

    monkeypatch.setattr(binance, "run", lambda *a, **k: IngestSummary("binance"))
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest"])
    assert r.exit_code == 0, r.output
    assert f"settings: the built-in defaults (no marketlake.toml in {tmp_path})" in r.stderr, r.output

    (tmp_path / "marketlake.toml").write_text('[binance]\nsymbols = ["BTCUSDT"]\n')
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest"])
    assert r.exit_code == 0, r.output
    assert f"settings: {tmp_path / 'marketlake.toml'}" in r.stderr, r.output


def test_a_source_that_did_not_run_prints_no_table(
    runner: CliRunner, lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import binance
    from lake.errors import MarketlakeError

    (tmp_path / "marketlake.toml").write_text(POLYGON_ONLY)
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest"])  # Polygon without keys: skipped
    assert r.exit_code == 0, r.output
    assert "note: polygon: POLYGON_S3_ACCESS_KEY" in r.stderr, r.output
    assert "ingest summary" not in r.output and "rows landed" not in r.output, r.output

    def boom(*a: Any, **k: Any) -> IngestSummary:
        raise MarketlakeError("binance: the mirror is on fire")

    monkeypatch.setattr(binance, "run", boom)  # failed before landing anything: the error is enough
    (tmp_path / "marketlake.toml").write_text(
        POLYGON_ONLY.replace("[binance]\nsymbols = []", '[binance]\nsymbols = ["BTCUSDT"]')
    )
    r = runner.invoke(cli, ["--lake", str(lake_root), "ingest"])
    assert r.exit_code == 1, r.output
    assert "error: binance: the mirror is on fire" in r.stderr, r.output
    assert "ingest summary" not in r.output, r.output
    # (a source that ran keeps its table: test_quiet_hides_the_table_but_not_the_notes)
