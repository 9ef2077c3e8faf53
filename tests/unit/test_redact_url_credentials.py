"""A base URL or endpoint from the environment may carry a mirror's basic-auth credentials
(`http://user:password@host`): `lake.logs.redact` hides the password (BINANCE_BASE_URL, POLYGON_S3_ENDPOINT)
but not the host, and `ingest.common.without_userinfo` is the form that is stored and shown."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ingest.common import RawCache, without_userinfo
from lake import logs
from lake.paths import LakePaths


@pytest.mark.parametrize("var", ["BINANCE_BASE_URL", "POLYGON_S3_ENDPOINT"])
def test_the_password_of_a_base_url_is_redacted_not_its_host(
    monkeypatch: pytest.MonkeyPatch, var: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(var, "https://mirror-user:Pa%24%24w0rdX@mirror.example.com:8443")
    text = logs.redact(
        "GET https://mirror-user:Pa%24%24w0rdX@mirror.example.com:8443/data/x.zip; password Pa$$w0rdX; "
        "header Basic bWlycm9yLXVzZXI6UGEkJHcwcmRY"
    )
    assert text == "GET https://***@mirror.example.com:8443/data/x.zip; password ***; header Basic ***"
    logs.install_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("test.mirror").info(
            "fetching https://mirror-user:Pa%24%24w0rdX@mirror.example.com/a"
        )
    assert "Pa%24%24w0rdX" not in caplog.text and "https://***@mirror.example.com/a" in caplog.text


def test_a_base_url_without_a_password_hides_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_BASE_URL", "https://data.binance.vision")
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", "https://admin@files.example.com")
    line = "https://data.binance.vision/data/spot/x.zip admin https://admin@files.example.com"
    assert logs.redact(line) == line


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:pw@127.0.0.1:8080/data/a.zip", "http://127.0.0.1:8080/data/a.zip"),
        ("https://u:p@ss@mirror.example.com", "https://mirror.example.com"),
        ("https://data.binance.vision/data/a.zip", "https://data.binance.vision/data/a.zip"),
        ("https://host/path?next=a@b", "https://host/path?next=a@b"),
    ],
)
def test_without_userinfo(url: str, shown: str) -> None:
    assert without_userinfo(url) == shown


def test_the_raw_cache_records_a_url_without_its_credentials(tmp_path: Path) -> None:
    cache = RawCache(LakePaths(tmp_path / "lake"), "binance")
    cache.put("a/x.zip", b"zip", url="http://u:S3cretPw@127.0.0.1:9/a/x.zip")
    tmp = cache.temp_path("a/y.zip")
    tmp.write_bytes(b"zip")
    cache.put_file("a/y.zip", tmp, url="http://u:S3cretPw@127.0.0.1:9/a/y.zip")
    for name in ("a/x.zip", "a/y.zip"):
        meta = json.loads(cache.meta_path(name).read_text())
        assert meta["url"] == f"http://127.0.0.1:9/{name}"
