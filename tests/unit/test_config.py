"""marketlake.toml and .env: defaults, and errors that name the file, key and line."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from lake.config import Settings, load_dotenv_file, load_settings
from lake.errors import ConfigError


def test_defaults_are_the_ones_the_product_started_from() -> None:
    s = load_settings()
    assert (s.data_days, s.min_bars_per_symbol, s.max_missing_ratio) == (60, 1000, 0.05)
    assert s.date_range(dt.date(2024, 3, 1)) == (dt.date(2024, 1, 1), dt.date(2024, 2, 29))


def test_the_repository_config_loads() -> None:
    s = load_settings(Path(__file__).parents[2] / "marketlake.toml")
    assert isinstance(s, Settings) and s.binance.symbols


def test_a_wrong_type_names_the_key_and_line(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[data]\ndata_days = 60\nmin_bars_per_symbol = 'lots'\n")
    with pytest.raises(ConfigError, match=r"m.toml, line 3: key 'data.min_bars_per_symbol'"):
        load_settings(p)


def test_an_unknown_key_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[binance]\nsymbols = ['BTCUSDT']\nintervall = '1m'\n")
    with pytest.raises(ConfigError, match=r"line 3: key 'binance.intervall': unknown"):
        load_settings(p)


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[data]\ndata_days = = 3\n")
    with pytest.raises(ConfigError, match=r"line 2"):
        load_settings(p)


def test_a_hostile_symbol_in_the_config_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[polygon]\nsymbols = ['AAPL', 'A;DROP']\n")
    with pytest.raises(ConfigError, match=r"line 2: key 'polygon.symbols'.*invalid symbol"):
        load_settings(p)


def test_a_malformed_env_line_names_the_line_not_the_value(tmp_path: Path) -> None:
    p = tmp_path / ".env"
    p.write_text("# comment\nPOLYGON_S3_ACCESS_KEY=abc\nthis line is s3cr3t-value\n")
    with pytest.raises(ConfigError, match=r"\.env, line 3") as info:
        load_dotenv_file(p)
    assert "s3cr3t" not in str(info.value)


def test_cli_reports_a_config_error_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "marketlake.toml").write_text("[data]\nsession = 'overnight'\n")
    r = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), "sql", "SELECT 1"])
    assert r.exit_code == 1, r.output
    assert "marketlake.toml, line 2: key 'data.session'" in r.output
    assert not (tmp_path / "lake").exists()


def test_extra_etfs_are_validated_symbols(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[data]\netfs = ['ARKW', 'BRK.B']\n")
    assert load_settings(p).etfs == ["ARKW", "BRK.B"]
    p.write_text("[data]\netfs = ['ARKW', '../x']\n")
    with pytest.raises(ConfigError, match=r"line 2: key 'data.etfs'.*invalid symbol"):
        load_settings(p)


def test_a_runs_saved_data_settings_come_back_whole() -> None:
    import datetime as dt

    from lake.config import Settings

    trained = Settings(
        split_method="date",
        train_end=dt.date(2013, 12, 31),
        validation_end=dt.date(2015, 6, 30),
        embargo_days=10,
        min_bars_per_symbol=500,
        session="extended",
    )
    current = Settings()  # what the user's marketlake.toml says today
    assert current.with_sql_settings(trained.sql_settings()).sql_settings() == trained.sql_settings()
    assert Settings(embargo_days=3).with_sql_settings(current.sql_settings()).embargo_days is None


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        (
            "[yahoo]\nsymbols = ['AAPL']\ninterval = '1h'\n",
            3,
            "yahoo.interval",
            "must be one of 1m, 1d, got '1h'",
        ),
        ("[polygon]\ninterval = '5m'\n", 2, "polygon.interval", "must be one of 1m, 1d, got '5m'"),
        ("[binance]\ninterval = '2h'\n", 2, "binance.interval", "must be one of 1m, 5m, 15m, 1h, 1d"),
        ("[news]\nsymbols = ['AAPL']\ninterval = '1d'\n", 3, "news.interval", "unknown setting"),
        ("[lake]\nroot = 'x'\n", 2, "lake.root", "the lake's folder is --lake or $LAKE_ROOT"),
    ],
)
def test_each_source_takes_the_intervals_its_ingest_lands_and_lake_takes_no_key(
    tmp_path: Path, text: str, line: int, key: str, reason: str
) -> None:
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=rf"m.toml, line {line}: key '{key}'") as err:
        load_settings(p)
    assert reason in str(err.value)


def test_a_source_interval_its_ingest_lands_is_taken_and_an_empty_lake_table_too(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[lake]\n[binance]\ninterval = '5m'\n[yahoo]\ninterval = '1m'\n")
    s = load_settings(p)
    assert (s.binance.interval, s.yahoo.interval) == ("5m", "1m")


def test_the_source_intervals_are_the_ingests_own() -> None:
    """lake/ cannot import the ingests: its table of each source's intervals is checked against them."""
    from ingest.common import INTERVALS
    from ingest.polygon import FILE_SETS
    from ingest.yahoo import INTERVALS as YAHOO
    from lake.config import SOURCE_INTERVALS

    assert SOURCE_INTERVALS == {
        "binance": tuple(INTERVALS),
        "polygon": tuple(FILE_SETS),
        "yahoo": tuple(YAHOO),
    }


