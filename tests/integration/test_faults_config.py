"""Case 9: a malformed marketlake.toml or .env is refused with a message naming the file, the key and the
line, before any work starts: through load_settings for every section and kind of key, and through the
CLI's ingest commands, where no lake folder may be created and no request may reach a server.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from lake.config import load_dotenv_file, load_settings
from lake.errors import ConfigError

pytestmark = pytest.mark.integration

SOURCES = ("binance", "polygon", "yahoo", "news")

# (name, file text, key named, line named, words the reason must contain)
DATA_CASES = [
    ("int-as-text", "[data]\ndata_days = 'sixty'\n", "data.data_days", 2, "expected int"),
    ("int-as-bool", "[data]\n\ndata_days = true\n", "data.data_days", 3, "expected int"),
    ("int-as-float", "[data]\nmin_bars_per_symbol = 10.5\n", "data.min_bars_per_symbol", 2, "expected int"),
    ("negative", "[data]\nmax_gap_minutes = -1\n", "data.max_gap_minutes", 2, "must not be negative"),
    ("date-as-text", "[data]\nstart = '2024-01-01'\n", "data.start", 2, "expected date"),
    ("date-as-int", "[data]\nstart = 2024-01-01\nend = 20240131\n", "data.end", 3, "expected date"),
    ("start-after-end", "[data]\nend = 2024-01-01\nstart = 2024-02-01\n", "data.start", 3, "is after end"),
    ("float-as-text", "[data]\nmax_missing_ratio = 'low'\n", "data.max_missing_ratio", 2, "expected"),
    ("ratio-range", "[data]\nmax_missing_ratio = 1.5\n", "data.max_missing_ratio", 2, "between 0 and 1"),
    ("choice", "[data]\nsession = 'overnight'\n", "data.session", 2, "regular, extended"),
    ("choice-type", "[data]\nnews_time = 3\n", "data.news_time", 2, "expected str"),
    ("unknown-data-key", "[data]\ndata_days = 3\ndata_dayz = 4\n", "data.data_dayz", 3, "unknown setting"),
    ("dotted-key", "data.session = 'overnight'\n", "data.session", 1, "must be one of"),
    ("train-not-table", "train = 5\n", "train", 1, "expected a table"),
    (
        "unknown-section",
        "[data]\ndata_days = 3\n\n[binanse]\nsymbols = ['BTCUSDT']\n",
        "binanse",
        4,
        "unknown section",
    ),
]


def _source_cases(section: str) -> list[tuple[str, str, str, int, str]]:
    # Every other section comes first with valid lines holding the same keys: the right line must be named.
    others = "".join(
        f"[{s}]\nsymbols = ['AAPL']\n" + ("interval = '1d'\n" if s != "news" else "# no interval\n")
        for s in SOURCES
        if s != section
    )
    n = others.count("\n")
    return [
        (f"{section}-not-table", f"{section} = 3\n{others}", section, 1, "expected a table"),
        (
            f"{section}-symbols-text",
            f"{others}[{section}]\nsymbols = 'AAPL'\n",
            f"{section}.symbols",
            n + 2,
            "list of strings",
        ),
        (
            f"{section}-symbols-ints",
            f"{others}[{section}]\nsymbols = [1, 2]\n",
            f"{section}.symbols",
            n + 2,
            "list of strings",
        ),
        (
            f"{section}-tickers-hostile",
            f"{others}[{section}]\ntickers = ['A;B']\n",
            f"{section}.tickers",
            n + 2,
            "invalid symbol",
        ),
        (
            f"{section}-interval",
            f"{others}[{section}]\nsymbols = ['AAPL']\ninterval = '2m'\n",
            f"{section}.interval",
            n + 3,
            "unknown setting" if section == "news" else "must be one of 1m,",
        ),
        (
            f"{section}-unknown",
            f"{others}[{section}]\nsymbol = ['AAPL']\n",
            f"{section}.symbol",
            n + 2,
            "unknown setting",
        ),
    ]


SOURCE_CASES = [c for s in SOURCES for c in _source_cases(s)]

SYNTAX_CASES = [
    (
        "double-equals",
        "[data]\ndata_days = 60\nmin_bars_per_symbol = = 3\n",
        "min_bars_per_symbol",
        3,
        "not valid TOML",
    ),
    ("duplicate-key", "[data]\ndata_days = 60\ndata_days = 61\n", "data_days", 3, "not valid TOML"),
    ("unclosed-string", "[binance]\nsymbols = ['BTCUSDT]\n", "symbols", 2, "not valid TOML"),
    ("unclosed-table", "[data\ndata_days = 3\n", None, 1, "not valid TOML"),
    (
        "unclosed-array",
        "[data]\ndata_days = 3\n[news]\nsymbols = ['AAPL',\n  'MSFT'\n",
        "symbols",
        4,
        "not valid TOML",
    ),
]

ALL_CASES = DATA_CASES + SOURCE_CASES


@pytest.mark.parametrize(("name", "text", "key", "line", "why"), ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_a_bad_setting_names_its_key_and_line(
    tmp_path: Path, name: str, text: str, key: str, line: int, why: str
) -> None:
    p = tmp_path / "marketlake.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(p)
    message = str(info.value)
    assert message.startswith(f"{p}, line {line}: key '{key}': "), message
    assert why in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "text", "key", "line", "why"), SYNTAX_CASES, ids=[c[0] for c in SYNTAX_CASES]
)
def test_invalid_toml_names_the_line_and_the_key_on_it(
    tmp_path: Path, name: str, text: str, key: str | None, line: int, why: str
) -> None:
    p = tmp_path / "marketlake.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(p)
    message = str(info.value)
    named = f": key '{key}'" if key else ""
    assert message.startswith(f"{p}, line {line}{named}: {why}"), message


def test_a_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "marketlake.toml"
    p.write_bytes(b"[data]\ndata_days = 3\nsession = '\xff\xfe'\n")
    with pytest.raises(ConfigError, match=r"marketlake.toml, line 3: not UTF-8 text"):
        load_settings(p)


def test_a_config_path_that_is_a_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot be read"):
        load_settings(tmp_path)


SECRET = "s3cr3t-VALUE-never-shown"

ENV_CASES = [
    (
        "no-equals",
        f"# keys\nPOLYGON_S3_ACCESS_KEY=abc\nPOLYGON_S3_SECRET_KEY {SECRET}\n",
        3,
        None,
        "not a KEY=value line",
    ),
    ("bad-name", f"POLYGON_S3_ACCESS_KEY=abc\n\n3POLYGON={SECRET}\n", 3, None, "not a KEY=value line"),
    (
        "unclosed-quote",
        f'POLYGON_S3_ACCESS_KEY=abc\nPOLYGON_S3_SECRET_KEY="{SECRET}\nX=1\n',
        2,
        "POLYGON_S3_SECRET_KEY",
        "the value cannot be parsed",
    ),
]


@pytest.mark.parametrize(("name", "text", "line", "key", "why"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_a_malformed_env_names_the_line_and_key_never_the_value(
    tmp_path: Path, name: str, text: str, line: int, key: str | None, why: str
) -> None:
    p = tmp_path / ".env"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_dotenv_file(p)
    message = str(info.value)
    named = f": key '{key}'" if key else ""
    assert message.startswith(f"{p}, line {line}{named}: {why}"), message
    assert SECRET not in message and "s3cr3t" not in message
    assert "POLYGON_S3_ACCESS_KEY" not in os.environ, "nothing is loaded from a malformed .env"


def test_an_env_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / ".env"
    p.write_bytes(b"A=1\nB=\xff\n")
    with pytest.raises(ConfigError, match=r"\.env, line 2: not UTF-8 text"):
        load_dotenv_file(p)


# --- through the CLI: refused before any work, no lake folder, no request -----------------------------


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counting.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_PUT = do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A local server standing in for every upstream; the list collects every request it receives."""
    _Counting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    host, port = "127.0.0.1", server.server_port
    for _ in range(200):  # poll until it answers
        try:
            socket.create_connection((host, port), timeout=0.1).close()
            break
        except OSError:
            continue
    url = f"http://{host}:{port}"
    _Counting.hits.clear()
    for var, value in {
        "BINANCE_BASE_URL": url,
        "POLYGON_S3_ENDPOINT": url,
        "POLYGON_S3_ACCESS_KEY": "test-access",
        "POLYGON_S3_SECRET_KEY": "test-secret",
        "SUPABASE_URL": url,
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
    }.items():
        monkeypatch.setenv(var, value)
    yield _Counting.hits
    server.shutdown()
    server.server_close()


