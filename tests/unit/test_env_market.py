"""Fills and costs (rl/market.py), through the single env, the vector env and walk: hand-computed cases."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import rl.episodes
from lake.config import Settings
from rl import ENV_ID
from rl.baselines import buy_and_hold, flat, random_policy
from rl.env import TradingEnv
from rl.episodes import MarketData, market_data_from_arrays
from rl.market import EnvConfig, Market, valid_starts
from rl.vector import VecTradingEnv
from rl.walk import walk

W = 3


def data_of(
    opens: Sequence[float],
    closes: Sequence[float],
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    **kw: object,
) -> MarketData:
    n = len(closes)
    o, c = np.array(opens, float), np.array(closes, float)
    h = np.array(highs, float) if highs is not None else np.maximum(o, c)
    lo = np.array(lows, float) if lows is not None else np.minimum(o, c)
    feats = np.linspace(-1, 1, n * 2).reshape(n, 2)
    return market_data_from_arrays(o, h, lo, c, feats, **kw)  # type: ignore[arg-type]


def random_data(n: int = 400, seed: int = 0, **kw: object) -> MarketData:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.concatenate([[c[0]], c[:-1]]) * np.exp(rng.normal(0, 0.0005, n))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.002, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.002, n))
    f = rng.normal(size=(n, 4))
    return market_data_from_arrays(o, h, lo, c, f, **kw)  # type: ignore[arg-type]


def env_of(data: MarketData, config: EnvConfig) -> TradingEnv:
    return TradingEnv(data=data, config=config)


def test_buying_costs_commission_and_bps_slippage_exactly() -> None:
    data = data_of([100, 100, 100, 101, 102, 103], [100, 100, 100, 102, 103, 104])
    cfg = EnvConfig(window=W, episode_length=2, commission=0.001, slippage="bps", slippage_bps=5.0)
    env = env_of(data, cfg)
    env.reset(options={"start": 2})
    _, r, _, _, info = env.step(1)  # decide at row 2, fill at row 3's open 101
    assert info["fill_price"] == pytest.approx(101 * (1 + 0.0005), rel=1e-15)
    assert info["cost"] == pytest.approx(0.001 + 0.0005, rel=1e-12)
    assert r == pytest.approx(math.log(1 - 0.0015) + math.log(102 / 101), rel=1e-12)
    _, r2, _, trunc, info2 = env.step(1)  # hold: close 102 -> open 102 -> close 103, no cost
    assert info2["cost"] == 0.0 and "fill_price" not in info2  # nothing filled at the open
    assert "exit_price" not in info and "exit_price" not in info2  # nor any forced exit
    assert r2 == pytest.approx(math.log(102 / 102) + math.log(103 / 102), rel=1e-12)
    assert trunc


def test_range_slippage_is_a_fraction_of_the_fill_bars_high_low() -> None:
    opens = [100, 100, 100, 101, 102, 103]
    closes = [100, 100, 100, 102, 103, 104]
    highs = [100, 100, 100, 105, 104, 104]
    lows = [100, 100, 100, 99, 101, 102]
    data = data_of(opens, closes, highs, lows)
    cfg = EnvConfig(
        window=W, episode_length=2, commission=0.002, slippage="range", slippage_range_fraction=0.25
    )
    env = env_of(data, cfg)
    env.reset(options={"start": 2})
    _, r, _, _, info = env.step(1)
    slip = 0.25 * (105 - 99)  # price units, against the buyer
    assert info["fill_price"] == pytest.approx(101 + slip, rel=1e-15)
    assert info["cost"] == pytest.approx(0.002 + slip / 101, rel=1e-12)
    assert r == pytest.approx(math.log(1 - 0.002 - slip / 101) + math.log(102 / 101), rel=1e-12)
    _, r2, _, _, info2 = env.step(0)  # sell at row 4's open 102 moved DOWN by 0.25 * (104 - 101)
    assert info2["fill_price"] == pytest.approx(102 - 0.75, rel=1e-15)
    assert r2 == pytest.approx(math.log(102 / 102) + math.log(1 - 0.002 - 0.75 / 102), rel=1e-12)


def test_the_fill_is_the_next_bars_open_never_the_decision_bars_close() -> None:
    base = random_data(60)
    cfg = EnvConfig(window=W, episode_length=5)
    t = 20

    def first_fill(d: MarketData) -> tuple[float, float]:
        env = env_of(d, cfg)
        env.reset(options={"start": t})
        _, r, _, _, info = env.step(1)
        return info["fill_price"], r

    fill0, _ = first_fill(base)
    changed_close = data_of(list(base.open), list(base.close))
    changed_close.close[t] *= 1.05  # the decision bar's close: already seen, must not be the fill
    changed_close.high[t] *= 1.05
    assert first_fill(changed_close)[0] == fill0
    changed_open = data_of(list(base.open), list(base.close))
    changed_open.open[t + 1] *= 1.01
    assert first_fill(changed_open)[0] == pytest.approx(fill0 * 1.01, rel=1e-12)
    assert fill0 == pytest.approx(base.open[t + 1] * (1 + 1e-4), rel=1e-15)
    # walk fills the same way
    w = walk(base, cfg, buy_and_hold(cfg))
    assert np.allclose(w.fill_price[w.turnover > 0], base.open[w.row[w.turnover > 0]] * (1 + 1e-4))


def test_a_round_trip_with_no_price_change_loses_exactly_the_costs() -> None:
    n = 12
    data = data_of([50.0] * n, [50.0] * n)
    cfg = EnvConfig(window=W, episode_length=4, commission=0.001, slippage_bps=2.0)
    env = env_of(data, cfg)
    env.reset(options={"start": 4})
    total = sum(env.step(a)[1] for a in (1, 1, 0, 0))
    assert total == pytest.approx(2 * math.log(1 - 0.001 - 0.0002), rel=1e-12)


def test_flat_earns_exactly_zero() -> None:
    data = random_data(300)
    cfg = EnvConfig(window=8, commission=0.01, slippage="range")
    w = walk(data, cfg, flat(cfg))
    assert len(w) == 300 - 8
    assert (w.log_return == 0.0).all() and (w.cost == 0.0).all() and (w.position == 0.0).all()
    venv = VecTradingEnv(data, cfg, 4, seed=1)
    venv.reset()
    for _ in range(50):
        _, r, _, _, _ = venv.step(np.zeros(4, np.int64))
        assert (r == 0.0).all()
    for bad in ([0, 1, 2, 0], [0, -1, 0, 0]):  # no short without allow_short; no wrap-around index
        with pytest.raises(ValueError, match="actions must be in 0..1"):
            venv.step(np.array(bad))


def test_buy_and_hold_earns_the_price_ratio_from_the_first_fill_less_one_commission() -> None:
    data = random_data(200)
    for cfg in (
        EnvConfig(window=W, episode_length=100, commission=0.001, slippage_bps=3.0),
        EnvConfig(window=W, episode_length=100, commission=0.002, slippage="range"),
    ):
        env = env_of(data, cfg)
        start = 40
        env.reset(options={"start": start})
        total = 0.0
        for _ in range(100):
            _, r, _, trunc, info = env.step(1)
            total += r
        assert trunc and info["episode_return"] == pytest.approx(total, rel=1e-12)
        m = Market(data, cfg)
        first, last = start + 1, start + 100
        want = math.log(data.close[last] / data.open[first]) + math.log(1 - cfg.commission - m.slip[first])
        assert total == pytest.approx(want, rel=1e-9, abs=1e-12)


def ruinous_data(n: int = 500, seed: int = 3) -> MarketData:
    """random_data with the open gapping up to 2.5 times the close before it every 20 bars: a short held
    over such a gap loses everything (the account is ruined)."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    jump = np.where(np.arange(n) % 20 == 19, 2.5, 1.0)
    c = c * np.cumprod(jump)
    o = np.concatenate([[c[0]], c[:-1]]) * np.exp(rng.normal(0, 0.0005, n)) * jump
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.002, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.002, n))
    return market_data_from_arrays(o, h, lo, c, rng.normal(size=(n, 4)))


