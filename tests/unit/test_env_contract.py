"""The Gymnasium environment's contract with a user training their own agent: keywords checked like the
settings file, which settings it uses said, evaluation periods warned about, the info dict, no step past
the episode's end, small lakes said."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest

import lake
from lake.config import Settings
from lake.errors import ConfigError
from rl.baselines import buy_and_hold
from rl.env import EvaluationPeriodWarning, SmallDataWarning, TradingEnv, settings_with
from rl.episodes import load_period, market_data_from_arrays, session_ends
from rl.market import EnvConfig
from rl.vector import VecTradingEnv
from rl.walk import walk
from tests.conftest import bars_table


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"train_fraction": 1.5}, r"^setting splits\.train_fraction: must be between 0 and 1 \(exclusive\)$"),
        (
            {"train_fraction": 0.9},
            r"^setting splits\.validation_fraction: train_fraction \+ validation_fraction",
        ),
        ({"embargo_days": -3}, r"^setting splits\.embargo_days: must be at least 1 \(got -3\)"),
        ({"embargo_bars": 0}, r"^setting splits\.embargo_bars: must be at least 1 \(got 0\)$"),
        (
            {"embargo_bars": 5, "embargo_days": 2},
            r"^setting splits\.embargo_bars: set embargo_bars or embargo_days",
        ),
        ({"method": "date"}, r"^setting splits\.method: method = date needs train_end and validation_end$"),
        ({"method": "dates"}, r"^setting splits\.method: must be one of fraction, date, got 'dates'$"),
        (
            {"method": "date", "train_end": "2015-06-30", "validation_end": "2013-12-31"},
            r"^setting splits\.validation_end: validation_end 2013-12-31 must be after train_end 2015-06-30$",
        ),
        (
            {"train_end": "31/12/2013"},
            r"^setting splits\.train_end: expected an ISO date \(YYYY-MM-DD\), got",
        ),
        ({"min_bars_per_symbol": "abc"}, r"^setting data\.min_bars_per_symbol: expected int, got 'abc'$"),
        ({"min_bars_per_symbol": -1}, r"^setting data\.min_bars_per_symbol: must not be negative$"),
        ({"max_missing_ratio": 2}, r"^setting data\.max_missing_ratio: must be between 0 and 1$"),
        ({"session": "night"}, r"^setting data\.session: must be one of regular, extended, got 'night'$"),
    ],
)
def test_env_keywords_are_checked_like_the_settings_file(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_with(Settings(), keywords)


def test_env_keywords_take_iso_dates_and_the_one_embargo_given() -> None:
    s, _ = settings_with(
        Settings(), {"method": "date", "train_end": "2013-12-31", "validation_end": dt.date(2015, 6, 30)}
    )
    assert (s.train_end, s.validation_end) == (dt.date(2013, 12, 31), dt.date(2015, 6, 30))
    assert s.sql_settings()["train_end"] == "2013-12-31"  # what the views read (was an AttributeError)
    s, _ = settings_with(Settings(embargo_days=10), {"embargo_bars": 30})
    assert (s.embargo_bars, s.embargo_days) == (30, None)  # the keyword given is the embargo used
    s, _ = settings_with(Settings(), {"train_fraction": 0.6, "min_bars_per_symbol": 10})
    assert (s.train_fraction, s.min_bars_per_symbol) == (0.6, 10)


def test_a_bad_keyword_is_refused_by_gymnasium_make_before_any_read(tmp_path: Any) -> None:
    import gymnasium

    import rl  # noqa: F401

    with pytest.raises(ConfigError, match=r"^setting splits\.train_fraction"):
        gymnasium.make("marketlake/Trading-v0", lake=tmp_path / "none", train_fraction=1.5)


# --- where a session ends (hold_overnight = false): the calendar's close, never the data's end ------------

MIN = dt.timedelta(minutes=1)
SPLIT = Settings(split_method="date", train_end=dt.date(2024, 7, 10), validation_end=dt.date(2024, 7, 11),
                 embargo_days=None, min_bars_per_symbol=10)  # fmt: skip


def ny(day: int, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(2024, 7, day, hh, mm, tzinfo=ZoneInfo("America/New_York")).astimezone(dt.UTC)


def _stock_lake(root: Path) -> None:
    """AAPL: 2024-07-08 whole (09:30-16:00 New York), 07-09 until 12:50 (the data ends mid-session); MSFT:
    07-09 until 11:00 only."""
    from ingest.common import bar_period
    from ingest.sessions import land

    def write(symbol: str, ts: list[dt.datetime], seed: int) -> None:
        steps = np.random.default_rng(seed).normal(0, 1e-3, len(ts))
        t = bars_table(ts[0], [float(x) for x in 100 * np.exp(np.cumsum(steps))], asset_class="stock")
        t = t.set_column(t.schema.get_field_index("ts"), "ts", pa.array(ts, type=t.schema.field("ts").type))
        after = pa.array([x + MIN for x in ts], type=t.schema.field("ts").type)
        t = t.set_column(t.schema.get_field_index("available_at"), "available_at", after)
        with land(root) as w:
            for p in sorted({bar_period("1m", x) for x in ts}):
                mask = pa.array([bar_period("1m", x) == p for x in ts])
                part = {"source": "polygon", "interval": "1m", "symbol": symbol, "period": p}
                w.write(lake.BARS, part, t.filter(mask), mode="merge")

    write(
        "AAPL", [ny(8, 9, 30) + i * MIN for i in range(390)] + [ny(9, 9, 30) + i * MIN for i in range(200)], 1
    )
    write("MSFT", [ny(9, 9, 30) + i * MIN for i in range(90)], 2)


def test_the_end_of_the_loaded_data_is_not_a_session_end(lake_root: Path) -> None:
    _stock_lake(lake_root)
    d = load_period(lake_root, SPLIT, ["AAPL", "MSFT"], "1m", "train")
    last_rows = [int(np.flatnonzero(d.symbol_idx == i)[-1]) for i in range(2)]
    ends = [
        dt.datetime.fromtimestamp(int(d.available_at[r]) / 1e6, dt.UTC) for r in np.flatnonzero(d.session_end)
    ]
    assert ends == [ny(8, 16, 0)]  # 07-08's close; not AAPL's 12:50 nor MSFT's 11:00 (the data's end)
    assert not d.session_end[last_rows].any()
    assert d.at_close is not None and np.array_equal(d.session_end, d.at_close)
    # the environment: long to the data's end, no exit there (only at 07-08's close, costs paid)
    cfg = EnvConfig(window=8, hold_overnight=False, episode_length=300)
    env = TradingEnv(data=d, config=cfg)
    env.reset(options={"start": last_rows[0] - 300})
    for _ in range(300):
        _, _, _, truncated, info = env.step(1)
    assert truncated and info["row"] == last_rows[0]
    assert info["position"] == 1.0 and info["cost"] == 0.0 and info["turnover"] == 0.0
    # the evaluation walk: a symbol's last segment is marked to market at its end, not sold
    w = walk(d, cfg, buy_and_hold(cfg))
    for row in last_rows:
        at = int(np.flatnonzero(w.row == row)[0])
        assert (w.cost[at], w.turnover[at]) == (0.0, 0.0)
    at = int(np.flatnonzero(w.row == np.flatnonzero(d.session_end)[0])[0])
    assert w.turnover[at] == 1.0 and w.cost[at] > 0  # the session's close: sold, costs paid


def test_session_ends_a_day_early_in_the_data_and_never_at_a_symbols_last_row() -> None:
    # rows of two stocks and one crypto symbol, in (symbol, ts) order; at_close from the calendar
    sym = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    day = np.array([1, 1, 2, 2, 2, 3, 1, 2])
    at_close = np.array([False, False, False, False, True, False, False, False])
    out = session_ends(sym < 2, sym, day, at_close)
    # 1: day 1 ends early in the data (day 2 follows); 3: the symbol's data ends mid-session; 4: the close;
    # 5: the data's end; crypto never
    assert out.tolist() == [False, True, False, False, True, False, False, False]


# --- the info dict, the episode's end, the warnings -------------------------------------------------------


def _arrays(n: int, seed: int = 0, period: str = "train") -> Any:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.concatenate([[c[0]], c[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    return market_data_from_arrays(
        o, np.maximum(o, c), np.minimum(o, c), c, rng.normal(size=(n, 3)), period=period
    )


def test_info_holds_the_bar_its_equity_and_the_same_values_as_the_vector_env() -> None:
    d = _arrays(400)
    cfg = EnvConfig(window=8, episode_length=50, commission=0.002, allow_short=True)
    env = TradingEnv(data=d, config=cfg)
    start = int(env.starts[7])
    _, info = env.reset(options={"start": start})
    assert info == {
        "row": start, "ts": int(d.ts[start]), "available_at": int(d.available_at[start]), "symbol": "TEST",
        "position": 0.0, "equity": 1.0,
    }  # fmt: skip
    vec = VecTradingEnv(d, cfg, 1, seed=0)
    vec.reset(options={"starts": [start]})
    actions = np.random.default_rng(3).integers(0, 3, 50)
    total = 0.0
    for k, a in enumerate(actions):
        _, r, _, truncated, info = env.step(int(a))
        _, vr, _, vdone, vinfo = vec.step(np.array([a]))
        total += r
        row = start + k + 1  # the fill bar: its open filled the order, its close marks the equity
        assert (info["row"], info["ts"], info["available_at"]) == (
            row,
            int(d.ts[row]),
            int(d.available_at[row]),
        )
        assert info["equity"] == pytest.approx(np.exp(total), rel=1e-12)
        assert info["cost"] == vinfo["cost"][0] and r == vr[0] and truncated == vdone[0]
    assert truncated and info["episode_return"] == vinfo["episode_return"][0]
    assert info["episode_length"] == vinfo["episode_length"][0] == 50


def test_equity_is_buy_and_hold_marked_at_the_close_net_of_costs() -> None:
    d = _arrays(300, seed=5)
    cfg = EnvConfig(window=4, episode_length=30, commission=0.01, slippage_bps=0.0)
    env = TradingEnv(data=d, config=cfg)
    start = int(env.starts[0])
    env.reset(options={"start": start})
    for k in range(30):
        _, _, _, _, info = env.step(1)
        want = d.close[start + k + 1] / d.open[start + 1] * (1 - 0.01)
        assert info["equity"] == pytest.approx(want, rel=1e-9)


def test_stepping_past_the_episodes_end_is_refused_until_reset() -> None:
    from gymnasium.error import ResetNeeded
    from gymnasium.utils.env_checker import check_env

    d = _arrays(200)
    env = TradingEnv(data=d, config=EnvConfig(window=8, episode_length=5))
    with pytest.raises(ResetNeeded, match=r"call reset\(\) before step\(\)"):
        env.step(0)
    env.reset(seed=0)
    for _ in range(5):
        *_, truncated, _ = env.step(1)
    assert truncated
    for _ in range(2):  # (was: walked on into the next rows, the next symbol, then an IndexError)
        with pytest.raises(ResetNeeded, match=r"^the episode has ended: call reset\(\)$"):
            env.step(1)
    env.reset()
    env.step(1)
    check_env(TradingEnv(data=d, config=EnvConfig(window=8, episode_length=5)), skip_render_check=True)


def test_an_evaluation_period_warns_that_it_is_for_evaluation_only() -> None:
    cfg = EnvConfig(window=8, episode_length=20)
    for period in ("validation", "test"):
        with pytest.warns(
            EvaluationPeriodWarning, match=rf"on the {period} period: it is for evaluation only"
        ):
            TradingEnv(data=_arrays(400, period=period), config=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TradingEnv(data=_arrays(400), config=cfg)  # train: nothing to say
        warnings.filterwarnings("ignore", category=EvaluationPeriodWarning)  # silenced deliberately
        TradingEnv(data=_arrays(400, period="test"), config=cfg)


def test_a_period_too_small_for_the_episodes_asked_for_says_so() -> None:
    with pytest.warns(SmallDataWarning) as said:
        env = TradingEnv(data=_arrays(100), config=EnvConfig(window=8, episode_length=200))
    lines = [str(w.message) for w in said]
    assert env.episode_length == 92 and len(env.starts) == 1
    assert lines == [
        "episodes shortened to 92 steps from 200 (train.episode_length): the longest run of consecutive bars in "
        "the train period of TEST 1m allows no more after a window of 8 (add data, or lower window)",
        "only 1 distinct episode start(s) in the train period of TEST 1m for episodes of 92 steps: every "
        "episode is (nearly) the same one (add data, or lower episode_length)",
    ]
    with pytest.warns(SmallDataWarning, match="only 5 distinct episode start"):
        TradingEnv(data=_arrays(100), config=EnvConfig(window=8, episode_length=88))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TradingEnv(data=_arrays(100), config=EnvConfig(window=8, episode_length=83))  # 10 starts: fine


def test_the_settings_the_environment_reads_itself_are_named_once(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    import gymnasium

    import rl  # noqa: F401

    monkeypatch.setattr(sys.modules["lake.connect"], "_SAID_SETTINGS", set())  # (lake.connect: the function)
    _btc_day(lake_root)
    make: dict[str, Any] = dict(lake=lake_root, symbols=["BTCUSDT"], interval="1m", episode_length=100)
    for _ in range(2):
        gymnasium.make("marketlake/Trading-v0", **make)
    err = capsys.readouterr().err.splitlines()
    said = [x for x in err if x.startswith("marketlake/Trading-v0: ")]
    assert said == [
        f"marketlake/Trading-v0: the environment uses settings from the built-in defaults (no marketlake.toml "
        f"in {tmp_path}) (another file: MARKETLAKE_CONFIG=FILE, or settings=lake.config.load_settings(FILE))"
    ]
    # a file in the working folder is named (once); a file given as config= or settings given are not said
    (tmp_path / "marketlake.toml").write_text("[train]\nwindow = 20\n")
    assert _window(gymnasium.make("marketlake/Trading-v0", **make)) == 20
    assert f"uses settings from {tmp_path / 'marketlake.toml'} (another" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text("[train]\nwindow = 12\n")
    assert _window(gymnasium.make("marketlake/Trading-v0", config=str(other), **make)) == 12
    assert _window(gymnasium.make("marketlake/Trading-v0", settings=Settings(), **make)) == 32
    assert "marketlake/Trading-v0" not in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not both"):
        gymnasium.make("marketlake/Trading-v0", config=other, settings=Settings(), **make)


def _window(env: Any) -> int:
    return int(env.unwrapped.config.window)


def _btc_day(root: Path) -> None:
    from ingest.sessions import land

    closes = [float(x) for x in 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 1e-3, 1440)))]
    with land(root) as w:
        part = {"source": "binance", "interval": "1m", "symbol": "BTCUSDT", "period": "2024-03"}
        w.write(lake.BARS, part, bars_table(dt.datetime(2024, 3, 1, tzinfo=dt.UTC), closes))


def test_the_vector_env_takes_its_settings_and_warns_as_the_single_env_does(
    lake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """make_vec_env (gymnasium.make_vec's entry point) took no settings file as config=, did not name the
    settings it read, and said nothing on the test period or of a period too small for its episodes."""
    import sys

    import gymnasium

    import rl  # noqa: F401

    monkeypatch.setattr(sys.modules["lake.connect"], "_SAID_SETTINGS", set())
    _btc_day(lake_root)
    make: dict[str, Any] = dict(lake=lake_root, symbols=["BTCUSDT"], interval="1m", episode_length=100)
    other = tmp_path / "other.toml"
    other.write_text("[train]\nwindow = 12\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vec = gymnasium.make_vec("marketlake/Trading-v0", num_envs=4, config=str(other), **make)
    assert vec.unwrapped.config.window == 12  # type: ignore[attr-defined]
    gymnasium.make_vec("marketlake/Trading-v0", num_envs=4, **make)
    assert (
        "marketlake/Trading-v0: the environment uses settings from the built-in defaults"
        in capsys.readouterr().err
    )
    with pytest.warns(EvaluationPeriodWarning, match="on the test period: it is for evaluation only"):
        gymnasium.make_vec("marketlake/Trading-v0", num_envs=4, period="test", **make)
    with pytest.warns(SmallDataWarning, match="episodes shortened to"):
        gymnasium.make_vec("marketlake/Trading-v0", num_envs=4, **{**make, "episode_length": 5000})


def test_an_envconfig_and_trading_keywords_together_are_refused() -> None:
    """The keywords were ignored beside an EnvConfig: a policy written for window 30 got windows of 32."""
    from rl.env import env_settings

    with pytest.raises(
        ConfigError, match=r"as an EnvConfig \(config=\) or as keywords, not both: commission, window"
    ):
        env_settings(Settings(), EnvConfig(), {"window": 30, "commission": 0.01})
    _, cfg = env_settings(
        Settings(), EnvConfig(window=30), {"train_fraction": 0.5}
    )  # a [splits] key is no clash
    assert cfg.window == 30


@pytest.mark.parametrize("bad", [1.5, 1.0, -1, 2, "1", np.float64(1.0), np.array([1]), np.array(1.5), None])
def test_an_action_outside_the_action_space_is_refused_not_rounded(bad: Any) -> None:
    """(was: env.step(1.5) went long: int(1.5) is 1; a float is not a member of Discrete(2).)"""
    d = _arrays(200)
    env = TradingEnv(data=d, config=EnvConfig(window=8, episode_length=20))
    env.reset(seed=0)
    with pytest.raises(
        ValueError, match=r"is not in the action space Discrete\(2\): an action is a whole number 0\.\.1"
    ):
        env.step(bad)
    for good in (1, np.int64(1), np.int32(0), np.uint8(1), np.uint64(1), np.array(1), True):
        _, _, _, _, info = env.step(good)
        assert info["position"] == float(int(good))
    short = TradingEnv(data=d, config=EnvConfig(window=8, episode_length=20, allow_short=True))
    short.reset(seed=0)
    assert short.step(np.int16(2))[4]["position"] == -1.0
    with pytest.raises(ValueError, match=r"0\.\.2 \(0 flat, 1 long, 2 short\)"):
        short.step(2.0)


def test_the_vector_env_refuses_actions_that_are_not_whole_numbers_in_its_space() -> None:
    d = _arrays(300)
    vec = VecTradingEnv(d, EnvConfig(window=8, episode_length=20), 2, seed=0)
    vec.reset(seed=0)
    for bad in (np.array([1.5, 0.0]), np.array([1.0, 0.0]), [0.5, 1], np.array([True, False])):
        with pytest.raises(ValueError, match=r"actions must be whole numbers in 0\.\.1"):
            vec.step(bad)  # type: ignore[arg-type]  # (a list too)
    for bad in (np.array([0, 2]), np.array([-1, 0]), np.array([0, 2**63], np.uint64)):
        with pytest.raises(ValueError, match=r"actions must be in 0\.\.1"):
            vec.step(bad)
    for good in (np.array([1, 0]), np.array([1, 0], np.int32), np.array([0, 1], np.uint8), [1, 1]):
        vec.step(good)  # type: ignore[arg-type]  # (a list too)
    assert (vec.pos == 1.0).all()


def test_gymnasiums_vector_wrappers_give_fill_and_exit_prices_as_floats_with_a_mask() -> None:
    """A step without a fill (or a forced exit) leaves its price out of info, as Gymnasium expects of a key
    only some steps have: SyncVectorEnv then gives a float array and its `_fill_price` mask, whichever env
    filled (with None in info it gave an object array [None, 101.2] when the first env did not fill)."""
    import gymnasium

    d = _arrays(400)
    cfg = EnvConfig(window=8, episode_length=50)
    vec = gymnasium.vector.SyncVectorEnv([lambda: TradingEnv(data=d, config=cfg) for _ in range(2)])
    vec.reset(seed=0)
    # (actions, which env fills at the next open): none, env 1 only (as the first env has none), env 0 only
    for actions, filled in (([0, 0], [False, False]), ([0, 1], [False, True]), ([1, 1], [True, False])):
        _, _, _, _, info = vec.step(np.array(actions))
        if not any(filled):
            assert "fill_price" not in info, info
            continue
        assert info["fill_price"].dtype == np.float64, info
        assert list(info["_fill_price"]) == filled, info
        assert all(p > 0 for p, f in zip(info["fill_price"], filled, strict=True) if f), info
    assert "exit_price" not in info  # no forced exit (crypto-like arrays: no session end) in any env
    single = TradingEnv(data=d, config=cfg)
    single.reset(seed=0)
    _, _, _, _, step = single.step(0)
    assert "fill_price" not in step and "exit_price" not in step and step["cost"] == 0.0
