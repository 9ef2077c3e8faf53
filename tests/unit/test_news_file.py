"""`ingest news-file`: headline archives in CSV or JSONL, through the CLI (CliRunner); every bad input is
refused with its line number and reason while the good lines land."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import ingest.news as news
import lake
from cli import cli
from ingest.common import RunContext
from ingest.sentiment import score
from ingest.sessions import land
from lake.config import Settings
from tests.conftest import bars_table

T0 = dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.UTC)


@pytest.fixture
def lake_with_aapl(lake_root: Path) -> Path:
    with land(lake_root) as w:
        part = {"source": "polygon", "interval": "1h", "symbol": "AAPL", "period": "2024-03"}
        w.write(
            lake.BARS,
            part,
            bars_table(T0, [170.0, 171.0, 172.0], interval=dt.timedelta(hours=1), asset_class="stock"),
        )
    return lake_root


def invoke(runner: CliRunner, root: Path, *args: str) -> Result:
    return runner.invoke(cli, ["--lake", str(root), "ingest", "news-file", *args])


def flat(result: Result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


def news_rows(root: Path) -> list[dict[str, Any]]:
    con = lake.connect(root, read_only=True)
    rel = con.sql("SELECT * FROM news ORDER BY symbol, published_at, id")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_csv_archive_lands_scored_with_derived_ids(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    f = tmp_path / "headlines.csv"
    f.write_text(
        "symbol,published_at,title,publisher,url,summary\r\n"
        "AAPL,2024-03-04T15:05:00Z,Apple wins big in court,Reuters,https://example.com/a,\r\n"
        'AAPL,2024-03-04T10:10:00-05:00,"Apple, Inc. faces terrible outage",,,"Users angry, sales hit"\r\n'
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 0, r.output
    got = news_rows(lake_with_aapl)
    assert [g["title"] for g in got] == ["Apple wins big in court", "Apple, Inc. faces terrible outage"]
    wins, outage = got
    assert outage["published_at"] == dt.datetime(2024, 3, 4, 15, 10, tzinfo=dt.UTC)  # -05:00 honoured
    assert outage["summary"] == "Users angry, sales hit" and outage["publisher"] is None
    assert outage["sentiment"] == score(outage["title"], outage["summary"]) < 0
    assert (
        wins["publisher"] == "Reuters" and wins["url"] == "https://example.com/a" and wins["summary"] is None
    )
    assert wins["sentiment"] == score("Apple wins big in court") > 0
    assert wins["source"] == "file"
    # no id column: a deterministic id from symbol, instant and title
    assert wins["id"] == news.derived_id("AAPL", wins["published_at"], wins["title"])
    assert wins["id"].startswith("sha256-") and wins["id"] != outage["id"]
    # importing the same file again changes nothing
    before = news_rows(lake_with_aapl)
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 0, r.output
    assert news_rows(lake_with_aapl) == before


def test_jsonl_archive_with_ids(runner: CliRunner, lake_with_aapl: Path, tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "archive.jsonl",
        [
            {"symbol": "AAPL", "published_at": "2024-03-04T15:05:00+00:00", "title": "Apple up", "id": "x-1"},
            {
                "symbol": "AAPL",
                "published_at": "2024-03-04T16:00:00.250Z",
                "title": "Apple down",
                "id": "x-2",
            },
        ],
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 0, r.output
    got = news_rows(lake_with_aapl)
    assert [(g["id"], g["published_at"]) for g in got] == [
        ("x-1", dt.datetime(2024, 3, 4, 15, 5, tzinfo=dt.UTC)),
        ("x-2", dt.datetime(2024, 3, 4, 16, 0, 0, 250000, tzinfo=dt.UTC)),
    ]


def test_malformed_jsonl_line_is_named_and_good_lines_land(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    f = write_jsonl(
        tmp_path / "archive.jsonl",
        [
            {"symbol": "AAPL", "published_at": "2024-03-04T15:05:00Z", "title": "first good"},
            '{"symbol": "AAPL", "published_at": "2024-03-04T15:06:00Z", "title": "cut off',
            "",
            '["not", "an", "object"]',
            {"symbol": "AAPL", "published_at": "2024-03-04T15:07:00Z", "title": "second good"},
        ],
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    out = flat(r)
    assert "error: news-file: archive.jsonl line 2: not valid JSON" in out
    assert "archive.jsonl line 4: not a JSON object but list" in out
    assert [g["title"] for g in news_rows(lake_with_aapl)] == ["first good", "second good"]


def test_article_with_no_timestamp(runner: CliRunner, lake_with_aapl: Path, tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"symbol": "AAPL", "published_at": "", "title": "empty stamp"},
            {"symbol": "AAPL", "published_at": None, "title": "null stamp"},
            {"symbol": "AAPL", "title": "no stamp field"},
            {"symbol": "AAPL", "published_at": "2024-03-04T15:05:00Z", "title": "good"},
        ],
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    out = flat(r)
    assert "a.jsonl line 1 (AAPL): no timestamp (published_at is missing or empty)" in out
    assert "a.jsonl line 2 (AAPL): no timestamp" in out
    assert "a.jsonl line 3: missing field(s) published_at" in out
    assert [g["title"] for g in news_rows(lake_with_aapl)] == ["good"]


def test_timestamp_without_offset_is_refused(runner: CliRunner, lake_with_aapl: Path, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text(
        "symbol,published_at,title\n"
        "AAPL,2024-03-04T15:05:00,naive\n"
        "AAPL,2024-03-04 15:05,naive with space\n"
        "AAPL,yesterday,not a time\n"
        "AAPL,2024-03-04T15:05:00+01:00,good\n"
    )
    r = invoke(runner, lake_with_aapl, str(f), "--assume-time", "16:00", "--tz", "America/New_York")
    assert r.exit_code == 1, r.output
    out = flat(r)
    # --assume-time applies to dates alone, never to a time without offset
    assert "a.csv line 2 (AAPL): published_at '2024-03-04T15:05:00' has no UTC offset" in out
    assert "a.csv line 3 (AAPL): published_at '2024-03-04 15:05' has no UTC offset" in out
    assert "a.csv line 4 (AAPL): published_at 'yesterday' is not an ISO 8601 timestamp" in out
    got = news_rows(lake_with_aapl)
    assert [(g["title"], g["published_at"]) for g in got] == [
        ("good", dt.datetime(2024, 3, 4, 14, 5, tzinfo=dt.UTC))
    ]


def test_date_only_refused_without_assume_time(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    f = tmp_path / "daily.csv"
    f.write_text("symbol,published_at,title\nAAPL,2024-03-04,Apple closes higher\n")
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    assert (
        "daily.csv line 2 (AAPL): published_at '2024-03-04' is a date without a time: give --assume-time"
        in flat(r)
    )
    assert news_rows(lake_with_aapl) == []
    # one of the two options is not enough
    r = invoke(runner, lake_with_aapl, str(f), "--assume-time", "16:00")
    assert r.exit_code == 1, r.output
    assert "--assume-time and --tz go together" in r.output
    r = invoke(runner, lake_with_aapl, str(f), "--assume-time", "25:00", "--tz", "UTC")
    assert r.exit_code == 1 and "is not a time of day" in r.output, r.output
    r = invoke(runner, lake_with_aapl, str(f), "--assume-time", "16:00", "--tz", "Mars/Olympus")
    assert r.exit_code == 1 and "--tz 'Mars/Olympus' is not a known time zone" in r.output, r.output


def test_date_only_with_assume_time_and_tz(runner: CliRunner, lake_with_aapl: Path, tmp_path: Path) -> None:
    f = tmp_path / "daily.csv"
    # 2024-03-08 is EST (-05:00), 2024-03-11 is EDT (-04:00): the zone's own offset on that day is used
    f.write_text("symbol,published_at,title\nAAPL,2024-03-08,winter close\nAAPL,2024-03-11,summer close\n")
    r = invoke(runner, lake_with_aapl, str(f), "--assume-time", "16:00", "--tz", "America/New_York")
    assert r.exit_code == 0, r.output
    got = {g["title"]: g["published_at"] for g in news_rows(lake_with_aapl)}
    assert got == {
        "winter close": dt.datetime(2024, 3, 8, 21, 0, tzinfo=dt.UTC),
        "summer close": dt.datetime(2024, 3, 11, 20, 0, tzinfo=dt.UTC),
    }


def test_symbol_not_in_the_lake_is_stored_with_a_note(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    f = tmp_path / "a.csv"
    f.write_text(
        "symbol,published_at,title\nAAPL,2024-03-04T15:05:00Z,Apple item\nAAPLE,2024-03-04T15:06:00Z,typo item\n"
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 0, r.output
    out = flat(r)
    assert "note: AAPLE: no bars of AAPLE in the lake; its articles are stored but join no bar" in out
    assert "AAPL: no bars" not in out
    assert {g["symbol"] for g in news_rows(lake_with_aapl)} == {"AAPL", "AAPLE"}


def test_hostile_symbol_is_refused_per_line(runner: CliRunner, lake_with_aapl: Path, tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"symbol": "../../etc", "published_at": "2024-03-04T15:05:00Z", "title": "escape"},
            {"symbol": "AAPL'; DROP TABLE x; --", "published_at": "2024-03-04T15:05:00Z", "title": "inject"},
            {"symbol": 42, "published_at": "2024-03-04T15:05:00Z", "title": "number"},
            {"symbol": "AAPL", "published_at": "2024-03-04T15:05:00Z", "title": "fine"},
        ],
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    out = flat(r)
    assert "a.jsonl line 1: invalid symbol '../../etc'" in out
    assert "a.jsonl line 2: invalid symbol" in out
    assert "a.jsonl line 3: symbol is a int, not a string" in out
    assert [g["symbol"] for g in news_rows(lake_with_aapl)] == ["AAPL"]
    assert sorted(p.name for p in (lake_with_aapl / "datasets" / "news").iterdir()) == [
        "symbol=AAPL",
        "symbol=__empty__",
    ]


def test_duplicate_id_with_a_different_title_keeps_the_first(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first.jsonl"
    write_jsonl(
        first,
        [
            {
                "symbol": "AAPL",
                "published_at": "2024-03-04T15:05:00Z",
                "title": "Original title",
                "id": "n-1",
            },
            {
                "symbol": "AAPL",
                "published_at": "2024-03-04T15:05:00Z",
                "title": "Edited in the same file",
                "id": "n-1",
            },
            {
                "symbol": "AAPL",
                "published_at": "2024-03-04T15:05:00Z",
                "title": "Original title",
                "id": "n-1",
            },
        ],
    )
    r = invoke(runner, lake_with_aapl, str(first))
    assert r.exit_code == 0, r.output
    out = flat(r)
    assert (
        "note: AAPL: 1 article(s) came again with a different title; the first-seen title is kept (n-1)"
        in out
    )
    [row] = news_rows(lake_with_aapl)
    assert row["title"] == "Original title"

    # a later import with the same id and yet another title: still the first
    second = write_jsonl(
        tmp_path / "second.jsonl",
        [{"symbol": "AAPL", "published_at": "2024-03-04T15:09:00Z", "title": "Retitled later", "id": "n-1"}],
    )
    summary = news.run_file(
        RunContext(root=lake_with_aapl, settings=Settings(), quiet=True), second, None, None
    )
    assert summary.ok
    assert summary.title_changes == {"AAPL": 1} and summary.duplicates == {"AAPL": 1}
    assert summary.of("AAPL").rows_landed == 0
    assert news_rows(lake_with_aapl) == [row]


def test_csv_with_a_missing_required_column_is_refused_whole(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    f = tmp_path / "a.csv"
    f.write_text("symbol,date,headline\nAAPL,2024-03-04T15:05:00Z,x\n")
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    assert "lacks required column(s) published_at, title" in flat(r)


def test_csv_row_with_wrong_field_count_and_empty_title(
    runner: CliRunner, lake_with_aapl: Path, tmp_path: Path
) -> None:
    f = tmp_path / "a.csv"
    f.write_text(
        "symbol,published_at,title,extra_col\n"
        "AAPL,2024-03-04T15:05:00Z,too,many,fields\n"
        "AAPL,2024-03-04T15:05:00Z,  ,x\n"
        "AAPL,2024-03-04T15:06:00Z,ok,x\n"
    )
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    out = flat(r)
    assert "a.csv line 2: 5 field(s) where the header has 4" in out
    assert "a.csv line 3 (AAPL): no title (title is empty)" in out
    assert "ignored column(s) extra_col" in out
    assert [g["title"] for g in news_rows(lake_with_aapl)] == ["ok"]


def test_not_utf8_is_refused_naming_the_file(runner: CliRunner, lake_with_aapl: Path, tmp_path: Path) -> None:
    f = tmp_path / "latin1.csv"
    f.write_bytes("symbol,published_at,title\nAAPL,2024-03-04T15:05:00Z,caf\xe9\n".encode("latin-1"))
    r = invoke(runner, lake_with_aapl, str(f))
    assert r.exit_code == 1, r.output
    assert "latin1.csv: not UTF-8 text" in flat(r)