@pytest.mark.parametrize("ruinous", [False, True])
def test_vector_and_single_env_give_identical_trajectories(ruinous: bool) -> None:
    """Step for step: rewards, ends (terminated at a ruin, truncated at the episode's length) and
    observations, the vector env's auto-reset followed by resetting the single env at the same start."""
    data = ruinous_data() if ruinous else random_data(500, seed=3)
    cfg = EnvConfig(window=5, episode_length=60, allow_short=True, slippage="range")
    starts = valid_starts(data, cfg)[[0, 17, 100, -1]]
    venv = VecTradingEnv(data, cfg, 4, seed=0)
    vobs, _ = venv.reset(options={"starts": starts})
    singles = [env_of(data, cfg) for _ in range(4)]
    sobs = [e.reset(options={"start": int(s)})[0] for e, s in zip(singles, starts, strict=True)]
    assert np.array_equal(vobs, np.stack(sobs))
    rng = np.random.default_rng(7)
    terminated = truncated = 0
    for step in range(180 if ruinous else 60):
        actions = rng.choice([0, 1, 2, 2, 2], size=4) if ruinous else rng.integers(0, 3, size=4)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(actions)
        for i, e in enumerate(singles):
            o, r, term, trunc, info = e.step(int(actions[i]))
            assert r == vr[i] and vr.dtype == np.float64, step  # the same float64 reward
            assert term == vterm[i] and trunc == vtrunc[i] and not (term and trunc), step
            if term or trunc:
                assert np.array_equal(vinfo["final_obs"][i], o)
                assert vinfo["episode_return"][i] == info["episode_return"]
                assert vinfo["episode_length"][i] == info["episode_length"]
                assert np.exp(vinfo["episode_return"][i]) == info["equity"], step
                # the vector env auto-reset: the single env starts where it did
                o, info = e.reset(options={"start": int(venv.row[i])})
            assert np.array_equal(vobs[i], o), step
            # equity and position, asked of the vector env, as the single env's info says them
            assert venv.equity[i] == info["equity"] and venv.position[i] == info["position"], step
        terminated += int(vterm.sum())
        truncated += int(vtrunc.sum())
    if ruinous:
        assert terminated >= 4 and truncated >= 1, (terminated, truncated)  # both kinds of end were compared
    else:
        assert vtrunc.all() and not np.isnan(vinfo["episode_return"]).any() and terminated == 0


