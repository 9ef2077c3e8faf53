"""lake.logs: a secret URL is redacted in the forms libraries print it (httpx lowercases the host and drops a
default port; httpcore's debug lines show the host alone), and the forms are worked out once per set of
values, not for every record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lake import logs


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    for k in (*logs.SECRET_VARS, *logs.SECRET_URL_VARS):
        monkeypatch.delenv(k, raising=False)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("test.redaction")
    handler = Keep()
    handler.addFilter(logs.RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield seen
    logger.removeHandler(handler)


def test_a_supabase_url_is_hidden_as_httpx_and_httpcore_print_it(
    monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://ABCdefPROJref.supabase.co:443/")
    log = logging.getLogger("test.redaction")
    log.info('HTTP Request: POST https://abcdefprojref.supabase.co/rest/v1/training_runs "HTTP/1.1 201"')
    log.debug("connect_tcp.started host='abcdefprojref.supabase.co' port=443")
    log.debug("as written: ABCdefPROJref.supabase.co and https://ABCdefPROJref.supabase.co:443")
    assert len(records) == 3
    for line in records:
        assert "projref" not in line.lower(), line
    assert records[0].startswith("HTTP Request: POST ***"), records[0]


def test_a_password_in_the_url_is_hidden_but_a_loopback_host_alone_is_no_secret(
    monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://usr:PW77canary@LocalHost:5555")
    log = logging.getLogger("test.redaction")
    log.info("POST http://localhost:5555/rest/v1/x")
    log.info("the other server at localhost:9000 answered; password PW77canary")
    assert records[0] == "POST ***/rest/v1/x", records
    assert "localhost:9000" in records[1] and "PW77canary" not in records[1], records


def test_a_one_word_host_is_hidden_in_its_url_but_not_as_a_word(
    monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "http://kong:8000")
    log = logging.getLogger("test.redaction")
    log.info("POST http://kong:8000/rest/v1/x; kong answered 201")
    assert records == ["POST ***/rest/v1/x; kong answered 201"], records


def test_the_secret_forms_are_worked_out_once_per_set_of_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://once-per-values.supabase.co")
    logs._secret_forms.cache_clear()
    for _ in range(50):
        logs.secret_values()
    info = logs._secret_forms.cache_info()
    assert (info.misses, info.hits) == (1, 49), info
    monkeypatch.setenv("SUPABASE_URL", "https://another-project.supabase.co")
    assert "another-project.supabase.co" in logs.secret_values()
