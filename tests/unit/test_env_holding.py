"""Hold semantics of rl/market.py: a side held keeps its shares (its weight drifts with the price), only a
change of side trades (from the drifted weight), and the evaluation walk closes a position at a segment's end
that a data gap broke. Hand-computed cases through the single env, the vector env and the walk, and a
property test against a brute-force cash-and-shares account."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl.baselines import buy_and_hold
from rl.env import TradingEnv
from rl.episodes import MarketData, market_data_from_arrays
from rl.market import FLOOR, EnvConfig, Market, valid_starts
from rl.vector import VecTradingEnv
from rl.walk import Walk, walk

LONG, SHORT, FLAT = 1, 2, 0


def data_of(
    opens: Sequence[float] | np.ndarray, closes: Sequence[float] | np.ndarray, **kw: Any
) -> MarketData:
    o, c = np.array(opens, float), np.array(closes, float)
    h = np.array(kw.pop("highs"), float) if "highs" in kw else np.maximum(o, c)
    lo = np.array(kw.pop("lows"), float) if "lows" in kw else np.minimum(o, c)
    n = len(c)
    return market_data_from_arrays(o, h, lo, c, np.linspace(-1, 1, 2 * n).reshape(n, 2), **kw)


def random_data(n: int, seed: int, **kw: Any) -> MarketData:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    o = np.concatenate([[c[0]], c[:-1]]) * np.exp(rng.normal(0, 0.001, n))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.002, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.002, n))
    return market_data_from_arrays(o, h, lo, c, rng.normal(size=(n, 3)), **kw)


def run_single(data: MarketData, cfg: EnvConfig, start: int, actions: Sequence[int]) -> list[dict[str, Any]]:
    env = TradingEnv(data=data, config=cfg)
    env.reset(options={"start": start})
    out = []
    for a in actions:
        _, r, _, _, info = env.step(a)
        out.append({"reward": r, **info})
    return out


def prices(steps: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """The steps' `fill_price` or `exit_price` (left out of info where there was none) as an array, NaN there
    (a None would be a NaN too: the env never gives one)."""
    for s in steps:
        assert s.get(key, math.inf) is not None, s  # left out, never None (Gymnasium's vector wrappers)
    return np.array([s.get(key, math.nan) for s in steps], dtype=float)


def run_vector(data: MarketData, cfg: EnvConfig, start: int, actions: Sequence[int]) -> np.ndarray:
    venv = VecTradingEnv(data, cfg, 1)
    venv.reset(options={"starts": [start]})
    return np.array([venv.step(np.array([a]))[1][0] for a in actions])


def constant(action: int) -> Callable[[np.ndarray], np.ndarray]:
    """A policy taking the same action at every bar."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.full(len(obs), action, dtype=np.int64)

    return policy


