"""A local Binance Data Vision for tests: an aiohttp server on 127.0.0.1 (random port) laid out like
https://data.binance.vision, serving zips the tests build in the exact spot klines format, with fault modes.

    /data/spot/monthly/klines/{SYM}/{INT}/{SYM}-{INT}-{YYYY}-{MM}.zip       (+ .zip.CHECKSUM)
    /data/spot/daily/klines/{SYM}/{INT}/{SYM}-{INT}-{YYYY}-{MM}-{DD}.zip    (+ .zip.CHECKSUM)

Anything not published answers 404, as Data Vision does. Faults are queued per path and consumed one per
request: "500", "503" or "503:<seconds>" (Service Unavailable, with Retry-After when given),
"429:<seconds>" (with Retry-After), "404", "cut" (close the connection mid-body, no
Content-Length), "slow:<seconds>" (answer only after that long).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
STEPS = {"1m": dt.timedelta(minutes=1), "1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}


# --- the vendor's format --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kline:
    """One spot kline as Data Vision writes it."""

    ts: dt.datetime
    open: str
    high: str
    low: str
    close: str
    volume: str
    count: int


def klines(start: dt.datetime, n: int, interval: str = "1m", *, base: float = 42000.0) -> list[Kline]:
    """`n` consecutive klines from `start`, prices moving by a fixed pattern (test data, made up)."""
    step = STEPS[interval]
    out = []
    for i in range(n):
        o = base + (i % 17) * 1.25 - (i % 5) * 0.5
        c = o + ((i % 7) - 3) * 0.75
        h = max(o, c) + 2.5 + (i % 3)
        lo = min(o, c) - 1.75 - (i % 4) * 0.25
        out.append(
            Kline(
                ts=start + i * step,
                open=f"{o:.8f}",
                high=f"{h:.8f}",
                low=f"{lo:.8f}",
                close=f"{c:.8f}",
                volume=f"{1.5 + (i % 11) * 0.125:.8f}",
                count=100 + i % 37,
            )
        )
    return out


def kline_line(k: Kline, interval: str = "1m", unit: str | None = None) -> str:
    """One CSV line (no newline): 12 columns, ms up to 2024-12-31 and µs from 2025-01-01 unless `unit`."""
    unit = unit or ("us" if k.ts >= dt.datetime(2025, 1, 1, tzinfo=dt.UTC) else "ms")
    per = dt.timedelta(milliseconds=1) if unit == "ms" else dt.timedelta(microseconds=1)
    ot = (k.ts - EPOCH) // per
    ct = ot + STEPS[interval] // per - 1
    quote = f"{float(k.volume) * float(k.close):.8f}"
    taker = f"{float(k.volume) / 2:.8f}"
    taker_q = f"{float(taker) * float(k.close):.8f}"
    return ",".join(
        [str(ot), k.open, k.high, k.low, k.close, k.volume, str(ct), quote, str(k.count), taker, taker_q, "0"]
    )


def csv_bytes(rows: list[Kline], interval: str = "1m", *, unit: str | None = None) -> bytes:
    return "".join(kline_line(k, interval, unit) + "\n" for k in rows).encode()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def checksum_line(data: bytes, zip_name: str) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  {zip_name}\n".encode()


def stem(symbol: str, interval: str, day: dt.date, kind: str) -> str:
    return f"{symbol}-{interval}-{day:%Y-%m}" if kind == "monthly" else f"{symbol}-{interval}-{day:%Y-%m-%d}"


def zip_path(symbol: str, interval: str, day: dt.date, kind: str) -> str:
    return f"/data/spot/{kind}/klines/{symbol}/{interval}/{stem(symbol, interval, day, kind)}.zip"


# --- the server -----------------------------------------------------------------------------------------


@dataclass
class DataVision:
    """The server's content and behaviour; mutate it from the test thread between runs."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    log: list[tuple[str, float, int]] = field(default_factory=list)
    """(path, monotonic time, status) of every request answered (status 0: a slow answer, pending)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # publishing
    def put(self, path: str, data: bytes) -> None:
        with self.lock:
            self.files[path] = data

    def publish(
        self,
        symbol: str,
        interval: str,
        day: dt.date,
        kind: str,
        rows: list[Kline] | None = None,
        *,
        csv: bytes | None = None,
        archive: bytes | None = None,
        checksum: bytes | None = None,
    ) -> str:
        """Publish a zip and its CHECKSUM; by default the zip holds `rows` as its one CSV. Returns its path."""
        path = zip_path(symbol, interval, day, kind)
        name = path.rsplit("/", 1)[1]
        if archive is None:
            if csv is None:
                csv = csv_bytes(rows or [], interval)
            archive = make_zip({name.removesuffix(".zip") + ".csv": csv})
        self.put(path, archive)
        self.put(path + ".CHECKSUM", checksum if checksum is not None else checksum_line(archive, name))
        return path

    def remove(self, path: str) -> None:
        with self.lock:
            self.files.pop(path, None)

    def fault(self, path: str, *modes: str) -> None:
        with self.lock:
            self.faults.setdefault(path, []).extend(modes)

    def requests(self, suffix: str = "") -> list[tuple[str, float, int]]:
        with self.lock:
            return [r for r in self.log if r[0].endswith(suffix)]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    # serving
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        with self.lock:
            queue = self.faults.get(path)
            mode = queue.pop(0) if queue else ""
            data = self.files.get(path)

        def logged(status: int) -> None:
            with self.lock:
                self.log.append((path, time.monotonic(), status))

        if mode == "500":
            logged(500)
            return web.Response(status=500, text="Internal Server Error")
        if mode.startswith("503"):
            logged(503)
            after = mode.split(":")[1] if ":" in mode else None
            return web.Response(
                status=503, text="Service Unavailable", headers={"Retry-After": after} if after else None
            )
        if mode.startswith("429"):
            logged(429)
            return web.Response(
                status=429, text="Too Many Requests", headers={"Retry-After": mode.split(":")[1]}
            )
        if mode == "404" or data is None:
            logged(404)
            return web.Response(status=404, text="Not Found")
        if mode.startswith("slow"):
            logged(0)  # arrived; the answer comes late (or never, when the client gave up first)
            await asyncio.sleep(float(mode.split(":")[1]))
        if mode == "cut":
            logged(200)
            transport = request.transport
            assert transport is not None
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n"
            transport.write(head + data[: len(data) // 2])
            transport.close()
            raise asyncio.CancelledError  # the connection is gone; nothing more to answer
        logged(200)
        return web.Response(body=data, content_type="application/octet-stream")


@dataclass
class _Running:
    loop: asyncio.AbstractEventLoop
    runner: web.AppRunner
    thread: threading.Thread


def _wait_until_up(url: str, timeout: float = 10.0) -> None:
    """Poll until the server answers (any HTTP status), never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/ping", timeout=1.0)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def serve() -> Iterator[DataVision]:
    """Run a DataVision server in a background thread with its own event loop (a generator for fixtures)."""
    dv = DataVision()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", dv.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    dv.base_url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, name="data-vision", daemon=True)
    thread.start()
    try:
        _wait_until_up(dv.base_url)
        yield dv
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
