"""Parsing one article: both Yahoo item shapes, archive records, timestamps, ids, sentiment."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.news import (
    AssumedTime,
    BadRecord,
    derived_id,
    parse_file_record,
    parse_timestamp,
    parse_yahoo_item,
)
from ingest.sentiment import score, sentiment_text
from tests.news_replay import new_item, old_item


def test_new_shape() -> None:
    item = new_item(
        "u-1",
        " Tesla shares crash after awful recall ",
        "2025-05-10T12:23:14Z",
        summary="Bad news.",
        provider="AP",
    )
    a = parse_yahoo_item(item, "TSLA")
    assert a.id == "u-1" and a.symbol == "TSLA" and a.source == "yahoo"
    assert a.title == "Tesla shares crash after awful recall"
    assert a.published_at == dt.datetime(2025, 5, 10, 12, 23, 14, tzinfo=dt.UTC)
    assert (a.summary, a.publisher, a.url) == ("Bad news.", "AP", "https://finance.yahoo.com/news/u-1.html")


def test_new_shape_id_only_inside_content_and_no_links() -> None:
    item = new_item("u-2", "Headline", "2025-05-10T12:23:14+02:00")
    del item["id"]
    item["content"]["canonicalUrl"] = None
    item["content"]["clickThroughUrl"] = None
    item["content"]["provider"] = None
    a = parse_yahoo_item(item, "TSLA")
    assert a.id == "u-2" and a.url is None and a.publisher is None
    assert a.published_at == dt.datetime(2025, 5, 10, 10, 23, 14, tzinfo=dt.UTC)


def test_old_shape() -> None:
    a = parse_yahoo_item(old_item("u-3", "Old style", 1700000000, publisher="Barron's"), "AAPL")
    assert a.id == "u-3" and a.publisher == "Barron's"
    assert a.published_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert a.url == "https://finance.yahoo.com/m/u-3/story.html" and a.summary is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda i: i["content"].pop("pubDate"), "no timestamp"),
        (lambda i: i["content"].update(pubDate="2025-05-10T12:23:14"), "has no UTC offset"),
        (lambda i: i["content"].update(pubDate=1746879794), "pubDate is a int, not a string"),
        (lambda i: i["content"].update(title="  "), "no title"),
        (lambda i: (i.pop("id"), i["content"].pop("id")), "no id"),
    ],
)
def test_bad_new_items(mutate: object, reason: str) -> None:
    item = new_item("u-4", "Headline", "2025-05-10T12:23:14Z")
    mutate(item)  # type: ignore[operator]
    with pytest.raises(BadRecord, match=reason):
        parse_yahoo_item(item, "AAPL")


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (None, "no timestamp"),
        (True, "not whole epoch seconds"),
        (1.7e9, "not whole epoch seconds"),
        ("1700000000", "not whole epoch seconds"),
        (1700000000000, "not epoch seconds between 1990 and 2100"),
    ],
)
def test_bad_old_items(when: object, reason: str) -> None:
    item = old_item("u-5", "Headline", 0)
    item["providerPublishTime"] = when
    with pytest.raises(BadRecord, match=reason):
        parse_yahoo_item(item, "AAPL")


def test_unknown_shapes() -> None:
    with pytest.raises(BadRecord, match="not an object"):
        parse_yahoo_item(["x"], "AAPL")
    with pytest.raises(BadRecord, match="unknown item shape"):
        parse_yahoo_item({"title": "t"}, "AAPL")


@given(
    st.datetimes(
        min_value=dt.datetime(1990, 1, 1),
        max_value=dt.datetime(2099, 12, 31),
        timezones=st.sampled_from([dt.UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]),
        allow_imaginary=False,
    )
)
def test_timestamps_with_an_offset_round_trip(when: dt.datetime) -> None:
    instant = when.astimezone(dt.UTC)  # compared as UTC instants (ambiguous local times have a fold)
    assert parse_timestamp(when.isoformat()) == instant
    assert parse_timestamp(instant.isoformat().replace("+00:00", "Z")) == instant
    with pytest.raises(BadRecord, match="no UTC offset"):
        parse_timestamp(when.replace(tzinfo=None).isoformat())


def test_date_only_needs_an_assumed_time() -> None:
    with pytest.raises(BadRecord, match="date without a time"):
        parse_timestamp("2024-07-03")
    assume = AssumedTime.parse("09:30", "America/New_York")
    assert parse_timestamp("2024-07-03", assume) == dt.datetime(2024, 7, 3, 13, 30, tzinfo=dt.UTC)
    with pytest.raises(BadRecord, match="not a valid date"):
        parse_timestamp("2024-02-30", assume)


def test_file_record_and_derived_id() -> None:
    rec = {"symbol": "MSFT", "published_at": "2024-01-02T09:00:00-05:00", "title": "Microsoft up", "url": ""}
    a = parse_file_record(rec, None)
    assert a.url is None and a.source == "file"
    assert a.id == derived_id("MSFT", dt.datetime(2024, 1, 2, 14, 0, tzinfo=dt.UTC), "Microsoft up")
    # the same article written with another offset gets the same id; another title or symbol does not
    same = parse_file_record({**rec, "published_at": "2024-01-02T14:00:00Z"}, None)
    assert same.id == a.id
    assert parse_file_record({**rec, "title": "Microsoft down"}, None).id != a.id
    assert parse_file_record({**rec, "symbol": "AAPL"}, None).id != a.id
    assert parse_file_record({**rec, "id": "given"}, None).id == "given"


def test_sentiment_is_vader_compound_of_title_and_summary() -> None:
    assert sentiment_text("Title", None) == "Title"
    assert sentiment_text("Title", "  ") == "Title"
    assert sentiment_text("Title", "Summary") == "Title\nSummary"
    assert score("Great results, shares soar") > 0.5
    assert score("Awful crash hits Tesla") < -0.5
    assert score("Apple to hold developer event") == 0.0
    assert score("Apple to hold developer event", "A wonderful, great day") > 0
    assert score("Awful crash hits Tesla") == score("Awful crash hits Tesla")  # deterministic
