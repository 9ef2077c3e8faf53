"""S3 helpers for the Polygon flat files: settings from the environment, the client, HEAD and GET."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lake.errors import MarketlakeError

ENV_ACCESS_KEY = "POLYGON_S3_ACCESS_KEY"
ENV_SECRET_KEY = "POLYGON_S3_SECRET_KEY"
ENV_ENDPOINT = "POLYGON_S3_ENDPOINT"
ENV_BUCKET = "POLYGON_S3_BUCKET"
DEFAULT_ENDPOINT = "https://files.massive.com"
DEFAULT_BUCKET = "flatfiles"


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # never print the keys
        return f"S3Settings(endpoint={self.endpoint!r}, bucket={self.bucket!r})"


class MissingKeys(MarketlakeError):
    """A Polygon key is not set (named), found before any request."""


def settings_from_env() -> S3Settings:
    """The endpoint, bucket and keys from the environment (the CLI has loaded .env into it already).

    A missing key is a MarketlakeError naming the variable, raised before any request is made."""
    missing = [v for v in (ENV_ACCESS_KEY, ENV_SECRET_KEY) if not os.environ.get(v, "").strip()]
    if missing:
        raise MissingKeys(
            f"polygon: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
            "(put the Polygon flat-files S3 keys in the environment or in .env, see .env.example)"
        )
    return S3Settings(
        endpoint=os.environ.get(ENV_ENDPOINT, "").strip() or DEFAULT_ENDPOINT,
        bucket=os.environ.get(ENV_BUCKET, "").strip() or DEFAULT_BUCKET,
        access_key=os.environ[ENV_ACCESS_KEY].strip(),
        secret_key=os.environ[ENV_SECRET_KEY].strip(),
    )


class Unreachable(MarketlakeError):
    """The endpoint's host does not resolve: offline (one line, before any request)."""


def require_reachable(s: S3Settings) -> None:
    """Raise Unreachable naming the endpoint's host (never the keys) when its name does not resolve, so
    that an offline run says so in one line instead of botocore retrying every day's HEAD."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(s.endpoint if "://" in s.endpoint else f"https://{s.endpoint}")
    host = parts.hostname or s.endpoint
    try:
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:
        port = 443
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unreachable(
            f"cannot reach {host}: offline? Polygon flat files need the network (or set {ENV_ENDPOINT} "
            "for another endpoint)"
        ) from None


HEAD_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 10, "max_attempts": 3}
"""A HEAD's answer is a few hundred bytes: a host silent that long is not going to answer (the GETs keep
their longer timeouts, a day file is large)."""


def make_client(s: S3Settings) -> Any:
    """The S3 client, after checking once that the endpoint's name resolves (Unreachable if not)."""
    require_reachable(s)
    return _client(s, connect_timeout=20, read_timeout=120, max_attempts=5)


def head_client(client: Any, s: S3Settings) -> Any:
    """A client for HEADs, like `client` with HEAD_TIMEOUTS; `client` itself when it is not a botocore
    client (a test's stand-in)."""
    from botocore.client import BaseClient

    if not isinstance(client, BaseClient):
        return client
    return _client(s, **HEAD_TIMEOUTS)


def _client(s: S3Settings, *, connect_timeout: float, read_timeout: float, max_attempts: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s.endpoint,
        aws_access_key_id=s.access_key,
        aws_secret_access_key=s.secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )


