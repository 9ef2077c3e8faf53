"""rl/walk.py's fast path for row-by-row policies (a policy table over positions, then a scan) against the
step-by-step walk: the same steps and the same numbers, bit for bit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rl.episodes import MarketData, market_data_from_arrays
from rl.market import FLOOR, EnvConfig
from rl.ppo import Agent, greedy_policy
from rl.walk import Walk, walk


def random_data(n: int, seed: int, segments: int, symbols: int, jumps: float = 0.0) -> MarketData:
    """jumps: the chance of each bar's open gapping up to 2.5 times the close before it (a short held over
    such a gap is wiped out: its account ruined)."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.concatenate([[c[0]], c[:-1]]) * np.exp(rng.normal(0, 0.0005, n))
    if jumps:
        jump = np.where(rng.random(n) < jumps, 2.5, 1.0)
        c, o = c * np.cumprod(jump), o * np.cumprod(jump)
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.002, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.002, n))
    cuts = (
        np.sort(rng.choice(np.arange(1, n), size=segments - 1, replace=False))
        if segments > 1
        else np.zeros(0)
    )
    segment_id = np.zeros(n, np.int64)
    for cut in cuts:
        segment_id[cut:] += 1
    symbol_idx = (segment_id % symbols).astype(np.int32)
    session_end = rng.random(n) < 0.05
    return market_data_from_arrays(
        o,
        h,
        lo,
        c,
        rng.normal(size=(n, 3)),
        segment_id=segment_id,
        symbol_idx=symbol_idx,
        symbols=[f"S{i}" for i in range(symbols)],
        session_end=session_end,
        asset_classes=["stock"] * symbols,
    )


def rowwise_rule(column: int, threshold: float, n_actions: int) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic row-by-row policy that also looks at the position held (the obs's last-but-one)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        score = obs[:, column] + 0.7 * obs[:, -2]
        a = (score > threshold).astype(np.int64)
        if n_actions == 3:
            a[score < -threshold] = 2
        return a

    return policy


def assert_same(a: Walk, b: Walk) -> None:
    assert a.symbols == b.symbols
    for f in dataclasses.fields(Walk):
        if f.name != "symbols":
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    n=st.integers(0, 300),
    segments=st.integers(1, 6),
    window=st.integers(1, 5),
    short=st.booleans(),
    overnight=st.booleans(),
    range_slippage=st.booleans(),
    threshold=st.floats(-1.0, 1.0),
)
def test_the_rowwise_walk_equals_the_step_by_step_walk(
    seed: int,
    n: int,
    segments: int,
    window: int,
    short: bool,
    overnight: bool,
    range_slippage: bool,
    threshold: float,
) -> None:
    if n < segments:
        n = segments
    data = random_data(n, seed, segments, symbols=2)
    cfg = EnvConfig(
        window=window,
        allow_short=short,
        hold_overnight=overnight,
        slippage="range" if range_slippage else "bps",
    )
    policy = rowwise_rule(column=(window - 1) * 3, threshold=threshold, n_actions=cfg.n_actions)
    assert_same(walk(data, cfg, policy, rowwise=True), walk(data, cfg, policy, rowwise=False))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    n=st.integers(20, 300),
    segments=st.integers(1, 6),
    symbols=st.integers(1, 3),
    overnight=st.booleans(),
    threshold=st.floats(-1.0, 1.0),
)
def test_the_rowwise_walk_equals_the_step_by_step_walk_through_ruins(
    seed: int, n: int, segments: int, symbols: int, overnight: bool, threshold: float
) -> None:
    """Shorts wiped out by gaps: each symbol's account closed after its first ruin, the same on both paths
    (the fast path's scan knows nothing of ruin), and nothing but flat steps after a ruin."""
    data = random_data(n, seed, segments, symbols=symbols, jumps=0.05)
    cfg = EnvConfig(window=2, allow_short=True, hold_overnight=overnight)
    policy = rowwise_rule(column=3, threshold=threshold, n_actions=3)
    fast, slow = walk(data, cfg, policy, rowwise=True), walk(data, cfg, policy, rowwise=False)
    assert_same(fast, slow)
    for i in range(symbols):
        mine = np.flatnonzero(slow.symbol_idx == i)
        hit = mine[slow.ruined[mine]]
        assert len(hit) <= 1
        if len(hit):
            after = mine[mine > hit[0]]
            # a short held into the ruinous step (it may have been ordered out of it: wiped out by the gap
            # before the open's fill, nothing traded there)
            j = hit[0]
            assert slow.position[j] == -1.0 or (j > mine[0] and slow.position[j - 1] == -1.0)
            assert slow.log_return[j] == np.log(FLOOR)
            for name in ("position", "log_return", "cost", "turnover", "cost_prev"):
                assert (getattr(slow, name)[after] == 0).all(), name


def test_the_greedy_policy_walks_the_fast_way_with_the_same_result() -> None:
    data = random_data(500, 3, 4, symbols=2)
    cfg = EnvConfig(window=4, allow_short=True, hold_overnight=False)
    torch.manual_seed(0)
    agent = Agent(4 * 3 + 2, 3, (8,), (4, 3), 2)
    for p in agent.parameters():
        p.data.mul_(20.0)  # a decisive policy: no near-ties that a different batch could round apart
    policy = greedy_policy(agent, torch.device("cpu"))
    assert policy.rowwise
    fast, slow = walk(data, cfg, policy), walk(data, cfg, policy, rowwise=False)
    assert len(fast) > 0 and len(np.unique(fast.position)) == 3
    assert_same(fast, slow)


def test_bad_actions_raise_on_both_paths() -> None:
    data = random_data(50, 0, 1, symbols=1)
    cfg = EnvConfig(window=2)

    def bad(obs: np.ndarray) -> np.ndarray:
        return np.full(len(obs), 5)

    for rowwise in (True, False):
        with pytest.raises(ValueError, match="out of range"):
            walk(data, cfg, bad, rowwise=rowwise)