@pytest.mark.parametrize(
    ("text", "suggested"),
    [
        ("[splits]\ntrain_ned = 2024-01-01\n", "did you mean 'train_end'?"),
        ("[data]\nmax_gap_minute = 5\n", "did you mean 'max_gap_minutes'?"),
        ("[binance]\nsymbol = ['BTCUSDT']\n", "did you mean 'symbols'?"),
        ("[trian]\nseed = 1\n", "did you mean 'train'?"),
    ],
)
def test_a_typo_names_the_key_it_likely_meant(tmp_path: Path, text: str, suggested: str) -> None:
    p = tmp_path / "marketlake.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(suggested)):
        load_settings(p)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (  # a key before any [table] header: it said "unknown section"
            "window = 20\n[train]\nseed = 1\n",
            "line 1: key 'window': window is a [train] setting, written here before any [table] header: move "
            "it under [train]",
        ),
        ("min_bars_per_symbol = 10\n", "line 1: key 'min_bars_per_symbol': min_bars_per_symbol is a [data]"),
        (  # a key of another table: it said "unknown setting"
            "[train]\nmin_bars_per_symbol = 10\n",
            "line 2: key 'train.min_bars_per_symbol': min_bars_per_symbol is a [data] setting, not a [train] "
            "one: set it in the config file's [data] table$",  # ($: it added "(--set takes [train] keys only)")
        ),
        (  # a key of [train] in a source's table: it said only "unknown setting"
            "[binance]\nwindow = 20\n",
            "line 2: key 'binance.window': window is a [train] setting, not a [binance] one: set it in the "
            "config file's [train] table$",
        ),
        (  # a source's own keys are not taken for [train]'s
            '[news]\ninterval = "1d"\n',
            "line 2: key 'news.interval': unknown setting (known: symbols, tickers)$",
        ),
        (
            "[data]\nwindow = 20\n",
            "line 2: key 'data.window': window is a [train] setting, not a [data] one: set it in the config "
            "file's [train] table",
        ),
        ("[splits]\nseed = 1\n", "key 'splits.seed': seed is a [train] setting, not a [splits] one"),
        (  # a quoted date: it said only "expected date"
            '[splits]\nmethod = "date"\ntrain_end = "2013-12-31"\nvalidation_end = 2015-06-30\n',
            "line 3: key 'splits.train_end': expected date, got '2013-12-31' (a quoted string: write the date "
            "without quotes, 2013-12-31)",
        ),
        ('[data]\nstart = "2024-01-01"\n', "(a quoted string: write the date without quotes, 2024-01-01)"),
        (  # it advised 20131231, which TOML reads as a whole number
            '[splits]\nmethod = "date"\ntrain_end = "20131231"\nvalidation_end = 2015-06-30\n',
            "got '20131231' (a quoted string: write the date without quotes, 2013-12-31)",
        ),
    ],
)
def test_a_key_in_the_wrong_place_or_form_says_where_it_goes(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(p)
    said = str(info.value)
    assert said.endswith(message[:-1]) if message.endswith("$") else message in said, said


def test_a_quoted_word_where_a_date_goes_gets_no_advice_to_drop_quotes(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text('[splits]\ntrain_end = "soon"\n')
    with pytest.raises(ConfigError, match=r"expected date, got 'soon'$"):
        load_settings(p)
