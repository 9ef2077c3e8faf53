"""Logging with secrets redacted: a secret's value never reaches a log line, whatever the level or handler.

Three layers, all installed by `setup_logging` (which the CLI calls first):
- a log record factory that redacts every record as it is made (message, arguments, exception text), so
  no handler ever sees a secret, the CLI's or any other (a notebook's file handler, pytest's caplog);
- the RedactingFilter on the CLI's stderr handler, for records made before the factory was installed;
- an excepthook that redacts the traceback of an exception nobody caught.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import sys
import time
import traceback
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from lake.config import SECRET_VARS

REDACTED = "***"
SECRET_URL_VARS = ("SUPABASE_URL",)
"""Variables holding a URL that is itself a secret (README: "never in logs"): the URL is redacted, and so is
its userinfo (`https://user:password@host`), wherever a library prints it (httpx's request line)."""
CREDENTIAL_URL_VARS = ("BINANCE_BASE_URL", "POLYGON_S3_ENDPOINT")
"""Variables holding a base URL or endpoint that is no secret itself but may carry one: a mirror behind basic
auth (`http://user:password@host`). Their userinfo and password are redacted (as written and decoded), not
their host: a line naming data.binance.vision stays readable."""
QUIET_LIBRARY_LOGGERS = ("httpx", "httpcore", "urllib3", "hpack")
"""Libraries whose INFO lines are one per request (with its URL): kept at WARNING unless --log-level debug."""


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_forms(url: str) -> set[str]:
    """A secret URL as a library may print it: as set, without its trailing '/', as httpx prints it (host in
    lower case, a default port dropped), its host alone (what httpcore's debug lines show; it holds a
    Supabase project's ref; not a loopback host, which is no secret, nor a one-word one, which would hide that
    word everywhere), and its userinfo and password, as written and decoded."""
    url = url.strip()
    forms = {url, url.rstrip("/")}
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL: the value as it is
        return forms
    userinfo, at, _host = parts.netloc.rpartition("@")
    if at and userinfo:
        forms.add(userinfo)
        _user, colon, password = userinfo.partition(":")
        if colon and password:
            forms.update((password, unquote(password)))
    host = parts.hostname or ""
    if host:
        shown = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"
        for scheme in {parts.scheme, parts.scheme.lower()}:
            for netloc in {shown, f"{userinfo}@{shown}" if at and userinfo else shown}:
                base = f"{scheme}://{netloc}{parts.path}"
                forms.update((base, base.rstrip("/")))
        if host not in _LOOPBACK and (
            "." in host or ":" in host
        ):  # a one-word host (`kong`, a compose service) is a word
            written = parts.netloc.rpartition("@")[2]
            forms.update((host, written, written.rsplit(":", 1)[0] if port is not None else written))
    return forms


def _credential_forms(url: str) -> set[str]:
    """The credentials a URL carries (`scheme://user:password@host`): its userinfo and its password, as
    written and decoded, and the `user:password` pair base64-encoded as a basic-auth header carries it;
    nothing for a URL without a password (a user name alone is no secret, and may be a common word)."""
    authority = url.strip().partition("://")[2]
    for stop in "/?#":
        authority = authority.partition(stop)[0]
    userinfo, at, _host = authority.rpartition("@")
    _user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return set()
    sent = base64.b64encode(unquote(userinfo).encode()).decode()
    return {userinfo, unquote(userinfo), password, unquote(password), sent}


def secret_values() -> list[str]:
    """The values of the secret variables now set (only those long enough to be worth hiding), with the
    forms they take in URLs (an S3 secret key holds '/' and '+'), and the password of a URL variable that
    carries one (`CREDENTIAL_URL_VARS`), longest first. Worked out once for each set of values (every log
    record asks)."""
    names = (*SECRET_VARS, *SECRET_URL_VARS, *CREDENTIAL_URL_VARS)
    return list(_secret_forms(tuple(os.environ.get(k, "") for k in names)))


@functools.lru_cache(maxsize=8)
def _secret_forms(values: tuple[str, ...]) -> tuple[str, ...]:
    n_plain, n_urls = len(SECRET_VARS), len(SECRET_URL_VARS)
    plain, urls, carriers = values[:n_plain], values[n_plain : n_plain + n_urls], values[n_plain + n_urls :]
    forms: set[str] = set()
    found: set[str] = set(plain)
    for url in urls:
        found.update(_url_forms(url))
    for url in carriers:
        found.update(_credential_forms(url))
    for v in found:
        if len(v) >= 4:
            forms.update((v, quote(v, safe=""), quote_plus(v, safe="")))
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, values: list[str] | None = None) -> str:
    for value in secret_values() if values is None else values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    """Replace a record's message (and exception and stack text) by a redacted copy, if it holds a secret."""
    values = secret_values()
    if not values:
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it itself; redact what can be
        message = str(record.msg)
    clean = redact(message, values)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        if redact(text, values) != text:
            record.exc_text = redact(text, values)
            record.exc_info = None  # the formatter prints exc_text instead
    elif record.exc_text:
        record.exc_text = redact(record.exc_text, values)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, values)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_base_factory: Any = None


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _base_factory(*args, **kwargs)
    _redact_record(record)
    return record


def install_redaction() -> None:
    """Redact every log record from now on, and every uncaught exception's traceback (idempotent)."""
    global _base_factory
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)
    if sys.excepthook is not _redacting_excepthook:
        sys.excepthook = _redacting_excepthook


def _redacting_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))


class _UTCFormatter(logging.Formatter):
    def converter(self, secs: float | None = None) -> time.struct_time:  # asctime in UTC (the `Z` said)
        return time.gmtime(secs)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no stream (pythonw), a closed one
        return False


def log_formatter(stream: Any) -> logging.Formatter:
    """`LEVEL logger: message` on a terminal; anywhere else (cron's mail, a log file, a pipe) each line
    starts with its time, ISO 8601 in UTC (`2026-12-01T06:05:03Z WARNING marketlake.writer: …`), so that a
    job's log says when a wait or a failure happened."""
    if _is_terminal(stream):
        return logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return _UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")


def setup_logging(level: str = "WARNING") -> None:
    install_redaction()
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in QUIET_LIBRARY_LOGGERS:  # a request line per call at INFO: only at DEBUG (and redacted)
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(sys.stderr))
    handler.addFilter(RedactingFilter())
    for h in list(root.handlers):
        if getattr(h, "_marketlake", False):
            root.removeHandler(h)
    handler._marketlake = True  # type: ignore[attr-defined]
    root.addHandler(handler)
