"""Train, validation and test periods: disjoint, in order, embargo respected; SQL and Python agree."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lake
from features.splits import Split, compute_splits, load_splits, split_of
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings, load_settings
from lake.errors import ConfigError
from tests.conftest import bars_table

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def check_periods(sp: list[Split], start: dt.datetime, end: dt.datetime, embargo: dt.timedelta) -> None:
    assert [s.name for s in sp] == ["train", "validation", "test"]
    for s in sp:
        assert start <= s.start_at <= s.end_at <= end, s
    train, val, test = sp
    assert train.start_at == start and test.end_at == end
    # in order, disjoint, and an embargo between consecutive non-empty periods
    assert train.end_at <= val.start_at and val.end_at <= test.start_at
    nonempty = [s for s in sp if not s.empty]
    for a, b in zip(nonempty, nonempty[1:], strict=False):
        assert b.start_at - a.end_at >= embargo or b.start_at == end, (a, b)
    for a in sp:
        for b in sp:
            if a is not b and not a.empty and not b.empty:
                assert a.end_at <= b.start_at or b.end_at <= a.start_at


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=400 * 86_400_000_000),
    st.integers(min_value=1, max_value=5),
    st.floats(min_value=0.01, max_value=0.98),
    st.floats(min_value=0.01, max_value=0.98),
)
def test_fraction_splits_never_overlap_and_respect_the_embargo(
    length_us: int, embargo_days: int, train: float, validation: float
) -> None:
    if train + validation >= 1:
        validation = (1 - train) / 2
    s = Settings(train_fraction=train, validation_fraction=validation, embargo_days=embargo_days)
    end = T0 + dt.timedelta(microseconds=length_us)
    sp = compute_splits(T0, end, s)
    check_periods(sp, T0, end, dt.timedelta(days=embargo_days))
    usable = length_us - 2 * embargo_days * 86_400_000_000
    if usable > 10 * 60_000_000 / min(train, validation):  # long enough that no period rounds to nothing
        assert all(not x.empty for x in sp)
        assert sp[1].start_at - sp[0].end_at == dt.timedelta(days=embargo_days)
        assert sp[2].start_at - sp[1].end_at == dt.timedelta(days=embargo_days)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=200),
    st.integers(min_value=-30, max_value=220),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=10),
)
def test_date_splits_never_overlap_and_respect_the_embargo(
    days: int, train_end_offset: int, val_days: int, embargo_days: int
) -> None:
    end = T0 + dt.timedelta(days=days, hours=7)
    train_end = T0.date() + dt.timedelta(days=train_end_offset)
    s = Settings(
        split_method="date",
        train_end=train_end,
        validation_end=train_end + dt.timedelta(days=val_days),
        embargo_days=embargo_days,
    )
    sp = compute_splits(T0, end, s)
    check_periods(sp, T0, end, dt.timedelta(days=embargo_days))


def test_date_split_boundaries_are_whole_utc_days() -> None:
    s = Settings(
        split_method="date",
        train_end=dt.date(2024, 1, 20),
        validation_end=dt.date(2024, 1, 25),
        embargo_days=1,
    )
    sp = compute_splits(T0, dt.datetime(2024, 2, 1, tzinfo=UTC), s)
    assert [(x.start_at, x.end_at) for x in sp] == [
        (T0, dt.datetime(2024, 1, 21, tzinfo=UTC)),
        (dt.datetime(2024, 1, 22, tzinfo=UTC), dt.datetime(2024, 1, 26, tzinfo=UTC)),
        (dt.datetime(2024, 1, 27, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)),
    ]
    m = dt.timedelta(minutes=1)
    assert (
        split_of(dt.datetime(2024, 1, 21, 12, tzinfo=UTC), dt.datetime(2024, 1, 21, 12, 1, tzinfo=UTC), sp)
        is None
    )
    assert (
        split_of(dt.datetime(2024, 1, 22, tzinfo=UTC), dt.datetime(2024, 1, 22, tzinfo=UTC) + m, sp)
        == "validation"
    )
    last = dt.datetime(2024, 1, 20, 23, 59, tzinfo=UTC)
    assert split_of(last, last + m, sp) == "train"  # known exactly at train's end
    # a daily bar opening in train and closing in the embargo is in no period
    assert (
        split_of(dt.datetime(2024, 1, 20, 14, 30, tzinfo=UTC), dt.datetime(2024, 1, 21, 21, tzinfo=UTC), sp)
        is None
    )


@pytest.mark.parametrize(
    "s",
    [
        Settings(),
        Settings(train_fraction=0.5, validation_fraction=0.3, embargo_days=2),
        Settings(split_method="date", train_end=dt.date(2024, 1, 3), validation_end=dt.date(2024, 1, 5)),
        Settings(split_method="date", train_end=dt.date(2023, 6, 1), validation_end=dt.date(2024, 3, 1)),
    ],
)
def test_the_sql_view_and_python_agree(lake_root: Path, s: Settings) -> None:
    with land(lake_root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 1, 1, 3, 7, tzinfo=UTC), [1.0] * 9000))
    con = lake.connect(lake_root, settings=s)
    lo, hi = con.execute("SELECT min(ts), max(available_at) FROM bars").fetchone() or (None, None)
    assert lo is not None and hi is not None
    assert load_splits(con) == compute_splits(lo, hi, s)


def test_splits_view_is_empty_on_an_empty_lake(lake_root: Path) -> None:
    assert load_splits(lake.connect(lake_root)) == []


def test_split_settings_from_toml_and_their_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[splits]\nmethod = "date"\ntrain_end = 2024-02-15\nvalidation_end = 2024-03-01\nembargo_days = 2\n'
    )
    s = load_settings(cfg)
    assert (s.split_method, s.train_end, s.validation_end, s.embargo_days) == (
        "date",
        dt.date(2024, 2, 15),
        dt.date(2024, 3, 1),
        2,
    )
    assert s.sql_settings()["train_end"] == "2024-02-15"
    for text, match in [
        ('[splits]\nmethod = "random"\n', r"line 2: key 'splits.method': must be one of"),
        ("[splits]\ntrain_fraction = 1.5\n", r"line 2: key 'splits.train_fraction'"),
        (
            "[splits]\ntrain_fraction = 0.6\nvalidation_fraction = 0.5\n",
            r"line 3: key 'splits.validation_fraction'",
        ),
        ("[splits]\nembargo_days = -1\n", r"line 2: key 'splits.embargo_days': must be at least 1"),
        ("[splits]\nembargo_days = 0\n", r"line 2: key 'splits.embargo_days': must be at least 1"),
        ('[splits]\nmethod = "date"\ntrain_end = 2024-02-15\n', "needs train_end and validation_end"),
        (
            '[splits]\nmethod = "date"\ntrain_end = 2024-02-15\nvalidation_end = 2024-02-01\n',
            r"line 4: key 'splits.validation_end': validation_end 2024-02-01 must be after",
        ),
        ("[splits]\nshuffle = true\n", r"key 'splits.shuffle': unknown setting"),
        ('[splits]\ntrain_end = "soon"\n', r"key 'splits.train_end': expected date"),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_settings(cfg)


# --- the SQL views against Python, over settings, with bars whose life spans a boundary --------------------

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


@st.composite
def split_settings(draw: st.DrawFn) -> Settings:
    embargo = draw(st.integers(1, 3))
    if draw(st.booleans()):
        train = draw(st.floats(0.05, 0.8))
        validation = draw(st.floats(0.05, 0.9 - train))
        return Settings(train_fraction=train, validation_fraction=validation, embargo_days=embargo)
    train_end = dt.date(2024, 1, 1) + dt.timedelta(days=draw(st.integers(-5, 40)))
    return Settings(
        split_method="date",
        train_end=train_end,
        validation_end=train_end + dt.timedelta(days=draw(st.integers(1, 20))),
        embargo_days=embargo,
    )


@settings(max_examples=25, deadline=None)
@given(
    split_settings(),
    st.integers(0, 23),  # crypto hourly bars start at this hour of 2024-01-02
    st.integers(5, 50),  # days of daily bars (ts at the open, available_at 30 hours later: a straddler)
)
def test_bar_splits_match_python_and_no_bar_touches_an_embargo(s: Settings, hour: int, days: int) -> None:
    import tempfile

    hourly_start = dt.datetime(2024, 1, 2, hour, tzinfo=UTC)
    daily_start = dt.datetime(2024, 1, 1, 14, 30, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with land(root) as w:
            hourly = bars_table(hourly_start, [1.0] * (24 * 30), interval=HOUR)
            for period in ("2024-01", "2024-02"):
                keep = [t.strftime("%Y-%m") == period for t in hourly.column("ts").to_pylist()]
                if any(keep):
                    part = {"source": "binance", "interval": "1h", "symbol": "BTCUSDT", "period": period}
                    w.write(lake.BARS, part, hourly.filter(keep))
            daily = bars_table(daily_start, [1.0] * days, interval=DAY)
            daily = daily.set_column(
                daily.schema.get_field_index("available_at"),
                "available_at",
                pa.array(
                    [t + 30 * HOUR for t in daily.column("ts").to_pylist()],
                    type=daily.schema.field("ts").type,
                ),
            )
            w.write(
                lake.BARS,
                {"source": "binance", "interval": "1d", "symbol": "ETHUSDT", "period": "2024"},
                daily,
            )
        con = lake.connect(root, read_only=True, settings=s)
        lo, hi = con.execute("SELECT min(ts), max(available_at) FROM bars").fetchone() or (None, None)
        assert lo is not None and hi is not None
        periods = compute_splits(lo, hi, s)
        assert load_splits(con) == periods
        rows = con.execute('SELECT symbol, "interval", ts, available_at, split FROM bar_splits').fetchall()
        con.close()
    assert len(rows) == 24 * 30 + days  # every bar once, in one period or none
    gaps = [
        (a.end_at, b.start_at) for a, b in zip(periods, periods[1:], strict=False) if a.end_at < b.start_at
    ]
    for _sym, _iv, ts, available_at, split in rows:
        assert split == split_of(ts, available_at, periods)
        if split is not None:
            sp = next(p for p in periods if p.name == split)
            assert sp.start_at <= ts and available_at <= sp.end_at
            for g_lo, g_hi in gaps:  # no bar of a period lies (even partly) in an embargo
                assert available_at <= g_lo or ts >= g_hi, (ts, available_at, split, g_lo, g_hi)


# --- the default embargo: bars of the lake's shortest interval ---------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=30 * 86_400_000_000),
    st.sampled_from([1, 5, 60, 1440]),
    st.integers(min_value=1, max_value=500),
)
def test_the_embargo_in_bars_scales_with_the_interval(length_us: int, bar_minutes: int, bars: int) -> None:
    s = Settings(embargo_bars=bars)
    end = T0 + dt.timedelta(microseconds=length_us)
    sp = compute_splits(T0, end, s, bar_minutes=bar_minutes)
    embargo = dt.timedelta(minutes=bars * bar_minutes)
    check_periods(sp, T0, end, embargo)
    if length_us >= 2 * embargo / dt.timedelta(microseconds=1) + 100 * 60_000_000:
        assert all(not x.empty for x in sp)
        assert sp[1].start_at - sp[0].end_at == embargo == sp[2].start_at - sp[1].end_at


def test_embargo_days_when_set_replaces_the_bars() -> None:
    end = T0 + dt.timedelta(days=30)
    by_days = compute_splits(T0, end, Settings(embargo_days=2), bar_minutes=1)
    assert by_days[1].start_at - by_days[0].end_at == dt.timedelta(days=2)
    by_bars = compute_splits(T0, end, Settings(), bar_minutes=1)
    assert by_bars[1].start_at - by_bars[0].end_at == dt.timedelta(minutes=60)


@pytest.mark.parametrize("s", [Settings(), Settings(embargo_bars=5), Settings(embargo_days=1)])
def test_the_sql_view_and_python_agree_on_an_embargo_of_hourly_bars(lake_root: Path, s: Settings) -> None:
    with land(lake_root) as w:
        part = {"source": "binance", "interval": "1h", "symbol": "BTCUSDT", "period": "2024-01"}
        w.write(
            lake.BARS, part, bars_table(dt.datetime(2024, 1, 1, 3, tzinfo=UTC), [1.0] * 600, interval=HOUR)
        )
    con = lake.connect(lake_root, settings=s)
    lo, hi = con.execute("SELECT min(ts), max(available_at) FROM bars").fetchone() or (None, None)
    assert lo is not None and hi is not None
    periods = load_splits(con)
    assert periods == compute_splits(lo, hi, s, bar_minutes=60)
    want = dt.timedelta(days=1) if s.embargo_days else dt.timedelta(hours=s.embargo_bars)
    assert periods[1].start_at - periods[0].end_at == want


def test_embargo_bars_from_toml_and_its_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("[splits]\nembargo_bars = 120\n")
    s = load_settings(cfg)
    assert (s.embargo_bars, s.embargo_days) == (120, None)
    assert s.sql_settings()["embargo_bars"] == 120 and s.sql_settings()["embargo_days"] == 0
    assert Settings().embargo_bars == 60 and Settings().embargo_days is None
    for text, match in [
        ("[splits]\nembargo_bars = 0\n", r"line 2: key 'splits.embargo_bars': must be at least 1"),
        ("[splits]\nembargo_days = 1\nembargo_bars = 60\n", "set embargo_bars or embargo_days, not both"),
        ('[splits]\nembargo_bars = "1h"\n', r"key 'splits.embargo_bars': expected int"),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_settings(cfg)


# --- eligibility by period: a period's min_bars comes from the settings, never from the lake's range --------

QUALITY = (
    'SELECT symbol, "interval", start_at, end_at, first_ts, last_ts, n_bars, expected_bars, missing_bars, '
    "missing_ratio, min_bars, max_missing_ratio, eligible, reason FROM symbol_quality_by_split "
    "WHERE split = ? ORDER BY symbol"
)


def write_bars(root: Path, symbol: str, table: pa.Table, interval: str = "1h") -> None:
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period(interval, t) for t in ts}):
            mask = pa.array([bar_period(interval, t) == p for t in ts])
            part = {"source": "binance", "interval": interval, "symbol": symbol, "period": p}
            w.write(lake.BARS, part, table.filter(mask), mode="merge")


def quality(root: Path, s: Settings, split: str = "train") -> dict[str, tuple[object, ...]]:
    con = lake.connect(root, read_only=True, settings=s)
    try:
        return {r[0]: r for r in con.execute(QUALITY, [split]).fetchall()}
    finally:
        con.close()


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 6),  # days of the train period (train_end = T0's day + this - 1)
    st.integers(0, 48),  # hours of BTCUSDT bars after the train period, before the later data arrives
    st.sets(st.integers(1, 6 * 24 - 2), max_size=40),  # BTCUSDT's missing hours in the train period
    st.tuples(st.integers(0, 100), st.integers(1, 100)),  # ETHUSDT: first hour, hours (those in train)
    st.integers(1, 200),  # min_bars_per_symbol
    st.sampled_from([0.0, 0.05, 0.3]),  # max_missing_ratio
    st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"]),  # who gets the later data
    st.integers(0, 72),  # the later data starts this many hours after the train period's end
    st.integers(1, 24 * 60),  # and holds this many hours (of every `step`-th hour)
    st.integers(1, 6),  # step
)
def test_later_data_never_changes_a_fixed_train_periods_eligibility(
    train_days: int,
    tail: int,
    holes: set[int],
    eth: tuple[int, int],
    min_bars: int,
    missing: float,
    who: str,
    later_offset: int,
    later_hours: int,
    step: int,
) -> None:
    import tempfile

    train_end = T0 + train_days * DAY
    s = Settings(
        split_method="date",
        train_end=T0.date() + dt.timedelta(days=train_days - 1),
        validation_end=T0.date() + dt.timedelta(days=train_days + 2),
        embargo_days=1,
        min_bars_per_symbol=min_bars,
        max_missing_ratio=missing,
    )
    btc = bars_table(T0, [1.0] * (train_days * 24 + tail), interval=HOUR)
    # holes only inside the train period, never the first bar nor the last one: the lake's range (and so
    # the train period [T0, train_end)) is the same before and after the later data
    btc = btc.filter(pa.array([i not in holes or i >= train_days * 24 - 1 for i in range(btc.num_rows)]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_bars(root, "BTCUSDT", btc)
        eth_start = T0 + eth[0] * HOUR
        eth_bars = bars_table(eth_start, [2.0] * eth[1], interval=HOUR)
        eth_bars = eth_bars.filter(
            pa.array([t + HOUR <= train_end for t in eth_bars.column("ts").to_pylist()])
        )
        if eth_bars.num_rows:
            write_bars(root, "ETHUSDT", eth_bars)
        before = quality(root, s)
        assert {r[2] for r in before.values()} == {T0} and {r[3] for r in before.values()} == {train_end}
        later = bars_table(train_end + later_offset * HOUR, [3.0] * later_hours, interval=HOUR)
        later = later.filter(pa.array([i % step == 0 for i in range(later.num_rows)]))
        write_bars(root, who, later)
        after = quality(root, s)
    for symbol, row in before.items():
        assert after[symbol] == row, (symbol, row, after[symbol])
    for symbol in after.keys() - before.keys():  # a symbol first seen after the train period
        assert after[symbol][6] == 0 and after[symbol][12] is False, after[symbol]


def test_min_bars_of_a_period_comes_from_the_settings_alone(lake_root: Path) -> None:
    write_bars(lake_root, "BTCUSDT", bars_table(T0, [1.0] * (10 * 24), interval=HOUR))  # 10 days of 1h
    short = Settings(
        split_method="date", train_end=T0.date(), validation_end=T0.date() + 2 * DAY, embargo_days=1,
        min_bars_per_symbol=30,
    )  # fmt: skip
    train = quality(lake_root, short)["BTCUSDT"]
    assert (train[6], train[10], train[12]) == (24, 30, False)  # one day of 24 bars: short of 30
    assert train[13] == "only 24 bars in session in the train period (< min_bars_per_symbol 30)"
    long = Settings(
        split_method="date", train_end=T0.date() + 4 * DAY, validation_end=T0.date() + 6 * DAY,
        embargo_days=1, min_bars_per_symbol=30,
    )  # fmt: skip
    train = quality(lake_root, long)["BTCUSDT"]
    assert (train[6], train[10], train[12]) == (120, 30, True)  # five days: 120 bars >= 30
    assert str(train[13]).startswith("120 bars >= 30 and 0.00% of trading time missing")
    # by date, every period is held to min_bars_per_symbol itself, however long or short it is
    assert [quality(lake_root, long, p)["BTCUSDT"][10] for p in ("validation", "test")] == [30, 30]
    # by fraction, each period to its fraction of it, rounded up: 101 x (0.5, 0.3, 0.2) = 50.5, 30.3, 20.2
    frac = Settings(train_fraction=0.5, validation_fraction=0.3, embargo_days=1, min_bars_per_symbol=101)
    assert [quality(lake_root, frac, p)["BTCUSDT"][10] for p in ("train", "validation", "test")] == [
        51,
        31,
        21,
    ]
    # the defaults: 1000 x (0.7, 0.15, 0.15); 1 - 0.7 - 0.15 is 0.15000000000000002 in binary, still 150
    rows = [quality(lake_root, Settings(), p)["BTCUSDT"] for p in ("train", "validation", "test")]
    assert [r[10] for r in rows] == [700, 150, 150]
    assert rows[0][13] == (
        f"only {rows[0][6]} bars in session in the train period (< 700: min_bars_per_symbol 1000 x train_fraction 0.7)"
    )
    assert str(rows[2][13]).endswith("(< 150: min_bars_per_symbol 1000 x the test period's fraction 0.15)")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (  # the dates without method = "date": the default, fraction, would cut other periods
            "[splits]\ntrain_end = 2013-12-31\nvalidation_end = 2015-06-30\nembargo_days = 10\n",
            r"m\.toml, line 2: key 'splits\.train_end': train_end and validation_end are read only with "
            r'method = "date", and method = "fraction" \(the default\) would ignore them: set method = "date" '
            r"in \[splits\], or remove train_end and validation_end$",
        ),
        (
            '[splits]\nmethod = "fraction"\nvalidation_end = 2015-06-30\n',
            r"line 3: key 'splits\.validation_end': validation_end is read only with method = \"date\", and "
            r'method = "fraction" would ignore it',
        ),
        (  # and the fractions under method = "date"
            '[splits]\nmethod = "date"\ntrain_end = 2013-12-31\nvalidation_end = 2015-06-30\n'
            "train_fraction = 0.6\n",
            r"line 5: key 'splits\.train_fraction': train_fraction is read only with method = \"fraction\", "
            r'and method = "date" would ignore it: set method = "fraction" in \[splits\], or remove '
            r"train_fraction$",
        ),
        (  # fractions that do not sum below 1 under method = "date": it first said to make them sum below 1,
            # then, once they did, to remove them
            '[splits]\nmethod = "date"\ntrain_end = 2013-12-31\nvalidation_end = 2015-06-30\n'
            "train_fraction = 0.9\nvalidation_fraction = 0.2\n",
            r"line 5: key 'splits\.train_fraction': train_fraction and validation_fraction are read only with "
            r'method = "fraction", and method = "date" would ignore them',
        ),
    ],
)
def test_a_split_key_the_chosen_method_does_not_read_is_refused(
    tmp_path: Path, text: str, match: str
) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(cfg)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_the_train_command_refuses_dates_without_method_date_before_any_work(
    tmp_path: Path, filled_lake: Path
) -> None:
    """An existing lake (1m bars) is left as it was, no run recorded, no runs folder made (it checked a lake
    that did not exist, which no command makes before its settings are read)."""
    from click.testing import CliRunner

    from cli import cli

    cfg = tmp_path / "nomethod.toml"
    cfg.write_text(
        "[splits]\ntrain_end = 2013-12-31\nvalidation_end = 2015-06-30\n[train]\ninterval = '1m'\n"
    )
    before = _files(filled_lake)
    assert before, "the lake holds files to keep unchanged"
    runs = tmp_path / "runs"
    args = [
        "--lake",
        str(filled_lake),
        "--config",
        str(cfg),
        "train",
        "--no-evaluate",
        "--runs-dir",
        str(runs),
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert "nomethod.toml, line 2: key 'splits.train_end'" in r.output and 'set method = "date"' in r.output
    assert _files(filled_lake) == before and not runs.exists()


def test_a_split_key_given_to_the_environment_that_its_method_does_not_read_is_refused() -> None:
    from lake.config import settings_with_values

    with pytest.raises(
        ConfigError,
        match=r'^setting splits\.train_end: train_end is read only with method="date", and the method here, '
        r'"fraction", would ignore it: pass method="date" too, or leave out train_end$',  # (not "in [splits]")
    ):
        settings_with_values(Settings(), {"train_end": "2013-12-31"})
    s = Settings(split_method="date", train_end=dt.date(2013, 12, 31), validation_end=dt.date(2015, 6, 30))
    with pytest.raises(ConfigError, match=r"^setting splits\.validation_fraction: validation_fraction is"):
        settings_with_values(s, {"validation_fraction": 0.2})
    # (not "must sum below 1": the date method does not read them)
    with pytest.raises(ConfigError, match=r"^setting splits\.train_fraction: train_fraction and validation_"):
        settings_with_values(s, {"train_fraction": 0.9, "validation_fraction": 0.2})
    assert settings_with_values(s, {"method": "fraction", "train_end": None}).split_method == "fraction"
