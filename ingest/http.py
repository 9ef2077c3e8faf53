"""Shared async HTTP download helpers: bounded retries with backoff, Retry-After, timeouts, streaming to a
temporary file with its sha256.

Any source that downloads over HTTP can use them:

    policy = RetryPolicy()
    async with client_session(policy, limit=8) as session:
        got = await download_file(session, url, tmp_path, policy)   # or: await fetch_bytes(...)

What is retried (up to `policy.attempts` in all): connection errors, a body cut short (with a
Content-Length or chunked framing that says so), timeouts, HTTP 5xx, 408 and 429. A 429 or 503 with a
`Retry-After` header waits that long (seconds or an HTTP date); a Retry-After beyond
`policy.retry_after_max` is not waited for: the download fails, saying so. A 404 raises `NotFound` at once
(no data there, not an error worth retrying); any other 4xx fails at once. When the attempts
are spent, `DownloadFailed` names the URL, the last reason and the number of attempts.

A body cut short by a server that sends neither Content-Length nor chunked framing cannot be noticed here;
callers verify a checksum (see `download_file`'s sha256) for that.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

T = TypeVar("T")
log = logging.getLogger(__name__)

USER_AGENT = "marketlake (+https://github.com/; data downloads with retries)"
CHUNK = 1 << 16


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. All times in seconds."""

    attempts: int = 5
    """Attempts in all, the first one included."""
    backoff_base: float = 0.5
    """Exponential backoff: about base, 2*base, 4*base … (with jitter), each at most `backoff_max`."""
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    """The longest Retry-After honoured; a longer one fails the download instead of stalling the run."""
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    """Longest silence while waiting for the response or for the next bytes of the body."""
    total_timeout: float | None = None
    """Longest time for one attempt, body included (None: no limit, the read timeout still applies)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if min(self.backoff_base, self.backoff_max, self.retry_after_max) < 0:
            raise ValueError("waits must be >= 0")

    def timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total_timeout,
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )


class HttpError(Exception):
    """An HTTP answer that is not a success."""

    def __init__(self, url: str, status: int, reason: str = "", retry_after: float | None = None) -> None:
        self.url = url
        self.status = status
        self.retry_after = retry_after
        why = f"HTTP {status}" + (f" {reason}" if reason else "")
        if retry_after is not None:
            why += f" (Retry-After {retry_after:g}s)"
        self.why = why
        super().__init__(f"{url}: {why}")


class NotFound(HttpError):
    """HTTP 404: the server has no such file."""


class DownloadFailed(Exception):
    """A download that did not succeed after its attempts; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str, attempts: int) -> None:
        self.url = url
        self.reason = reason
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{url}: {reason}{tries}")


class HostDown(Exception):
    """A host that has never answered and refused or timed out `attempts` times in a row: no more requests
    are made to it in this run (see `HostBreaker`)."""

    def __init__(self, host: str, reason: str, attempts: int) -> None:
        self.host = host
        self.reason = reason
        self.attempts = attempts
        super().__init__(f"cannot reach {host}: {attempts} attempts in a row got no answer (last: {reason})")


class HostBreaker:
    """A per-host circuit breaker: after `after` consecutive attempts that got no answer at all (connection
    refused, timed out, dropped before a response) from a host that has not answered once in this run,
    every later attempt fails at once with `HostDown` instead of being tried and retried.

    A host that has answered once (any HTTP status) is never cut off: its faults are transient and retried
    as the policy says. Thread-safe (Polygon's fetch threads share one)."""

    def __init__(self, host: str, after: int) -> None:
        self.host = host
        self.after = max(1, after)
        self.answered = False
        self.streak = 0
        self.reason = ""
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        return not self.answered and self.streak >= self.after

    def check(self) -> None:
        """Raise HostDown when the breaker has tripped."""
        if self.tripped:
            raise HostDown(self.host, self.reason, self.streak)

    def got_answer(self) -> None:
        with self._lock:
            self.answered = True
            self.streak = 0

    def no_answer(self, reason: str) -> None:
        with self._lock:
            self.streak += 1
            self.reason = reason

    def record(self, exc: BaseException) -> None:
        """An aiohttp attempt's failure: an HTTP answer counts as an answer, a refused, timed-out or dropped
        connection as none; anything else (a cancellation, a local error) is not counted."""
        if isinstance(exc, HttpError | aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
            self.got_answer()
        elif isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError | TimeoutError):
            self.no_answer(unanswered_reason(exc))