def unanswered(exc: BaseException) -> str | None:
    """Why a request got no answer at all from the endpoint ('timed out', 'could not connect', …), or None
    when it got one (any HTTP status) or failed otherwise. Looks through the MarketlakeError that wraps
    botocore's error."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 5:
        if isinstance(e, ConnectTimeoutError | ReadTimeoutError):
            return "timed out"
        if isinstance(e, EndpointConnectionError):
            return "could not connect (refused?)"
        if isinstance(e, ConnectionClosedError):
            return "connection closed without an answer"
        e = e.__cause__ or e.__context__
        seen += 1
    return None


class Missing(Exception):
    """The object does not exist (HTTP 404 / NoSuchKey)."""


class AccessDenied(MarketlakeError):
    """The keys are refused (401, InvalidAccessKeyId, SignatureDoesNotMatch): no other object will do
    better, so the run stops. (A plain 403 is `Forbidden`: polygon's run blames the keys only when the
    run's last day is refused too.)"""


class Forbidden(MarketlakeError):
    """A 403 (AccessDenied) on one object: the keys may still read others (a day outside the plan's
    history), so the caller decides whether the keys or the object are to blame."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


BAD_KEY_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch")
"""Error codes that blame the keys themselves, whatever the object."""


def keys_hint() -> str:
    return f"check {ENV_ACCESS_KEY} and {ENV_SECRET_KEY}"


def _status(exc: Any) -> tuple[int, str]:
    resp = getattr(exc, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status, code


def _raise_for(exc: Exception, s: S3Settings, key: str, what: str) -> None:
    """Turn a botocore error into Missing or a MarketlakeError naming the object and why."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        status, code = _status(exc)
        if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
            raise Missing(key) from exc
        denied = f"polygon: access denied to s3://{s.bucket}/{key} at {s.endpoint} ({code or status})"
        if status == 401 or code in BAD_KEY_CODES:
            raise AccessDenied(f"{denied}: {keys_hint()}") from exc
        if status == 403 or code in ("AccessDenied", "Forbidden"):
            raise Forbidden(denied, key) from exc
        raise MarketlakeError(f"polygon: {what} s3://{s.bucket}/{key} failed: {code or status}") from exc
    if isinstance(exc, BotoCoreError):
        raise MarketlakeError(f"polygon: {what} s3://{s.bucket}/{key} at {s.endpoint} failed: {exc}") from exc
    raise exc


def head_etag(client: Any, s: S3Settings, key: str) -> str:
    """The object's ETag; raises Missing if there is no such object."""
    try:
        head = client.head_object(Bucket=s.bucket, Key=key)
    except Exception as exc:
        _raise_for(exc, s, key, "HEAD")
        raise
    return str(head["ETag"])


def download(client: Any, s: S3Settings, key: str, dest: Path) -> dict[str, Any]:
    """Stream the object into `dest` (a temporary path), checking its length; return its ETag and
    Last-Modified. Raises Missing if the object is gone, MarketlakeError if the transfer is short."""
    try:
        resp = client.get_object(Bucket=s.bucket, Key=key)
    except Exception as exc:
        _raise_for(exc, s, key, "GET")
        raise
    n = 0
    try:
        with open(dest, "wb") as f:
            for chunk in resp["Body"].iter_chunks(1 << 20):
                f.write(chunk)
                n += len(chunk)
            f.flush()
            os.fsync(f.fileno())
    except Exception as exc:
        dest.unlink(missing_ok=True)
        from botocore.exceptions import BotoCoreError

        if isinstance(exc, BotoCoreError | OSError):
            raise MarketlakeError(f"polygon: download of s3://{s.bucket}/{key} failed: {exc}") from exc
        raise
    expected = int(resp.get("ContentLength", n))
    if n != expected:
        dest.unlink(missing_ok=True)
        raise MarketlakeError(f"polygon: download of s3://{s.bucket}/{key} is short: {n} of {expected} bytes")
    last = resp.get("LastModified")
    return {
        "etag": str(resp["ETag"]),
        "last_modified": last.isoformat() if last is not None else None,
        "bytes": n,
    }


def no_file_at_all(client: Any, s: S3Settings, trading_days: int) -> str:
    """Why not one day file was found for `trading_days` past trading days: the bucket checked (HEAD
    bucket) and named with the endpoint, never the keys."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"bucket {s.bucket!r} at {s.endpoint}"
    try:
        client.head_bucket(Bucket=s.bucket)
    except ClientError as exc:
        status, code = _status(exc)
        if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
            return f"polygon: {where} does not exist (set POLYGON_S3_BUCKET; Polygon's is 'flatfiles')"
        if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return (
                f"polygon: {where} refused the credentials ({code or status}): check {ENV_ACCESS_KEY} and "
                f"{ENV_SECRET_KEY}"
            )
        return f"polygon: {where}: {code or status}"
    except BotoCoreError as exc:
        return f"polygon: {where} cannot be reached: {exc}"
    return f"polygon: no day file at all in {where} for {trading_days} past trading day(s)"
