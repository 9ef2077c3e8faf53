"""Run a policy deterministically over EVERY valid bar of a period: the evaluation's input.

Every segment of every symbol is walked from its first decision bar (the first row with `window` rows of
history) to its second-to-last row (the last decision needs a next bar to fill at); all segments advance
together, one policy call per step for the whole batch. Each segment starts flat. The fills, costs and
rewards are rl/market.py's, as in the environments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rl.episodes import MarketData
from rl.market import EnvConfig, Market
from rl.vector import ObsBuilder


@dataclass
class Walk:
    """One row per step: the decision at row t, filled at row t + 1's open, marked at t + 1's close.
    Rows are ordered (segment, time)."""

    symbols: list[str]
    symbol_idx: np.ndarray  # int32
    ts: np.ndarray  # int64 microseconds: the open of the bar the step's return is earned over (row t + 1)
    position: np.ndarray  # float64, position held over the step (-1, 0, 1)
    log_return: np.ndarray  # float64, net log change of equity over the step (after costs)
    cost: np.ndarray  # float64, costs paid in the step, as a fraction of equity
    turnover: np.ndarray  # float64, |position change| traded in the step
    segment_id: np.ndarray  # int64
    row: np.ndarray  # int64, the MarketData row of the bar the step's return is earned over (t + 1)
    fill_price: np.ndarray  # float64, the price the step's order filled at (the open when nothing traded)

    def __len__(self) -> int:
        return len(self.ts)


def walk(data: MarketData, config: EnvConfig, policy: Callable[[np.ndarray], np.ndarray]) -> Walk:
    market = Market(data, config)
    first, end = data.segment_bounds()
    t0 = first + config.window - 1  # first decision row
    t_last = end - 2  # last decision row
    keep = t_last >= t0
    t0, t_last = t0[keep], t_last[keep]
    steps = t_last - t0 + 1
    offset = np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.int64) if len(steps) else steps
    total = int(steps.sum()) if len(steps) else 0
    out_pos = np.zeros(total)
    out_ret = np.zeros(total)
    out_cost = np.zeros(total)
    out_turn = np.zeros(total)
    out_row = np.zeros(total, np.int64)
    out_fill = np.zeros(total)
    builder = ObsBuilder(data, config, max(len(t0), 1))
    pos = np.zeros(len(t0))
    t = t0.copy()
    k = 0
    active = np.flatnonzero(t <= t_last)
    while len(active):
        if len(active) != len(builder.buf):
            builder = ObsBuilder(data, config, len(active))
        obs = builder.build(t[active], pos[active])
        actions = np.asarray(policy(obs), dtype=np.int64).reshape(len(active))
        q = config.position_of(actions)
        p = pos[active]
        log_ret, cost, turnover, p_next = market.transition(t[active], p, q)
        at = offset[active] + k
        out_pos[at] = q
        out_ret[at] = log_ret
        out_cost[at] = cost
        out_turn[at] = turnover
        out_row[at] = t[active] + 1
        out_fill[at] = market.fill_price(t[active] + 1, p, q)
        pos[active] = p_next
        t[active] += 1
        k += 1
        active = active[t[active] <= t_last[active]]
    return Walk(
        symbols=list(data.symbols),
        symbol_idx=data.symbol_idx[out_row],
        ts=data.ts[out_row],
        position=out_pos,
        log_return=out_ret,
        cost=out_cost,
        turnover=out_turn,
        segment_id=data.segment_id[out_row],
        row=out_row,
        fill_price=out_fill,
    )