def test_make_vec_builds_the_numpy_vector_env_reading_the_period_once_and_steps_as_the_single_env(
    spy_daily_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gymnasium.make_vec with the registered vector entry point: one read of the period (and one of train,
    for the statistics) for all the episodes, the same EnvConfig from the same keywords, and the same
    observations, rewards and ends as single envs given the same starts and actions (real SPY bars)."""
    reads: list[str] = []
    real = rl.episodes.load_period

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(rl.episodes, "load_period", counted)
    kw: dict[str, Any] = {
        "lake": spy_daily_lake,
        "symbols": ["SPY"],
        "interval": "1d",
        "period": "test",
        "settings": Settings(),
        "window": 10,
        "episode_length": 30,
        "commission": 0.002,
        "allow_short": True,
    }
    venv = gymnasium.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", **kw)
    assert reads == ["train", "test"]
    assert isinstance(venv, gymnasium.vector.VectorEnv)
    v = venv.unwrapped
    assert isinstance(v, VecTradingEnv)
    assert type(gymnasium.make_vec(ENV_ID, num_envs=2, **kw)) is VecTradingEnv  # the default mode
    singles = [cast(TradingEnv, gymnasium.make(ENV_ID, **kw).unwrapped) for _ in range(4)]
    assert (
        v.config
        == singles[0].config
        == EnvConfig(window=10, episode_length=30, commission=0.002, allow_short=True)
    )
    assert v.single_observation_space == singles[0].observation_space
    assert v.single_action_space == singles[0].action_space
    assert v.feature_names == singles[0].data.feature_names == list(rl.FEATURES)
    starts = singles[0].starts[[0, 7, len(singles[0].starts) // 2, -1]]
    vobs, _ = venv.reset(options={"starts": starts})
    sobs = [e.reset(options={"start": int(s)})[0] for e, s in zip(singles, starts, strict=True)]
    assert np.array_equal(vobs, np.stack(sobs))
    rng = np.random.default_rng(11)
    ended = 0
    for step in range(40):
        actions = rng.integers(0, 3, size=4)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(actions)
        for i, e in enumerate(singles):
            o, r, term, trunc, info = e.step(int(actions[i]))
            assert r == vr[i] and vr.dtype == np.float64, step  # the same float64 reward
            assert term == vterm[i] and trunc == vtrunc[i]
            if trunc:
                ended += 1
                assert np.array_equal(vinfo["final_obs"][i], o) and vinfo["_final_obs"][i]
                assert vinfo["final_info"]["episode_return"][i] == pytest.approx(
                    info["episode_return"], rel=1e-12
                )
                e.reset(options={"start": int(v.row[i])})  # the vector env's next episode
            else:
                assert np.array_equal(vobs[i], o)
    assert ended == 4


def test_the_vector_env_is_a_gymnasium_vector_env_that_records_episode_statistics() -> None:
    data = random_data(300, seed=4)
    cfg = EnvConfig(window=5, episode_length=20)
    venv = VecTradingEnv(data, cfg, 4, seed=0)
    assert isinstance(venv, gymnasium.vector.VectorEnv)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert venv.single_observation_space.shape == (cfg.window * 4 + 2,)
    assert venv.observation_space.shape == (4, cfg.window * 4 + 2)
    assert venv.single_action_space == gymnasium.spaces.Discrete(2)
    env = RecordEpisodeStatistics(venv)
    env.reset(seed=1)
    first = venv.row.copy()
    env.reset(seed=1)
    assert np.array_equal(venv.row, first) and venv.np_random is venv.rng  # seeded through reset
    episodes = 0
    for _ in range(45):
        _, _, _, trunc, info = env.step(np.ones(4, np.int64))
        if trunc.any():
            assert info["_episode"].tolist() == trunc.tolist() == info["_final_info"].tolist()
            assert (info["episode"]["l"][trunc] == 20).all()
            got = info["episode"]["r"][trunc]
            assert got == pytest.approx(info["final_info"]["episode_return"][trunc], rel=1e-5)
            assert got == pytest.approx(info["episode_return"][trunc], rel=1e-5)
            episodes += int(trunc.sum())
    assert episodes == 8 and env.episode_count == 8
    env.close()
    assert venv.closed


def test_the_vector_env_auto_resets_and_keeps_episodes_inside_segments() -> None:
    seg = np.repeat(np.arange(4), [50, 80, 29, 91])
    data = random_data(250, seed=5, segment_id=seg)
    cfg = EnvConfig(window=10, episode_length=20)
    venv = VecTradingEnv(data, cfg, 16, seed=2)
    venv.reset()
    ended = 0
    for _ in range(200):
        before = venv.row.copy()
        _, _, _, trunc, info = venv.step(np.ones(16, np.int64))
        landed = before + 1
        assert (data.segment_id[landed] == data.segment_id[before]).all()  # never across a segment break
        assert (data.segment_id[before - cfg.window + 1] == data.segment_id[before]).all()  # nor the window
        ended += int(trunc.sum())
        assert np.isnan(info["episode_return"][~trunc]).all()
    assert ended == 16 * 10
    assert venv.episode_length == 20
    # the segment of 29 rows holds no episode of 20 steps after a window of 10 (30 would: 20 steps); every other segment does
    segs_with_starts = set(data.segment_id[venv.starts].tolist())
    assert segs_with_starts == {0, 1, 3}


def test_stocks_not_held_overnight_are_closed_at_the_sessions_last_close_with_costs() -> None:
    n = 20
    day = np.repeat([0, 1], 10)
    session_end = np.zeros(n, bool)
    session_end[[9, 19]] = True
    ts = np.arange(n, dtype=np.int64) * 60_000_000 + day * 86_400_000_000
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = c * np.exp(rng.normal(0, 0.003, n))
    data = market_data_from_arrays(
        o, np.maximum(o, c), np.minimum(o, c), c, rng.normal(size=(n, 2)), ts=ts, session_end=session_end,
        asset_classes=["stock"],
    )  # fmt: skip
    cfg = EnvConfig(window=2, commission=0.001, slippage_bps=1.0, hold_overnight=False)
    w = walk(data, cfg, buy_and_hold(cfg))
    # decisions at rows 1..18; steps landing on row 9 and 19 close the position at that close
    by_row = dict(zip(w.row.tolist(), w.log_return.tolist(), strict=True))
    s = 1e-4
    day1 = sum(by_row[r] for r in range(2, 10))
    assert day1 == pytest.approx(math.log(c[9] / o[2]) + 2 * math.log(1 - 0.001 - s), rel=1e-9)
    # the overnight move (close 9 -> open 10) is not earned: flat overnight, bought again at row 10's open
    day2 = sum(by_row[r] for r in range(10, 20))
    assert day2 == pytest.approx(math.log(c[19] / o[10]) + 2 * math.log(1 - 0.001 - s), rel=1e-9)
    held = EnvConfig(window=2, commission=0.001, slippage_bps=1.0)
    w2 = walk(data, held, buy_and_hold(held))
    assert w2.log_return.sum() == pytest.approx(math.log(c[19] / o[2]) + math.log(1 - 0.001 - s), rel=1e-9)


def test_the_single_env_passes_the_gymnasium_checker() -> None:
    data = random_data(200)
    check_env(env_of(data, EnvConfig(window=4, episode_length=30)), skip_render_check=True)
    check_env(env_of(data, EnvConfig(window=4, episode_length=30, allow_short=True)), skip_render_check=True)
    # with ruin (terminated episodes) too
    check_env(
        env_of(ruinous_data(), EnvConfig(window=4, episode_length=30, allow_short=True)),
        skip_render_check=True,
    )


def test_random_policy_is_seeded_and_walk_is_deterministic() -> None:
    data = random_data(300)
    cfg = EnvConfig(window=4)
    a = walk(data, cfg, random_policy(cfg, seed=11))
    b = walk(data, cfg, random_policy(cfg, seed=11))
    c = walk(data, cfg, random_policy(cfg, seed=12))
    assert np.array_equal(a.log_return, b.log_return) and not np.array_equal(a.position, c.position)
    assert set(np.unique(a.position).tolist()) == {0.0, 1.0}


def test_env_config_from_settings_and_its_errors() -> None:
    cfg = EnvConfig.from_settings({"num_iterations": 5, "commission": 0, "window": 8, "allow_short": True})
    assert (cfg.commission, cfg.window, cfg.n_actions) == (0.0, 8, 3)
    assert cfg.position_of(np.array([0, 1, 2])).tolist() == [0.0, 1.0, -1.0]
    for bad in ({"slippage": "pct"}, {"window": 0}, {"commission": -1.0}, {"allow_short": "yes"}):
        with pytest.raises(ValueError, match="train."):
            EnvConfig.from_settings(bad)


def test_the_observation_holds_the_last_window_rows_up_to_the_decision_bar_and_nothing_later() -> None:
    data = random_data(200, seed=9, session_end=np.arange(200) % 50 == 49)
    cfg = EnvConfig(window=6, episode_length=10)
    f = data.features.shape[1]
    venv = VecTradingEnv(data, cfg, 2, seed=0)
    obs, _ = venv.reset(options={"starts": [20, 43]})
    for i, t in enumerate((20, 43)):
        assert np.array_equal(obs[i, : 6 * f], data.features[t - 5 : t + 1].ravel())
        assert obs[i, 6 * f] == 0.0  # flat at the start
    obs, *_ = venv.step(np.array([1, 0]))
    assert np.array_equal(obs[0, : 6 * f], data.features[16:22].ravel())
    assert obs[0, 6 * f] == 1.0 and obs[1, 6 * f] == 0.0  # the position now held
    for _ in range(5):
        obs, *_ = venv.step(np.array([1, 0]))
    assert venv.row[1] == 49 and obs[1, 6 * f + 1] == 1.0 and obs[0, 6 * f + 1] == 0.0  # session's last bar
    later = data.features.copy()
    later[27:] += 100.0  # rows after the decision bar 26 change: the observation at 26 does not
    other = market_data_from_arrays(data.open, data.high, data.low, data.close, later)
    v2 = VecTradingEnv(other, cfg, 1, seed=0)
    o2, _ = v2.reset(options={"starts": [26]})
    v1 = VecTradingEnv(data, cfg, 1, seed=0)
    o1, _ = v1.reset(options={"starts": [26]})
    assert np.array_equal(o1, o2)