CLI_COMMANDS = [
    ["ingest"],
    ["ingest", "binance", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-01"],
    ["ingest", "polygon", "--tickers", "AAPL", "--start", "2024-01-02", "--end", "2024-01-02"],
    ["ingest", "yahoo", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-01-02"],
    ["ingest", "news", "--symbols", "AAPL"],
    ["check"],
    ["sql", "SELECT 1"],
]
CLI_CASES = [c for c in ALL_CASES if c[0] in {"int-as-text", "date-as-text", "choice", "unknown-section"}] + [
    c for c in SOURCE_CASES if c[0].startswith("yahoo-") or c[0].startswith("news-")
]


def _tree(root: Path) -> set[str]:
    return {os.path.join(d, n) for d, dirs, files in os.walk(root) for n in [*dirs, *files]}


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=lambda c: "-".join(c[:2]))
@pytest.mark.parametrize(("name", "text", "key", "line", "why"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_cli_refuses_a_bad_config_before_any_work(
    runner: CliRunner,
    tmp_path: Path,
    upstream: list[str],
    command: list[str],
    name: str,
    text: str,
    key: str,
    line: int,
    why: str,
) -> None:
    (tmp_path / "marketlake.toml").write_text(text)
    before = _tree(tmp_path)
    lake = tmp_path / "lake"
    r = runner.invoke(cli, ["--lake", str(lake), *command])
    assert r.exit_code == 1, r.output
    assert r.output.startswith(f"error: marketlake.toml, line {line}: key '{key}': "), r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not lake.exists() and not (tmp_path / "data").exists()
    assert _tree(tmp_path) == before
    assert upstream == [], f"requests were made: {upstream}"


@pytest.mark.parametrize("command", CLI_COMMANDS[:2], ids=lambda c: "-".join(c[:2]))
def test_the_cli_refuses_a_bad_env_before_any_work(
    runner: CliRunner, tmp_path: Path, upstream: list[str], command: list[str]
) -> None:
    (tmp_path / ".env").write_text(f'POLYGON_S3_SECRET_KEY="{SECRET}\n')
    lake = tmp_path / "lake"
    r = runner.invoke(cli, ["--lake", str(lake), *command])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: .env, line 1: key 'POLYGON_S3_SECRET_KEY': "), r.output
    assert SECRET not in r.output
    assert not lake.exists() and upstream == []
