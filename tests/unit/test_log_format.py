"""Log lines on stderr: as they are on a terminal; with an ISO 8601 UTC time first anywhere else (cron's mail,
a log file), so that a job's log says when a wait or a failure happened."""

from __future__ import annotations

import calendar
import io
import logging
import re
import time
from collections.abc import Iterator

import pytest

from lake.logs import setup_logging

STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) WARNING marketlake\.test: waited 3 s$")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def _said(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging("WARNING")
    logging.getLogger("marketlake.test").warning("waited %d s", 3)
    return stream.getvalue()


def test_not_on_a_terminal_each_line_starts_with_its_utc_time(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # the stamp is UTC whatever the machine's zone
    time.tzset()
    try:
        before = time.time()
        out = _said(io.StringIO(), monkeypatch)
        after = time.time()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    m = STAMPED.match(out.rstrip("\n"))
    assert m, out
    stamp = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ"))  # read as UTC
    assert int(before) - 1 <= stamp <= after + 1, (out, before, after)


def test_on_a_terminal_the_line_is_as_it_was(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    assert _said(_Terminal(), monkeypatch) == "WARNING marketlake.test: waited 3 s\n"
