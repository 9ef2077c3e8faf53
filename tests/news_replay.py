"""Recorded Yahoo news responses replayed through yfinance's `session` (tests only; nothing leaves the
machine).

yfinance 1.7 accepts a `requests.Session` (or a curl_cffi one) as `Ticker(symbol, session=...)`. Its news
call (`Ticker.get_news`, yfinance/base.py) goes through `YfData.post` (yfinance/data.py), which first
fetches a cookie (`GET https://fc.yahoo.com`) and a crumb (`GET https://query1.finance.yahoo.com/v1/test/
getcrumb`), then posts `{"serviceConfig": {"snippetCount": N, "s": [TICKER]}}` as JSON to
`https://finance.yahoo.com/xhr/ncp?queryRef=latestNews&serviceKey=ncp_fin&crumb=…` and reads
`data.tickerStream.stream` from the JSON answer, dropping items flagged `ad`.

`ReplayAdapter` is mounted on a plain requests.Session for http:// and https://, so every request of
that session is answered here, and recorded for the test to inspect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

NEWS_PATH = "/xhr/ncp"


def ncp_body(items: Sequence[Mapping[str, Any]]) -> bytes:
    """The JSON Yahoo's ncp endpoint answers with, holding `items` as the ticker's news stream."""
    return json.dumps(
        {
            "data": {
                "tickerStream": {
                    "stream": list(items),
                    "pagination": {"uuids": "", "requestedCount": len(items)},
                    "nextPage": False,
                }
            },
            "status": "OK",
        }
    ).encode()


def new_item(
    uuid: str,
    title: str,
    pub_date: str,
    *,
    summary: str | None = "",
    provider: str = "Reuters",
    url: str | None = None,
) -> dict[str, Any]:
    """A news item in Yahoo's current shape (as served since 2024-25)."""
    content: dict[str, Any] = {
        "id": uuid,
        "contentType": "STORY",
        "title": title,
        "description": "",
        "summary": summary,
        "pubDate": pub_date,
        "displayTime": pub_date,
        "isHosted": True,
        "bypassModal": False,
        "previewUrl": None,
        "thumbnail": None,
        "provider": {"displayName": provider, "url": "https://www.example.com/"},
        "canonicalUrl": {
            "url": url or f"https://finance.yahoo.com/news/{uuid}.html",
            "site": "finance",
            "region": "US",
            "lang": "en-US",
        },
        "clickThroughUrl": {"url": url or f"https://finance.yahoo.com/news/{uuid}.html"},
        "metadata": {"editorsPick": False},
        "finance": {"premiumFinance": {"isPremiumNews": False, "isPremiumFreeNews": False}},
        "storyline": None,
    }
    return {"id": uuid, "content": content}


def old_item(
    uuid: str, title: str, publish_time: int, *, publisher: str = "Motley Fool", tickers: Sequence[str] = ()
) -> dict[str, Any]:
    """A news item in Yahoo's older shape (`providerPublishTime` in epoch seconds)."""
    return {
        "uuid": uuid,
        "title": title,
        "publisher": publisher,
        "link": f"https://finance.yahoo.com/m/{uuid}/story.html",
        "providerPublishTime": publish_time,
        "type": "STORY",
        "thumbnail": {"resolutions": []},
        "relatedTickers": list(tickers),
    }


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json;charset=utf-8"


@dataclass
class ReplayAdapter(BaseAdapter):
    """Answers yfinance's cookie, crumb and news requests from recorded replies, per ticker.

    `news[TICKER]` is a list of replies served in order (the last one again once the list runs out).
    Anything else is a 404 with a body naming the unrecorded request."""

    news: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[PreparedRequest] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self.requests.append(request)
        url = urlsplit(request.url or "")
        if url.hostname == "fc.yahoo.com":
            return self._response(request, Reply(404, b"", "text/html"))  # what fc.yahoo.com answers
        if url.path == "/v1/test/getcrumb":
            return self._response(request, Reply(200, b"replayed-crumb", "text/plain"))
        if url.hostname == "finance.yahoo.com" and url.path == NEWS_PATH and request.method == "POST":
            body = json.loads(request.body or b"{}")
            ticker = body["serviceConfig"]["s"][0]
            replies = self.news.get(ticker)
            if not replies:
                return self._response(request, Reply(200, ncp_body([])))
            i = self.served.get(ticker, 0)
            self.served[ticker] = i + 1
            return self._response(request, replies[min(i, len(replies) - 1)])
        return self._response(request, Reply(404, f"not recorded: {request.method} {request.url}".encode()))

    def close(self) -> None:
        pass

    @staticmethod
    def _response(request: PreparedRequest, reply: Reply) -> Response:
        r = Response()
        r.status_code = reply.status
        r._content = reply.body
        r.headers["Content-Type"] = reply.content_type
        r.url = request.url or ""
        r.request = request
        r.encoding = "utf-8"
        return r

    def news_requests(self) -> list[tuple[dict[str, list[str]], dict[str, Any]]]:
        """(query parameters, JSON body) of every news request seen."""
        out = []
        for r in self.requests:
            url = urlsplit(r.url or "")
            if url.path == NEWS_PATH:
                out.append((parse_qs(url.query), json.loads(r.body or b"{}")))
        return out


def replay_session(adapter: ReplayAdapter) -> requests.Session:
    """A requests.Session whose every http(s) request is answered by `adapter`."""
    s = requests.Session()
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


def isolate_yfinance(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Give the test a fresh yfinance state and leave the process's as it was: yfinance keeps one
    `YfData` singleton (session, cookie, crumb, cookie strategy) per process, and a persistent cookie
    cache (a sqlite file in the user's cache folder), which is replaced by its dummy here. Any real
    connection attempt fails the test."""
    import socket

    import yfinance.cache as yf_cache
    from yfinance.data import SingletonMeta, YfData

    monkeypatch.setattr(yf_cache._CookieCacheManager, "_Cookie_cache", yf_cache._CookieCacheDummy())

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a test tried to reach the network: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    saved = SingletonMeta._instances.pop(YfData, None)
    try:
        yield
    finally:
        SingletonMeta._instances.pop(YfData, None)
        if saved is not None:
            SingletonMeta._instances[YfData] = saved
