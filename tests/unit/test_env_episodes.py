"""The episode source (rl/episodes.py) on small lakes: periods, eligibility by period, what training reads,
segments, market hours, normalisation, and the registered Gymnasium id."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import gymnasium
import numpy as np
import pyarrow as pa
import pytest

import lake
import rl
from features.calendars import xnys_year
from features.splits import compute_splits, load_splits
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from lake.errors import MarketlakeError
from rl.baselines import buy_and_hold
from rl.episodes import STORE_READ, NormStats, load_period
from rl.market import EnvConfig
from rl.vector import VecTradingEnv
from rl.walk import walk
from tests.conftest import bars_table

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
MIN = dt.timedelta(minutes=1)


def walk_closes(n: int, seed: int = 0, start: float = 100.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in start * np.exp(np.cumsum(rng.normal(0, 0.001, n)))]


def write(root: Path, symbol: str, table: pa.Table, *, source: str = "binance", interval: str = "1m") -> None:
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period(interval, t) for t in ts}):
            mask = pa.array([bar_period(interval, t) == p for t in ts])
            part = {"source": source, "interval": interval, "symbol": symbol, "period": p}
            w.write(lake.BARS, part, table.filter(mask), mode="merge")


def us(t: dt.datetime) -> int:
    return int(round(t.timestamp() * 1_000_000))


def params_of(queries: list[str]) -> list[dict[str, object]]:
    out = []
    for q in queries:
        first = q.splitlines()[0]
        assert first.startswith("-- params: ")
        out.append(json.loads(first.removeprefix("-- params: ")))
    return out


@pytest.fixture
def one_day(lake_root: Path) -> Path:
    """One UTC day of 1m bars of one symbol: the smallest lake the defaults must work on."""
    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(1440)))
    return lake_root


def test_default_settings_work_on_one_day_of_one_minute_bars(one_day: Path) -> None:
    con = lake.connect(one_day, read_only=True, settings=Settings())
    periods = load_splits(con)
    con.close()
    assert all(not p.empty for p in periods)
    # the default embargo is 60 bars of the shortest interval (here one hour), the same in Python
    assert periods[1].start_at - periods[0].end_at == dt.timedelta(minutes=60)
    lo, hi = dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 3, 2, tzinfo=UTC)
    assert compute_splits(lo, hi, Settings(), bar_minutes=1) == periods
    train = load_period(one_day, Settings(), None, "1m", "train")
    assert train.symbols == ["BTCUSDT"] and len(train.starts) >= 1
    for period in ("validation", "test"):
        d = load_period(one_day, Settings(), None, "1m", period, norm=train.norm)
        assert d.n_rows > 0 and len(d.starts) >= 1, period
        env = VecTradingEnv(d, EnvConfig(), 2, seed=0)
        env.reset()
        env.step(np.ones(2, np.int64))


@pytest.mark.parametrize("stored", [False, True], ids=["live view", "feature store"])
def test_training_never_reads_a_validation_or_test_row(one_day: Path, stored: bool) -> None:
    if stored:  # the rows come from the store's files, in one query: the same bounds bind it
        from features import store

        store.refresh(one_day, Settings())
    con = lake.connect(one_day, read_only=True, settings=Settings())
    periods = {p.name: p for p in load_splits(con)}
    con.close()
    train = load_period(one_day, Settings(), None, "1m", "train")
    assert reads_store(train.queries) == stored and reads_live(train.queries) != stored
    # what it asked DuckDB for: only the train period's bounds, every bound bound as a parameter
    params = params_of(train.queries)
    reads = [p for p in params if "start_at" in p]
    assert reads, train.queries
    for p in reads:
        assert p["start_at"] == periods["train"].start_at.isoformat()
        assert p["end_at"] == periods["train"].end_at.isoformat()
    other = {periods[n].start_at.isoformat() for n in ("validation", "test")}
    other |= {periods[n].end_at.isoformat() for n in ("validation", "test")}
    assert not any(str(v) in other for p in params for v in p.values())
    assert all("'validation'" not in q and "'test'" not in q for q in train.queries)
    # what it got: rows whose whole life lies in the train period
    assert train.ts.min() >= us(periods["train"].start_at)
    assert train.available_at.max() <= us(periods["train"].end_at)
    # and validation reads its own bounds only
    val = load_period(one_day, Settings(), None, "1m", "validation", norm=train.norm)
    for p in params_of(val.queries):
        if "start_at" in p:
            assert (p["start_at"], p["end_at"]) == (
                periods["validation"].start_at.isoformat(),
                periods["validation"].end_at.isoformat(),
            )
    assert val.ts.min() >= us(periods["validation"].start_at)
    assert val.available_at.max() <= us(periods["validation"].end_at)


def test_normalisation_comes_from_the_train_period_and_round_trips(one_day: Path) -> None:
    train = load_period(one_day, Settings(), None, "1m", "train")
    with pytest.raises(MarketlakeError, match="train period's normalisation"):
        load_period(one_day, Settings(), None, "1m", "test")
    back = NormStats.from_json(train.norm.to_json())
    assert back.feature_names == train.norm.feature_names
    assert np.array_equal(back.mean, train.norm.mean) and np.array_equal(back.std, train.norm.std)
    test = load_period(one_day, Settings(), None, "1m", "test", norm=back)
    assert test.norm is back
    assert test.features.dtype == np.float32 and np.isfinite(test.features).all()
    assert abs(float(train.features[:, 0].mean())) < 1e-3  # standardised on train ...
    own = NormStats.compute(back.feature_names, test.features.astype(np.float64) * back.std + back.mean)
    assert not np.allclose(own.mean, back.mean)  # ... and test's own statistics are not what it used


def test_a_lake_with_nothing_eligible_is_one_clear_error(lake_root: Path) -> None:
    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(300)))
    write(lake_root, "ETHUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(200, 1)))
    with pytest.raises(MarketlakeError) as err:
        load_period(lake_root, Settings(), None, "1m", "train")
    text = str(err.value)
    assert "BTCUSDT" in text and "ETHUSDT" in text and "only" in text and "min_bars_per_symbol" in text
    with pytest.raises(MarketlakeError, match="no 1h bars"):
        load_period(lake_root, Settings(), None, "1h", "train")


def test_eligibility_is_judged_on_the_train_periods_bars_only(lake_root: Path) -> None:
    # three full days of 2024 BTCUSDT 1m bars, then ONE sparse day in 2025
    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 12, 20, tzinfo=UTC), walk_closes(3 * 1440)))
    sparse = bars_table(dt.datetime(2025, 1, 10, 12, tzinfo=UTC), walk_closes(20, 2))
    s = Settings(min_bars_per_symbol=1000)
    con = lake.connect(lake_root, settings=s)
    before = con.sql("SELECT split, eligible FROM symbol_quality_by_split ORDER BY split_no").fetchall()
    con.close()
    write(lake_root, "BTCUSDT", sparse)
    con = lake.connect(lake_root, read_only=True, settings=s)
    whole = con.sql("SELECT count(*) FROM eligible_symbols").fetchone()
    by_split = dict(con.sql("SELECT split, eligible FROM symbol_quality_by_split").fetchall())
    reasons = dict(con.sql("SELECT split, reason FROM symbol_quality_by_split").fetchall())
    train_rows = con.sql(
        "SELECT count(*) FROM eligible_symbols_by_split WHERE split = 'train' AND symbol = 'BTCUSDT'"
    ).fetchone()
    con.close()
    assert before == [("train", True), ("validation", True), ("test", True)]
    assert whole == (0,)  # the whole-history view (contract unchanged) drops it: 2025's sparse day counts
    assert by_split["train"] is True and train_rows == (1,), reasons["train"]
    assert by_split["test"] is False and "missing" in reasons["test"]
    data = load_period(lake_root, s, None, "1m", "train")
    assert data.symbols == ["BTCUSDT"] and data.n_rows > 1000


def test_episodes_never_span_a_gap(lake_root: Path) -> None:
    closes = walk_closes(1440, 4)
    table = bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), closes)
    keep = pa.array([not (500 <= i < 530) for i in range(1440)])  # a 30-minute hole (> max_gap_minutes 15)
    write(lake_root, "BTCUSDT", table.filter(keep))
    s = Settings(train_fraction=0.9, validation_fraction=0.05, embargo_bars=10, min_bars_per_symbol=100)
    d = load_period(lake_root, s, None, "1m", "train")
    cfg = EnvConfig(window=16, episode_length=120)
    gap_after = dt.datetime(2024, 3, 1, tzinfo=UTC) + 530 * MIN
    first_after = int(np.searchsorted(d.ts, us(gap_after)))
    assert d.ts[first_after] == us(gap_after + 60 * MIN)  # warm-up after the gap is excluded
    assert d.segment_id[first_after] == d.segment_id[first_after - 1] + 1
    env = VecTradingEnv(d, cfg, 32, seed=3)
    assert len(env.starts) > 0
    for s0 in env.starts:
        seg = d.segment_id[s0 - cfg.window + 1 : s0 + env.episode_length + 1]
        assert (seg == seg[0]).all()
    env.reset()
    for _ in range(400):
        before = env.row.copy()
        env.step(np.ones(32, np.int64))
        assert (d.segment_id[before + 1] == d.segment_id[before]).all()


def ny(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)


def test_no_stock_fill_on_a_weekend_a_holiday_or_outside_the_session(lake_root: Path) -> None:
    # 2024-07-03 early close, 07-04 holiday, 07-05 Friday, 07-06 Saturday, 07-08 Monday, 07-09 Tuesday: a
    # vendor row on the holiday, the Saturday and in the pre-market must never be traded
    ts: list[dt.datetime] = []
    for day in (3, 4, 5, 6, 8, 9):
        ts += [ny(2024, 7, day, 8, 0) + i * MIN for i in range(90)]  # pre-market
        n = 210 if day == 3 else 390
        ts += [ny(2024, 7, day, 9, 30) + i * MIN for i in range(n)]
    closes = walk_closes(len(ts), 6)
    t = bars_table(ts[0], closes, asset_class="stock")
    t = t.set_column(t.schema.get_field_index("ts"), "ts", pa.array(ts, type=t.schema.field("ts").type))
    t = t.set_column(
        t.schema.get_field_index("available_at"),
        "available_at",
        pa.array([x + MIN for x in ts], type=t.schema.field("ts").type),
    )
    write(lake_root, "AAPL", t, source="polygon")
    s = Settings(split_method="date", train_end=dt.date(2024, 7, 8), validation_end=dt.date(2024, 7, 8),
                 embargo_days=None)  # fmt: skip
    sessions = {r["day"]: r for r in xnys_year(2024).to_pylist()}
    d = load_period(lake_root, s, ["AAPL"], "1m", "train")
    cfg = EnvConfig(window=8)
    w = walk(d, cfg, buy_and_hold(cfg))
    assert len(w) > 0
    for x in np.concatenate([d.ts, w.ts]):
        t0 = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=int(x))
        sess = sessions.get(t0.astimezone(NY).date())
        assert sess is not None, t0  # never a weekend or a holiday
        assert sess["open_at"] <= t0 < sess["close_at"], t0  # never outside the regular session
    assert d.session_end.sum() == len(set(d.day.tolist()))  # one last bar per session
    days = {(dt.datetime(1970, 1, 1) + dt.timedelta(days=int(x))).date() for x in d.day}
    assert days == {dt.date(2024, 7, 3), dt.date(2024, 7, 5), dt.date(2024, 7, 8)}
    env = VecTradingEnv(d, cfg, 2, seed=0)
    assert env.episode_length == 390  # one full session by default


def test_the_gymnasium_id_is_registered_on_import(one_day: Path) -> None:
    assert rl.ENV_ID == "marketlake/Trading-v0"
    env = gymnasium.make(
        "marketlake/Trading-v0", lake=one_day, symbols=["BTCUSDT"], interval="1m", period="validation",
        window=16, commission=0.002,
    )  # fmt: skip
    assert env.action_space == gymnasium.spaces.Discrete(2)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    _, r, term, trunc, info = env.step(1)
    assert math.isfinite(r) and info["cost"] == pytest.approx(0.002 + 1e-4)
    with pytest.raises(ValueError, match="unknown setting"):
        gymnasium.make("marketlake/Trading-v0", lake=one_day, windw=3)


def test_given_symbols_are_used_and_an_ineligible_one_is_reported(lake_root: Path) -> None:
    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(1440)))
    write(lake_root, "ETHUSDT", bars_table(dt.datetime(2024, 3, 1, 20, tzinfo=UTC), walk_closes(240, 1)))
    said: list[str] = []
    d = load_period(lake_root, Settings(), ["ETHUSDT", "BTCUSDT"], "1m", "train", say=said.append)
    assert d.symbols == ["BTCUSDT", "ETHUSDT"]  # read in sorted order, whatever order they are given in
    assert any("warning: ETHUSDT" in m and "no bar in the train period" in m for m in said), said
    assert not any("warning: BTCUSDT" in m for m in said)
    with pytest.raises(MarketlakeError, match="holds no 1m row of ETHUSDT"):
        load_period(lake_root, Settings(), ["ETHUSDT"], "1m", "train")
    with pytest.raises(MarketlakeError, match="SOLUSDT: no 1m bars"):
        load_period(lake_root, Settings(), ["SOLUSDT"], "1m", "train")


def test_a_period_prefetched_in_the_background_is_the_same_data(one_day: Path) -> None:
    from rl.episodes import prefetch_period

    train = load_period(one_day, Settings(), None, "1m", "train")
    fut = prefetch_period(one_day, Settings(), ["BTCUSDT"], "1m", "validation", train.norm)
    direct = load_period(one_day, Settings(), ["BTCUSDT"], "1m", "validation", train.norm)
    got = fut.result(timeout=120)
    for name in ("features", "open", "close", "ts", "segment_id", "starts"):
        assert np.array_equal(getattr(got, name), getattr(direct, name)), name
    bad = prefetch_period(
        one_day, Settings(), None, "1m", "test"
    )  # no train statistics: the error comes back
    with pytest.raises(MarketlakeError, match="normalisation"):
        bad.result(timeout=120)


@pytest.mark.parametrize("stored", [False, True], ids=["live view", "feature store"])
def test_a_period_read_in_chunks_is_the_period(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch, stored: bool
) -> None:
    import rl.episodes as episodes

    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(1440)))
    write(lake_root, "ETHUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(1440, 8, 3000.0)))
    if stored:  # one query for both symbols, streamed in record batches
        from features import store

        store.refresh(lake_root, Settings())
    whole = load_period(lake_root, Settings(), None, "1m", "train")
    assert reads_store(whole.queries) == stored
    monkeypatch.setattr(episodes, "BATCH_ROWS", 200)  # small record batches, so a symbol spans chunks
    chunks = list(episodes.iter_period(lake_root, Settings(), None, "1m", "train", max_rows=500))
    assert len(chunks) >= 4 and all(c.n_rows <= 500 for c in chunks)
    assert np.array_equal(np.concatenate([c.ts for c in chunks]), whole.ts)
    assert np.array_equal(np.concatenate([c.symbol_idx for c in chunks]), whole.symbol_idx)
    assert np.allclose(chunks[0].norm.mean, whole.norm.mean) and np.allclose(
        chunks[0].norm.std, whole.norm.std
    )
    assert np.allclose(np.concatenate([c.features for c in chunks]), whole.features, atol=1e-5)
    for c in chunks:  # no episode crosses a chunk: starts are within each chunk's own rows
        assert c.starts.max(initial=-1) < c.n_rows
    with_norm = list(
        episodes.iter_period(lake_root, Settings(), None, "1m", "test", whole.norm, max_rows=10**6)
    )
    test = load_period(lake_root, Settings(), None, "1m", "test", whole.norm)
    assert len(with_norm) == 1 and np.array_equal(with_norm[0].features, test.features)


def reads_live(queries: list[str]) -> bool:
    return any("FROM features_priced f" in q for q in queries)


def reads_store(queries: list[str]) -> bool:
    return any(STORE_READ in q for q in queries)


def test_episodes_read_the_stored_features_when_fresh_and_the_live_view_otherwise(one_day: Path) -> None:
    from features import store

    live = load_period(one_day, Settings(), None, "1m", "train")
    assert reads_live(live.queries) and not reads_store(live.queries), live.queries
    store.refresh(one_day, Settings())
    stored = load_period(one_day, Settings(), None, "1m", "train")
    assert reads_store(stored.queries) and not reads_live(stored.queries), stored.queries
    # one query for every symbol, over the store's own files only
    (files,) = [p["files"] for p in params_of(stored.queries) if "files" in p]
    assert isinstance(files, list) and files
    assert all(Path(str(f)).is_relative_to(one_day / "datasets" / "features") for f in files)
    # the same rows, the same prices, the same normalised inputs, whichever relation served them
    assert np.array_equal(stored.ts, live.ts)
    for name in (
        "open",
        "high",
        "low",
        "close",
        "available_at",
        "segment_id",
        "day",
        "session_end",
        "starts",
    ):
        assert np.array_equal(getattr(stored, name), getattr(live, name)), name
    np.testing.assert_allclose(stored.features, live.features, rtol=0, atol=1e-5)
    # one more bar makes the store stale: the live view serves again, never a stale row
    write(one_day, "BTCUSDT", bars_table(dt.datetime(2024, 3, 2, tzinfo=UTC), walk_closes(5, seed=3)))
    again = load_period(one_day, Settings(), None, "1m", "train")
    assert reads_live(again.queries) and not reads_store(again.queries), again.queries


def test_the_observed_at_close_flag_comes_from_the_calendar_not_from_later_rows(lake_root: Path) -> None:
    # 2024-07-08 ends five minutes early in the data (no bars 15:55-16:00), 07-09 is whole: the last loaded
    # bar of 07-08 is where an overnight position is closed, but the agent is not told it is the close
    ts: list[dt.datetime] = []
    for day, n in ((8, 385), (9, 390)):
        ts += [ny(2024, 7, day, 9, 30) + i * MIN for i in range(n)]
    t = bars_table(ts[0], walk_closes(len(ts), 7), asset_class="stock")
    t = t.set_column(t.schema.get_field_index("ts"), "ts", pa.array(ts, type=t.schema.field("ts").type))
    t = t.set_column(
        t.schema.get_field_index("available_at"),
        "available_at",
        pa.array([x + MIN for x in ts], type=t.schema.field("ts").type),
    )
    write(lake_root, "AAPL", t, source="polygon")
    s = Settings(split_method="date", train_end=dt.date(2024, 7, 10), validation_end=dt.date(2024, 7, 11),
                 embargo_days=None, max_gap_minutes=60)  # fmt: skip
    d = load_period(lake_root, s, ["AAPL"], "1m", "train")
    assert d.at_close is not None
    last_of_day = np.flatnonzero(d.session_end)
    assert len(last_of_day) == 2
    closes_at = [
        dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=int(d.available_at[i]))
        for i in last_of_day
    ]
    assert closes_at == [ny(2024, 7, 8, 15, 55), ny(2024, 7, 9, 16, 0)]
    assert d.at_close[last_of_day].tolist() == [False, True]  # 15:55 is not the close; 16:00 is
    assert int(d.at_close.sum()) == 1


def _setup_reference(
    con: object, symbols: list[str] | None, interval: str, period: str, warn: bool, say: list[str]
) -> tuple[object, ...]:
    """load_period's set-up as one statement each: the period's bounds (period_bounds.sql), the asset
    classes of given symbols (asset_classes.sql), the train eligibility (train_eligible.sql)."""
    from rl import episodes

    q: list[str] = []
    start, end = episodes._period_bounds(con, period, q)
    if symbols is None:
        return _order(start, end, episodes._eligible(con, interval, q))
    classes = episodes._asset_classes(con, symbols, interval, q)
    missing = [s for s in symbols if s not in classes]
    if missing:
        raise MarketlakeError(f"symbol(s) {', '.join(missing)}: no {interval} bars in the lake")
    if len(set(symbols)) != len(symbols):
        raise MarketlakeError(f"symbols given twice: {symbols}")
    if warn:
        for s, _, ok, reason in episodes._train_eligibility(con, interval, q):
            if s in symbols and not ok:
                say.append(f"warning: {s} {interval} is not eligible in the train period: {reason}")
    return _order(start, end, [(s, classes[s]) for s in sorted(symbols)])


def _order(start: object, end: object, chosen: list[tuple[str, str]]) -> tuple[object, ...]:
    """The symbols in their order, and the (symbol, class) pairs as a set: the statements order their rows
    by symbol only, so two classes of one symbol come in either order."""
    return start, end, [s for s, _ in chosen], sorted(chosen)


@pytest.mark.parametrize("two_classes", [False, True], ids=["one class a symbol", "a symbol of two classes"])
def test_the_setup_in_fewer_statements_equals_one_statement_each(lake_root: Path, two_classes: bool) -> None:
    """load_period's set-up (rl.episodes._setup and _select: the train period's bounds, eligibility and
    asset classes read in one statement) gives the bounds, symbols, classes, warnings and errors that the
    separate statements give, for every period, given or chosen symbols, and with or without warnings."""
    from rl import episodes

    write(lake_root, "BTCUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(1440)))
    write(lake_root, "ETHUSDT", bars_table(dt.datetime(2024, 3, 1, 20, tzinfo=UTC), walk_closes(240, 1)))
    write(lake_root, "SOLUSDT", bars_table(dt.datetime(2024, 3, 1, tzinfo=UTC), walk_closes(1300, 2)))
    if two_classes:  # another source calls SOLUSDT a stock: two asset classes for one symbol
        sol = bars_table(dt.datetime(2024, 3, 1, 22, tzinfo=UTC), walk_closes(30, 3), asset_class="stock")
        write(lake_root, "SOLUSDT", sol, source="csv")
    con = lake.connect(lake_root, read_only=True, settings=Settings())
    cases = [None, ["BTCUSDT"], ["ETHUSDT", "BTCUSDT"], ["SOLUSDT"], ["XRPUSDT"], ["BTCUSDT", "BTCUSDT"]]
    checked = 0
    for interval in ("1m", "1h"):
        for period in episodes.PERIODS:
            for symbols in cases:
                for warn in (True, False):
                    ours_said: list[str] = []
                    ref_said: list[str] = []
                    try:
                        want: object = _setup_reference(con, symbols, interval, period, warn, ref_said)
                    except MarketlakeError as exc:
                        want = str(exc)
                    try:
                        q: list[str] = []
                        start, end, rows = episodes._setup(con, symbols, interval, period, warn, q)
                        chosen = episodes._select(con, symbols, interval, q, ours_said.append, warn, rows)
                        got: object = _order(start, end, chosen)
                    except MarketlakeError as exc:
                        got = str(exc)
                    case = (interval, period, symbols, warn)
                    assert got == want and ours_said == ref_said, case
                    if period == "train" and (symbols is None or warn) and not isinstance(got, str):
                        assert len(q) == 1 + (two_classes and symbols is not None), (case, q)
                    checked += not isinstance(got, str)
    con.close()
    assert checked > 20


def test_the_background_reader_stops_when_its_consumer_does() -> None:
    """Closing the stream early stops the reading thread where it is (it does not read on to the end), and
    leaves no thread behind; an error in the thread reaches the consumer naming what was read."""
    import threading

    from rl.episodes import _background

    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    stream = _background(items(), "the test's items")
    assert next(stream) == 0
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "marketlake-episodes"]
    assert len(produced) < 1000, "the thread read on after its consumer stopped"

    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with pytest.raises(MarketlakeError, match="the test's items failed: disk gone"):
        list(_background(failing(), "the test's items"))
    assert not [t for t in threading.enumerate() if t.name == "marketlake-episodes"]


def test_env_keywords_take_the_names_of_the_config_file() -> None:
    """[splits] method is a keyword by its file name (and by its Settings name); learner settings are not
    the environment's, and the error lists the names a user can write."""
    from rl.env import settings_with

    s, cfg = settings_with(
        Settings(), {"method": "date", "train_end": "2024-01-31", "validation_end": "2024-02-29", "window": 8}
    )
    assert (s.split_method, s.train_end, cfg.window) == ("date", dt.date(2024, 1, 31), 8)  # ISO text: a date
    dates = {"train_end": dt.date(2024, 1, 31), "validation_end": dt.date(2024, 2, 29)}
    assert settings_with(Settings(), {"split_method": "date", **dates})[0].split_method == "date"
    with pytest.raises(ValueError, match=r"unknown setting\(s\) num_iterations") as err:
        settings_with(Settings(), {"num_iterations": 3})
    assert "method" in str(err.value).split("[splits]: ")[1].split(", ")
    assert "split_method" not in str(err.value)
