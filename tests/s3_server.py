"""A local S3 (moto in server mode on 127.0.0.1, a free port) and Polygon day files in the exact format.

Polygon's published files: header `ticker,volume,open,close,high,low,window_start,transactions` (close
before high and low), window_start in epoch nanoseconds (19 digits), CRLF line endings, no final newline.
"""

from __future__ import annotations

import datetime as dt
import gzip
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
BUCKET = "flatfiles"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test-access",
            aws_secret_access_key="test-secret",
            region_name="us-east-1",
        )

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()


def _wait_until_answers(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server at {url} did not answer within {timeout}s") from None
            time.sleep(0.02)


@contextmanager
def running_s3() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _wait_until_answers(f"{endpoint}/moto-api/")
        yield S3Server(endpoint)
    finally:
        server.stop()


def ns(instant: dt.datetime) -> int:
    """Epoch nanoseconds of an aware datetime (exact, no float)."""
    delta = instant - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def day_file(rows: Sequence[Sequence[Any] | str], *, crlf: bool = True, final_newline: bool = False) -> bytes:
    """A gzip CSV in Polygon's flat-file format. A row is a sequence of the 8 fields in header order
    (ticker, volume, open, close, high, low, window_start, transactions) or a raw line."""
    lines = [HEADER]
    for r in rows:
        lines.append(r if isinstance(r, str) else ",".join(str(v) for v in r))
    nl = "\r\n" if crlf else "\n"
    text = nl.join(lines) + (nl if final_newline else "")
    return gzip.compress(text.encode(), mtime=0)


def minute_key(day: dt.date) -> str:
    return f"us_stocks_sip/minute_aggs_v1/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"


def daily_key(day: dt.date) -> str:
    return f"us_stocks_sip/day_aggs_v1/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"