def scripted(actions: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """A policy for a one-segment walk: the given actions in order (then flat)."""
    it: Iterator[int] = iter(list(actions))

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.array([next(it, FLAT) for _ in range(len(obs))], dtype=np.int64)

    return policy


# prices: rows 0..6; a decision at row 2 fills at row 3's open
OPENS = [100, 100, 100, 100, 92, 80, 84]
CLOSES = [100, 100, 100, 95, 85, 82, 88]
K = 0.001 + 0.0005  # commission + 5 bp


def test_a_short_held_over_several_bars_earns_one_minus_the_price_ratio_less_the_entry_costs() -> None:
    data = data_of(OPENS, CLOSES)
    cfg = EnvConfig(window=3, episode_length=4, commission=0.001, slippage_bps=5.0, allow_short=True)
    steps = run_single(data, cfg, 2, [SHORT] * 4)
    # entered at row 3's open 100 (sold at 100 x (1 - 5 bp)), held through rows 3..6: shares never change
    assert steps[0]["fill_price"] == pytest.approx(100 * (1 - 0.0005), rel=1e-15)
    assert steps[0]["cost"] == pytest.approx(K, rel=1e-12) and steps[0]["turnover"] == 1.0
    for s in steps[1:]:
        assert s["cost"] == 0.0 and s["turnover"] == 0.0 and s["position"] == -1.0
    equity = np.exp(np.cumsum([s["reward"] for s in steps]))
    want = [(1 - K) * (2 - c / 100) for c in CLOSES[3:]]  # 1 - P / P_entry on what the entry left
    np.testing.assert_allclose(equity, want, rtol=1e-12)
    # the price fell 12%: the short earns 12% less the entry costs (an inverse fund rebalanced every bar
    # would have earned more, for free)
    assert equity[-1] == pytest.approx((1 - K) * 1.12, rel=1e-12)
    np.testing.assert_array_equal(run_vector(data, cfg, 2, [SHORT] * 4), [s["reward"] for s in steps])
    w = walk(data, cfg, scripted([SHORT] * 4))
    np.testing.assert_array_equal(w.log_return, [s["reward"] for s in steps])


def test_a_short_held_while_the_price_rises_loses_the_price_rise() -> None:
    closes = [100, 100, 100, 110, 130, 150, 160]
    opens = [100, 100, 100, 100, 120, 140, 155]
    data = data_of(opens, closes)
    cfg = EnvConfig(window=3, episode_length=4, commission=0.0, slippage_bps=0.0, allow_short=True)
    steps = run_single(data, cfg, 2, [SHORT] * 4)
    assert math.exp(sum(s["reward"] for s in steps)) == pytest.approx(2 - 160 / 100, rel=1e-12)


def test_short_to_long_trades_from_the_drifted_weight() -> None:
    data = data_of(OPENS, CLOSES)
    cfg = EnvConfig(window=3, episode_length=4, commission=0.001, slippage_bps=5.0, allow_short=True)
    steps = run_single(data, cfg, 2, [SHORT, SHORT, LONG, LONG])
    # at row 5's open 80 the short entered at 100 is worth 1.2 (less costs) and its weight is
    # -0.8 / (2 - 0.8) = -2/3: going long buys back 2/3 and buys 1 more, 5/3 of equity
    w = -0.8 / 1.2
    assert steps[2]["turnover"] == pytest.approx(1 - w, rel=1e-12)
    assert steps[2]["cost"] == pytest.approx((1 - w) * K, rel=1e-12)
    assert steps[2]["fill_price"] == pytest.approx(80 * (1 + 0.0005), rel=1e-15)
    assert steps[2]["position"] == 1.0 and steps[3]["cost"] == 0.0
    total = sum(s["reward"] for s in steps)
    want = (1 - K) * (2 - 80 / 100) * (1 - (1 - w) * K) * 88 / 80
    assert total == pytest.approx(math.log(want), rel=1e-12)
    np.testing.assert_array_equal(
        run_vector(data, cfg, 2, [SHORT, SHORT, LONG, LONG]), [s["reward"] for s in steps]
    )
    wk = walk(data, cfg, scripted([SHORT, SHORT, LONG, LONG]))
    np.testing.assert_array_equal(wk.log_return, [s["reward"] for s in steps])
    np.testing.assert_array_equal(wk.turnover, [s["turnover"] for s in steps])


def test_a_drifted_short_is_closed_at_the_sessions_last_close_at_its_drifted_weight() -> None:
    session_end = np.array([False, False, False, False, True, False, False])
    data = data_of(OPENS, CLOSES, session_end=session_end, asset_classes=["stock"])
    cfg = EnvConfig(
        window=3, episode_length=3, commission=0.001, slippage_bps=5.0, allow_short=True, hold_overnight=False
    )
    steps = run_single(data, cfg, 2, [SHORT, SHORT, SHORT])
    # row 4 ends the session: the short entered at 100 is bought back at the close 85, weight -0.85 / 1.15
    w = 0.85 / 1.15
    assert steps[1]["turnover"] == pytest.approx(w, rel=1e-12)
    assert steps[1]["cost"] == pytest.approx(w * K, rel=1e-12)
    assert steps[1]["position"] == 0.0
    equity_at_exit = math.exp(steps[0]["reward"] + steps[1]["reward"])
    assert equity_at_exit == pytest.approx((1 - K) * 1.15 * (1 - w * K), rel=1e-12)
    # flat overnight; sold short again at row 5's open 80
    assert steps[2]["turnover"] == 1.0 and steps[2]["fill_price"] == pytest.approx(80 * (1 - 0.0005))
    assert steps[2]["reward"] == pytest.approx(math.log((1 - K) * (2 - 82 / 80)), rel=1e-12)
    wk = walk(data, cfg, scripted([SHORT, SHORT, SHORT]))
    np.testing.assert_array_equal(wk.log_return[:3], [s["reward"] for s in steps])


def test_a_forced_exit_says_its_own_price_and_the_fill_price_only_an_open_fill() -> None:
    """A step whose only trade is the forced close at the session's end: `fill_price` was that bar's open
    (nothing filled there) and the exit's price was nowhere. Now fill_price is only in info (NaN in a walk)
    when something filled at the open, and exit_price is the close moved against the trader (only when there
    was a forced exit), in the single env's info and in both walks alike."""
    session_end = np.array([False, False, False, False, True, False, False])
    highs = [100, 100, 100, 101, 93, 83, 89]
    lows = [100, 100, 100, 94, 84, 79, 83]
    data = data_of(OPENS, CLOSES, session_end=session_end, asset_classes=["stock"], highs=highs, lows=lows)
    nan = float("nan")
    for short in (False, True):
        side = SHORT if short else LONG
        sign = -1 if short else 1
        cfg = EnvConfig(window=3, episode_length=3, slippage_bps=5.0, allow_short=short, hold_overnight=False)
        steps = run_single(data, cfg, 2, [side, side, side])
        # entered at row 3's open 100; row 4 ends the session: only the exit at its close 85; again at 80
        want_fill = [100 * (1 + sign * 0.0005), nan, 80 * (1 + sign * 0.0005)]
        want_exit = [nan, 85 * (1 - sign * 0.0005), nan]
        np.testing.assert_allclose(prices(steps, "fill_price"), want_fill, rtol=1e-15)
        np.testing.assert_allclose(prices(steps, "exit_price"), want_exit, rtol=1e-15)
        # an entry at the session's last bar's open closed at its close: one step, both prices
        both = run_single(data, cfg, 3, [side])[0]
        assert both["fill_price"] == pytest.approx(92 * (1 + sign * 0.0005), rel=1e-15)
        assert both["exit_price"] == pytest.approx(85 * (1 - sign * 0.0005), rel=1e-15)
        for rowwise in (False, True):  # always `side`, decisions from row 2 as the env's above
            wk = walk(data, cfg, constant(side), rowwise=rowwise)
            np.testing.assert_array_equal(wk.fill_price[:3], prices(steps, "fill_price"))
            np.testing.assert_array_equal(wk.exit_price[:3], prices(steps, "exit_price"))
    # range slippage: the exit sells at the close less the fraction of the bar's high-low range
    cfg = EnvConfig(
        window=3, episode_length=2, slippage="range", slippage_range_fraction=0.25, hold_overnight=False
    )
    steps = run_single(data, cfg, 2, [LONG, LONG])
    assert steps[0]["fill_price"] == pytest.approx(100 + 0.25 * (101 - 94), rel=1e-15)
    assert "fill_price" not in steps[1]
    assert steps[1]["exit_price"] == pytest.approx(85 - 0.25 * (93 - 84), rel=1e-15)


RUIN_OPENS = [100, 100, 100, 100, 210, 220, 230]
RUIN_CLOSES = [100, 100, 100, 150, 215, 225, 235]
"""A short entered at row 3's open 100 is wiped out by row 4's open 210 (more than twice its entry)."""


def test_a_short_that_loses_everything_ruins_the_account_and_the_episode_terminates_there() -> None:
    data = data_of(RUIN_OPENS, RUIN_CLOSES)
    cfg = EnvConfig(window=3, episode_length=4, commission=0.001, slippage_bps=5.0, allow_short=True)
    env = TradingEnv(data=data, config=cfg)
    env.reset(options={"start": 2})
    _, r0, term0, trunc0, info0 = env.step(SHORT)
    assert (term0, trunc0, info0["position"]) == (False, False, -1.0)
    obs, r1, term1, trunc1, info1 = env.step(SHORT)
    # at row 4's open 210 the short entered at 100 has lost more than everything: equity floored (the
    # reward is the log change down to the floor), the position closed, the account ruined: a true terminal
    # state two steps into an episode of four, not a truncation
    assert r1 == pytest.approx(math.log(FLOOR), rel=1e-12)
    assert term1 is True and trunc1 is False
    assert info1["position"] == 0.0 and info1["cost"] == 0.0 and info1["turnover"] == 0.0 and obs[-2] == 0.0
    assert info1["episode_length"] == 2 and info1["episode_return"] == r0 + r1
    assert info1["equity"] == pytest.approx(math.exp(r0) * FLOOR, rel=1e-9)
    with pytest.raises(gymnasium.error.ResetNeeded):  # nothing after the ruin: no re-entry from the floor
        env.step(SHORT)
    # the vector env: the same step ends the same episode, terminated, and auto-resets it; its neighbour (long,
    # not ruined) runs on
    venv = VecTradingEnv(data, cfg, 2)
    first, _ = venv.reset(options={"starts": [2, 2]})
    first = first.copy()
    vr, vterm, vtrunc = [], [], []
    for _ in range(2):
        vobs, r, term, trunc, vinfo = venv.step(np.array([SHORT, LONG]))
        vr.append(r.copy())
        vterm.append(term.tolist())
        vtrunc.append(trunc.tolist())
    assert [x[0] for x in vr] == [r0, r1]
    assert vterm == [[False, False], [True, False]] and vtrunc == [[False, False], [False, False]]
    assert vinfo["_final_obs"].tolist() == [True, False]
    np.testing.assert_array_equal(vinfo["final_obs"][0], obs)
    assert vinfo["episode_return"][0] == r0 + r1 and vinfo["episode_length"][0] == 2
    assert math.isnan(vinfo["episode_return"][1])
    np.testing.assert_array_equal(vobs[0], first[0])  # the new episode's first observation, flat
    assert venv.k.tolist() == [0, 2] and venv.pos.tolist() == [0.0, 1.0]


def test_a_walk_keeps_a_ruined_symbol_flat_for_the_rest_of_the_period() -> None:
    data = data_of(RUIN_OPENS, RUIN_CLOSES)
    cfg = EnvConfig(window=3, commission=0.001, slippage_bps=5.0, allow_short=True)
    single = run_single(data, EnvConfig(**{**cfg.to_dict(), "episode_length": 2}), 2, [SHORT, SHORT])
    nan = float("nan")
    for rowwise in (False, True):  # always short: decisions at rows 2..5, landing on rows 3..6
        wk = walk(data, cfg, constant(SHORT), rowwise=rowwise)
        assert wk.row.tolist() == [3, 4, 5, 6]
        # the short is held over rows 3 and 4 (wiped out over row 4), then the account is closed: no new short
        # from the floor, no return, no cost, no fill
        assert wk.position.tolist() == [-1.0, -1.0, 0.0, 0.0]
        np.testing.assert_array_equal(wk.log_return, [single[0]["reward"], single[1]["reward"], 0.0, 0.0])
        assert wk.cost[2:].tolist() == [0.0, 0.0] and wk.turnover[2:].tolist() == [0.0, 0.0]
        assert wk.cost_prev[2:].tolist() == [0.0, 0.0]
        np.testing.assert_array_equal(wk.fill_price, [100 * (1 - 0.0005), nan, nan, nan])
        assert wk.ruined.tolist() == [False, True, False, False]
        assert wk.ruins() == {"TEST": int(data.ts[4])}


def test_a_ruin_closes_the_symbols_later_segments_too_and_leaves_other_symbols_trading() -> None:
    # symbol A: a segment with the wipe-out (rows 0..6), a data gap, a calm segment (rows 7..13); symbol B calm
    calm_o = [100, 100, 100, 100, 101, 102, 101]
    calm_c = [100, 100, 100, 101, 102, 101, 100]
    opens, closes = RUIN_OPENS + calm_o + calm_o, RUIN_CLOSES + calm_c + calm_c
    seg = np.repeat([0, 1, 2], 7)
    sym = np.repeat([0, 0, 1], 7)
    data = data_of(opens, closes, segment_id=seg, symbol_idx=sym, symbols=["A", "B"])
    cfg = EnvConfig(window=3, commission=0.001, slippage_bps=5.0, allow_short=True)
    alone = walk(data_of(calm_o, calm_c, symbols=["B"]), cfg, constant(SHORT))  # B walked on its own
    for rowwise in (False, True):
        wk = walk(data, cfg, constant(SHORT), rowwise=rowwise)
        a = wk.symbol_idx == 0
        later = a & (wk.row > 4)  # A after its ruin: the rest of its first segment and all of its second
        assert later.sum() == 6 and wk.segment_id[later].tolist() == [0, 0, 1, 1, 1, 1]
        assert (wk.position[later] == 0).all() and (wk.log_return[later] == 0).all()
        assert (wk.cost[later] == 0).all() and (wk.turnover[later] == 0).all()
        assert np.isnan(wk.fill_price[later]).all() and np.isnan(wk.exit_price[later]).all()
        assert wk.ruins() == {"A": int(data.ts[4])} and int(wk.ruined.sum()) == 1
        b = wk.symbol_idx == 1
        for name in ("position", "log_return", "cost", "turnover", "fill_price"):
            np.testing.assert_array_equal(getattr(wk, name)[b], getattr(alone, name), err_msg=name)
        assert alone.turnover[0] == 1.0 and not alone.ruined.any()


def test_single_vector_and_walk_give_identical_trajectories_with_shorts() -> None:
    n = 400
    data = random_data(n, 4, session_end=np.arange(n) % 50 == 49, asset_classes=["stock"])
    for overnight in (True, False):
        cfg = EnvConfig(
            window=5, episode_length=n - 5, allow_short=True, slippage="range", hold_overnight=overnight
        )
        start = int(valid_starts(data, cfg)[0])
        actions = np.random.default_rng(1).choice([0, 1, 2, 2, 2], size=n - 5, p=None).tolist()
        single = run_single(data, cfg, start, actions)
        rewards = np.array([s["reward"] for s in single])
        venv = VecTradingEnv(data, cfg, 2)
        venv.reset(options={"starts": [start, start]})
        vec = np.array([venv.step(np.array([a, a]))[1] for a in actions])
        assert vec.dtype == np.float64 and (vec[:, 0] == rewards).all() and (vec[:, 1] == vec[:, 0]).all()
        wk = walk(data, cfg, scripted(actions))
        np.testing.assert_array_equal(wk.log_return, rewards)
        np.testing.assert_array_equal(wk.cost, [s["cost"] for s in single])
        np.testing.assert_array_equal(wk.turnover, [s["turnover"] for s in single])
        np.testing.assert_array_equal(wk.fill_price, prices(single, "fill_price"))
        np.testing.assert_array_equal(wk.exit_price, prices(single, "exit_price"))


def test_long_and_flat_give_the_same_numbers_with_shorting_allowed_or_not() -> None:
    n = 300
    data = random_data(n, 7, session_end=np.arange(n) % 40 == 39, asset_classes=["stock"])
    actions = np.random.default_rng(2).integers(0, 2, size=(120, 8))
    for overnight in (True, False):
        out = []
        for short in (False, True):
            cfg = EnvConfig(window=4, episode_length=120, allow_short=short, hold_overnight=overnight)
            venv = VecTradingEnv(data, cfg, 8, seed=3)
            venv.reset()
            out.append(np.array([venv.step(a)[1] for a in actions]))
            wk = walk(data, cfg, buy_and_hold(cfg))
            out.append(wk.log_return)
        np.testing.assert_array_equal(out[0], out[2])
        np.testing.assert_array_equal(out[1], out[3])


def brute_force(
    data: MarketData, cfg: EnvConfig, start: int, actions: Sequence[int]
) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """A cash-and-shares account, independent of rl/market.py: equity at each step's close, the traded
    notional of each step as a fraction of the equity where it trades, the prices it traded at (the
    open's fill, the forced exit's at the close; NaN where none), and the money each step's costs took (the
    account starts with 1). An order changing the side is sized at the
    fill bar's open (target: the side x equity), pays commission + slippage on its traded notional, and the
    new shares are the side x the equity left; keeping the side trades nothing; a position that must be
    closed at a close is sold there, paying commission + slippage on its value."""
    cash, shares, side = 1.0, 0.0, 0
    equity, traded, fills, exits, paid = [], [], [], [], []
    for k, a in enumerate(actions):
        n = start + k + 1
        o, c, h, lo = (float(x[n]) for x in (data.open, data.close, data.high, data.low))
        if cfg.slippage == "bps":
            slip = exit_slip = cfg.slippage_bps / 1e4
        else:
            slip, exit_slip = (
                cfg.slippage_range_fraction * (h - lo) / o,
                cfg.slippage_range_fraction * (h - lo) / c,
            )
        q = [0, 1, -1][a]
        e_open = cash + shares * o
        turnover, fill, exit_price, money = 0.0, math.nan, math.nan, 0.0
        if q != side:
            fill = o * (1 + slip) if q * e_open > shares * o else o * (1 - slip)  # a buy pays up, a sale less
            notional = abs(q * e_open - shares * o)
            money += notional * (cfg.commission + slip)
            e_left = e_open - notional * (cfg.commission + slip)
            shares = q * e_left / o
            cash = e_left - shares * o
            side = q
            turnover += notional / e_open
        if not cfg.hold_overnight and data.session_end[n] and side != 0:
            value = shares * c
            exit_price = c * (1 - exit_slip) if shares > 0 else c * (1 + exit_slip)
            turnover += abs(value) / (cash + value)
            money += abs(value) * (cfg.commission + exit_slip)
            cash += value - abs(value) * (cfg.commission + exit_slip)
            shares, side = 0.0, 0
        equity.append(cash + shares * c)
        traded.append(turnover)
        fills.append(fill)
        exits.append(exit_price)
        paid.append(money)
    return equity, traded, fills, exits, paid


@settings(max_examples=150, deadline=None)
@given(
    moves=st.lists(
        st.tuples(st.floats(-0.025, 0.025), st.floats(-0.025, 0.025), st.floats(0, 0.01), st.booleans()),
        min_size=2,
        max_size=13,
    ),
    actions=st.lists(st.integers(0, 2), min_size=12, max_size=12),
    short=st.booleans(),
    overnight=st.booleans(),
    range_slippage=st.booleans(),
    commission=st.floats(0, 0.01),
    bps=st.floats(0, 20),
)
def test_equity_equals_a_brute_force_cash_and_shares_account(
    moves: list[tuple[float, float, float, bool]],
    actions: list[int],
    short: bool,
    overnight: bool,
    range_slippage: bool,
    commission: float,
    bps: float,
) -> None:
    closes, opens, highs, lows, ends = [], [], [], [], []
    prev = 100.0
    for gap, bar, spread, end in moves:
        o = prev * (1 + gap)
        c = o * (1 + bar)
        opens.append(o)
        closes.append(c)
        highs.append(max(o, c) * (1 + spread))
        lows.append(min(o, c) * (1 - spread))
        ends.append(end)
        prev = c
    data = data_of(opens, closes, highs=highs, lows=lows, session_end=np.array(ends), asset_classes=["stock"])
    steps = len(moves) - 1
    cfg = EnvConfig(
        window=1,
        episode_length=steps,
        commission=commission,
        slippage="range" if range_slippage else "bps",
        slippage_bps=bps,
        slippage_range_fraction=0.3,
        allow_short=short,
        hold_overnight=overnight,
    )
    acts = [a % cfg.n_actions for a in actions[:steps]]
    want, traded, fills, exits, paid = brute_force(data, cfg, 0, acts)
    single = run_single(data, cfg, 0, acts)
    got = np.exp(np.cumsum([s["reward"] for s in single]))
    np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose([s["turnover"] for s in single], traded, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(prices(single, "fill_price"), fills, rtol=1e-12)
    np.testing.assert_allclose(prices(single, "exit_price"), exits, rtol=1e-12)
    wk: Walk = walk(data, cfg, scripted(acts))
    np.testing.assert_array_equal(wk.log_return, [s["reward"] for s in single])
    np.testing.assert_array_equal(wk.fill_price, prices(single, "fill_price"))
    np.testing.assert_array_equal(wk.exit_price, prices(single, "exit_price"))
    # the money the costs took: the step's costs as a fraction of the equity before it x that equity
    before = np.exp(np.cumsum(wk.log_return) - wk.log_return)
    np.testing.assert_allclose(wk.cost_prev * before, paid, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(run_vector(data, cfg, 0, acts), [s["reward"] for s in single])


def test_the_walk_closes_a_position_at_a_segments_end_with_its_exit_costs() -> None:
    # one symbol, a data gap between rows 9 and 10: two segments; buy-and-hold walked over both
    rng = np.random.default_rng(3)
    n = 20
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = c * np.exp(rng.normal(0, 0.003, n))
    seg = np.repeat([0, 1], 10)
    data = data_of(o, c, segment_id=seg)
    cfg = EnvConfig(window=2, commission=0.001, slippage_bps=2.0)
    k = 0.001 + 0.0002
    for rowwise in (False, True):
        w = walk(data, cfg, buy_and_hold(cfg), rowwise=rowwise)
        # segment 0: decisions at rows 1..8, landing on rows 2..9; segment 1: decisions 11..18, landing 12..19
        assert w.row.tolist() == [*range(2, 10), *range(12, 20)]
        at = {int(r): j for j, r in enumerate(w.row)}
        assert w.turnover[at[2]] == 1.0 and w.cost[at[2]] == pytest.approx(k)  # bought at row 2's open
        assert w.turnover[at[9]] == 1.0 and w.cost[at[9]] == pytest.approx(k)  # sold at row 9's close
        assert w.turnover[at[12]] == 1.0 and w.cost[at[12]] == pytest.approx(k)  # bought again at 12's open
        assert w.turnover[at[19]] == 0.0 and w.cost[at[19]] == 0.0  # the end of the period: marked, not sold
        assert int(np.count_nonzero(w.turnover)) == 3
        want = math.log(c[9] / o[2]) + 2 * math.log(1 - k) + math.log(c[19] / o[12]) + math.log(1 - k)
        assert w.log_return.sum() == pytest.approx(want, rel=1e-12)
    # two symbols, one segment each: each one's end is the end of its period, marked, not sold
    two = data_of(o, c, segment_id=seg, symbol_idx=seg, symbols=["A", "B"])
    w2 = walk(two, cfg, buy_and_hold(cfg))
    assert int(np.count_nonzero(w2.turnover)) == 2
    # the training envs' episodes still end marked to market (an episode may end on a segment's last row)
    assert not Market(data, cfg).forced_exit.any()


def test_the_walk_closes_a_position_before_a_segment_too_short_to_walk() -> None:
    # rows 0..9 one segment, rows 10..11 a second one too short for a window of 3 (no step in it): the
    # position is still closed at row 9's close, the data having a gap there
    rng = np.random.default_rng(4)
    n = 12
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = c * np.exp(rng.normal(0, 0.003, n))
    data = data_of(o, c, segment_id=np.repeat([0, 1], [10, 2]))
    cfg = EnvConfig(window=3, commission=0.001, slippage_bps=2.0)
    for rowwise in (False, True):
        w = walk(data, cfg, buy_and_hold(cfg), rowwise=rowwise)
        assert w.row.tolist() == list(range(3, 10))
        assert w.turnover[-1] == 1.0 and w.cost[-1] == pytest.approx(0.001 + 0.0002)


@pytest.mark.parametrize("allow_short", [False, True], ids=["long-only", "with-shorts"])
def test_a_long_on_prices_that_fall_to_almost_nothing_is_ruined_whether_or_not_shorts_are_allowed(
    allow_short: bool,
) -> None:
    # bad data (a price from 100 to 1e-11): the long is wiped out, floored and terminated alike, however
    # the action space is set (long-only once let the equity fall below the floor and went on)
    opens = [100.0, 100.0, 100.0, 100.0, 1e-11, 1e-11, 100.0]
    data = data_of(opens, opens)
    env = TradingEnv(data=data, config=EnvConfig(window=2, episode_length=3, allow_short=allow_short))
    env.reset(options={"start": 2})
    _, r0, term0, _, _ = env.step(LONG)
    _, r1, term1, trunc1, info1 = env.step(LONG)
    assert not term0 and r1 == pytest.approx(math.log(FLOOR), rel=1e-12)
    assert (term1, trunc1, info1["position"]) == (True, False, 0.0)