def unanswered_reason(exc: BaseException) -> str:
    """'connection refused', 'timed out' or the exception, for the one line that gives up on a host."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed without an answer"
    return describe(exc)


RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def describe(exc: BaseException) -> str:
    """A short reason for an exception of a download (what a user can act on)."""
    if isinstance(exc, HttpError):
        return exc.why
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError and asyncio's TimeoutError
        return f"timed out ({exc})" if str(exc) else "timed out"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"body cut short ({exc})"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return f"connection failed ({exc})" if str(exc) else f"connection failed ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def name_not_resolved(exc: BaseException | None) -> bool:
    """True when `exc` (or what caused it) is a failed host name lookup: offline, or a host that does not
    exist. Never retried: the answer will not change in the next seconds."""
    import socket

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
            return True
        if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, socket.gaierror):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retryable(policy: RetryPolicy) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if isinstance(exc, NotFound) or name_not_resolved(exc):
            return False
        if isinstance(exc, HttpError):
            if exc.status not in RETRY_STATUSES:
                return False
            return exc.retry_after is None or exc.retry_after <= policy.retry_after_max
        return isinstance(exc, aiohttp.ClientError | TimeoutError)

    return check


def wait_for(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Tenacity wait: the server's Retry-After when it gave one, else exponential backoff with jitter."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, HttpError) and exc.retry_after is not None:
            return min(exc.retry_after, policy.retry_after_max)
        step = policy.backoff_base * (2 ** (state.attempt_number - 1))
        return min(policy.backoff_max, step * (0.5 + random.random() / 2))  # jitter, not crypto

    return wait


def _log_retry(url: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "%s: %s; retry %d in %.2fs",
            url,
            describe(exc) if exc else "?",
            state.attempt_number,
            wait,
        )

    return before_sleep


async def with_retries(
    policy: RetryPolicy,
    url: str,
    attempt: Callable[[], Awaitable[T]],
    breaker: HostBreaker | None = None,
) -> T:
    """Run `attempt` until it succeeds, a non-retryable error happens, or the attempts are spent.

    NotFound propagates as it is; any other failure that ends the tries becomes DownloadFailed naming the
    URL, the last reason and the number of attempts. With a `breaker`, each attempt is counted on it, and
    HostDown is raised (not retried) once it has tripped, before or between attempts.
    """
    if breaker is not None:
        inner = attempt

        async def attempt() -> T:
            breaker.check()
            try:
                got = await inner()
            except BaseException as exc:
                breaker.record(exc)
                raise
            breaker.got_answer()
            return got

    tries = 0
    try:
        async for state in AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_for(policy),
            retry=retry_if_exception(retryable(policy)),
            before_sleep=_log_retry(url),
            reraise=True,
        ):
            with state:
                tries = state.retry_state.attempt_number
                return await attempt()
    except NotFound:
        raise
    except HttpError as exc:
        if exc.retry_after is not None and exc.retry_after > policy.retry_after_max:
            raise DownloadFailed(
                url, f"{exc.why}: longer than the {policy.retry_after_max:g}s this run waits", tries
            ) from exc
        raise DownloadFailed(url, exc.why, tries) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadFailed(url, describe(exc), tries) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _check_status(url: str, resp: aiohttp.ClientResponse) -> None:
    if resp.status == 404:
        raise NotFound(url, 404, resp.reason or "Not Found")
    if resp.status >= 400:
        raise HttpError(
            url, resp.status, resp.reason or "", parse_retry_after(resp.headers.get("Retry-After"))
        )


def client_session(policy: RetryPolicy, limit: int = 8) -> aiohttp.ClientSession:
    """A session with the policy's timeouts and at most `limit` connections open at once."""
    return aiohttp.ClientSession(
        timeout=policy.timeout(),
        connector=aiohttp.TCPConnector(limit=limit),
        headers={"User-Agent": USER_AGENT},
        raise_for_status=False,
    )


@dataclass(frozen=True)
class Fetched:
    url: str
    data: bytes
    etag: str | None


async def fetch_bytes(
    session: aiohttp.ClientSession,
    url: str,
    policy: RetryPolicy,
    *,
    max_bytes: int = 1 << 20,
    breaker: HostBreaker | None = None,
) -> Fetched:
    """GET a small resource into memory (at most `max_bytes`, else DownloadFailed)."""

    async def attempt() -> Fetched:
        async with session.get(url) as resp:
            _check_status(url, resp)
            buf = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                buf += chunk
                if len(buf) > max_bytes:
                    raise DownloadFailed(url, f"larger than {max_bytes} bytes", 1)
            return Fetched(url, bytes(buf), resp.headers.get("ETag"))

    return await with_retries(policy, url, attempt, breaker)


@dataclass(frozen=True)
class Downloaded:
    url: str
    path: Path
    size: int
    sha256: str
    etag: str | None


async def download_file(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    policy: RetryPolicy,
    *,
    on_bytes: Callable[[int], None] | None = None,
    max_bytes: int | None = None,
    breaker: HostBreaker | None = None,
) -> Downloaded:
    """Stream `url` into `dest` (a temporary name: the caller moves it into place once verified),
    hashing as it goes. Each attempt starts the file afresh; on failure `dest` is removed.

    `on_bytes(n)` is called for every chunk received (progress); a retried attempt reports its bytes
    again, negative first (`on_bytes(-n)`) to take back what the failed attempt counted.
    """

    async def attempt() -> Downloaded:
        got = 0
        h = hashlib.sha256()
        try:
            async with session.get(url) as resp:
                _check_status(url, resp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        got += len(chunk)
                        if max_bytes is not None and got > max_bytes:
                            raise DownloadFailed(url, f"larger than {max_bytes} bytes", 1)
                        h.update(chunk)
                        f.write(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
                    f.flush()
                return Downloaded(url, dest, got, h.hexdigest(), resp.headers.get("ETag"))
        except BaseException:
            dest.unlink(missing_ok=True)
            if on_bytes is not None and got:
                on_bytes(-got)
            raise

    return await with_retries(policy, url, attempt, breaker)


async def gather_bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run coroutine factories with at most `limit` running at once; results in order."""
    sem = asyncio.Semaphore(max(1, limit))

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))
