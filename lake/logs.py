"""Logging with secrets redacted: a secret's value never reaches a log line, whatever the level."""

from __future__ import annotations

import logging
import os

from lake.config import SECRET_VARS

REDACTED = "***"


def secret_values() -> list[str]:
    """The values of the secret variables now set (only those long enough to be worth hiding)."""
    return [v for k in SECRET_VARS if len(v := os.environ.get(k, "")) >= 4]


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        return True


def setup_logging(level: str = "WARNING") -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    for h in list(root.handlers):
        if getattr(h, "_marketlake", False):
            root.removeHandler(h)
    handler._marketlake = True  # type: ignore[attr-defined]
    root.addHandler(handler)
