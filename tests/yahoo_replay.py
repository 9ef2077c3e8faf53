"""Recorded Yahoo chart responses replayed through yfinance's `session` argument: no request leaves the
machine.

yfinance 1.7 accepts a `requests.Session` or a `curl_cffi` Session (`yfinance._http.is_supported_session`).
`ReplaySession` is a real `requests.Session` whose transport adapter answers every request from this
process: the cookie and crumb calls yfinance makes before a data call, and chart requests from payloads in
the exact chart API shape. Anything it does not know is a 404 (and recorded, so a test can see it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ingest.yahoo import SPLITS_INTERVAL

Answer = tuple[int, bytes | str | dict[str, Any]]
ChartHandler = Callable[[str, dict[str, str]], Answer]


@dataclass
class Call:
    method: str
    url: str
    host: str
    path: str
    params: dict[str, str]


class _ReplayAdapter(HTTPAdapter):
    def __init__(self, session: ReplaySession) -> None:
        super().__init__()
        self._owner = session

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        call = Call(request.method or "GET", request.url or "", parts.hostname or "", parts.path, params)
        self._owner.calls.append(call)
        status, body = self._owner.answer(call)
        if isinstance(body, dict):
            content, ctype = json.dumps(body).encode(), "application/json;charset=utf-8"
        elif isinstance(body, str):
            content, ctype = body.encode(), "text/plain;charset=utf-8"
        else:
            content, ctype = body, "application/json;charset=utf-8"
        resp = requests.Response()
        resp.status_code = status
        resp._content = content
        resp.headers = CaseInsensitiveDict({"Content-Type": ctype, "Content-Length": str(len(content))})
        resp.url = request.url or ""
        resp.request = request
        resp.encoding = "utf-8"
        resp.reason = "OK" if status < 400 else "Error"
        return resp


class ReplaySession(requests.Session):
    """A requests Session answered in-process; `charts[(symbol, interval)]` gives the chart answers."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.charts: dict[tuple[str, str], ChartHandler] = {}
        adapter = _ReplayAdapter(self)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def answer(self, call: Call) -> Answer:
        if call.host == "fc.yahoo.com":
            return 200, ""
        if call.path.endswith("/v1/test/getcrumb"):
            return 200, "replayCrumb1"
        if "/v8/finance/chart/" in call.path:
            symbol = call.path.rsplit("/", 1)[1]
            handler = self.charts.get((symbol, call.params.get("interval", "")))
            if handler is not None:
                return handler(symbol, call.params)
            if call.params.get("interval") == SPLITS_INTERVAL:
                return 200, chart_payload(symbol, SPLITS_INTERVAL, None)  # no split since the window
            return 404, not_found(symbol)
        return 404, "<html>not replayed</html>"

    def chart_calls(self) -> list[Call]:
        """The price requests (not the split-event look-ups, see `split_calls`)."""
        return [
            c
            for c in self.calls
            if "/v8/finance/chart/" in c.path and c.params.get("interval") != SPLITS_INTERVAL
        ]

    def split_calls(self) -> list[Call]:
        return [
            c
            for c in self.calls
            if "/v8/finance/chart/" in c.path and c.params.get("interval") == SPLITS_INTERVAL
        ]


def not_found(symbol: str) -> dict[str, Any]:
    return {
        "chart": {
            "result": None,
            "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
        }
    }


RATE_LIMITED: Answer = (429, "Too Many Requests\r\n")


def queue(*answers: Answer) -> ChartHandler:
    """Answer successive chart requests with these, the last one repeating."""
    pending = list(answers)

    def handler(symbol: str, params: dict[str, str]) -> Answer:
        return pending.pop(0) if len(pending) > 1 else pending[0]

    return handler


def epoch(instant: dt.datetime) -> int:
    return int(instant.timestamp())


def chart_payload(
    symbol: str,
    interval: str,
    timestamps: Sequence[int] | None,
    *,
    open: Sequence[float | None] = (),
    high: Sequence[float | None] = (),
    low: Sequence[float | None] = (),
    close: Sequence[float | None] = (),
    volume: Sequence[int | None] = (),
    instrument_type: str = "EQUITY",
) -> dict[str, Any]:
    """A chart API response in Yahoo's exact shape. `timestamps=None` leaves the `timestamp` key out
    (what Yahoo sends for a range with no trading)."""
    meta: dict[str, Any] = {
        "currency": "USD",
        "symbol": symbol,
        "exchangeName": "NMS",
        "fullExchangeName": "NasdaqGS",
        "instrumentType": instrument_type,
        "firstTradeDate": 345479400,
        "regularMarketTime": 1732906800,
        "hasPrePostMarketData": True,
        "gmtoffset": -18000,
        "timezone": "EST",
        "exchangeTimezoneName": "America/New_York",
        "regularMarketPrice": 237.33,
        "chartPreviousClose": 235.06,
        "priceHint": 2,
        "dataGranularity": interval,
        "range": "",
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
    }
    quote = {
        "open": list(open),
        "high": list(high),
        "low": list(low),
        "close": list(close),
        "volume": list(volume),
    }
    result: dict[str, Any] = {"meta": meta}
    if timestamps is not None:
        result["timestamp"] = list(timestamps)
        result["indicators"] = {"quote": [quote]}
        if interval == "1d":
            result["indicators"]["adjclose"] = [{"adjclose": list(close)}]
    else:
        result["indicators"] = {"quote": [{}]}
        if interval == "1d":
            result["indicators"]["adjclose"] = [{}]
    return {"chart": {"result": [result], "error": None}}


@dataclass
class FakeSleep:
    """Records the pauses instead of sleeping."""

    pauses: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def isolate_yfinance(cache_dir: Path) -> None:
    """Keep yfinance's cookie and time-zone caches out of the developer's home."""
    import yfinance.cache as yfc

    cache_dir.mkdir(parents=True, exist_ok=True)
    yfc.set_cache_location(str(cache_dir))
