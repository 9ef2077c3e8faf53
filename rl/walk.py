"""Run a policy deterministically over EVERY valid bar of a period: the evaluation's input.

Every segment of every symbol is walked from its first decision bar (the first row with `window` rows of
history) to its second-to-last row (the last decision needs a next bar to fill at); all segments advance
together, one policy call per step for the whole batch. Each segment starts flat. A position still open at
the end of a segment that another segment of the same symbol follows in the data (a gap broke the run) is
closed at that segment's last close with its exit costs, as a forced exit; at the end of a symbol's last
segment (the end of its data in the evaluated period) it is marked to market, not sold. The fills, costs and
rewards are rl/market.py's, as in the environments.

Each symbol is one account. A step that ruins it (its equity wiped out and floored, rl/market.py's `ruined`:
a short that lost everything) closes it for the rest of the period: every later step of that symbol, in
that segment and the later ones, is flat (position 0, log return 0, no cost, no turnover, no fill), whatever
the policy asked. `Walk.ruined` flags the ruinous step, `Walk.ruins()` names each ruined symbol and when.

A policy that decides each observation row on its own (no state, no random draws: the greedy policy of
rl/ppo.py says so with `rowwise = True`) is walked faster: it is asked once, in large batches, for every
decision row at every position the agent may hold there; then a scan over time picks the action of the
position actually held, and the fills, costs and rewards of all steps are computed at once. Same steps,
same numbers as the step-by-step walk (tests/unit/test_walk.py checks them equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    position: np.ndarray  # float64, the side held over the step (-1, 0, 1)
    log_return: np.ndarray  # float64, net log change of equity over the step (after costs)
    cost: np.ndarray  # float64, costs paid in the step, as a fraction of equity
    turnover: np.ndarray  # float64, |weight change| traded in the step (exits at the close included)
    segment_id: np.ndarray  # int64
    row: np.ndarray  # int64, the MarketData row of the bar the step's return is earned over (t + 1)
    fill_price: np.ndarray  # float64, the price the step's order filled at its open (NaN: nothing filled)
    exit_price: np.ndarray  # float64, the price a forced exit at its close sold at (NaN: no forced exit)
    cost_prev: (
        np.ndarray
    )  # float64, the step's costs as a fraction of the equity before it (the money / that)
    ruined: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """bool: True at the step that ruined its symbol's account (equity wiped out, floored at rl.market.FLOOR
    of its value before the step; its log return log(FLOOR)); every later step of that symbol is flat, with
    no return and no cost. At most one per symbol. Left out (a Walk made by hand): all False."""

    def __post_init__(self) -> None:
        if len(self.ruined) == 0 and len(self.ts):
            self.ruined = np.zeros(len(self.ts), dtype=bool)

    def __len__(self) -> int:
        return len(self.ts)

    def ruins(self) -> dict[str, int]:
        """Each ruined symbol -> the ts of its ruinous step (the open of the bar it was wiped out over, int
        microseconds UTC): closed from then to the end of the period. Empty when no account was ruined."""
        at = np.flatnonzero(self.ruined)
        return {self.symbols[int(self.symbol_idx[j])]: int(self.ts[j]) for j in at}


def walk(
    data: MarketData,
    config: EnvConfig,
    policy: Callable[[np.ndarray], np.ndarray],
    *,
    rowwise: bool | None = None,
) -> Walk:
    """rowwise: walk by the faster path for a row-by-row policy (None: the policy's `rowwise` attribute)."""
    if rowwise if rowwise is not None else getattr(policy, "rowwise", False):
        return _walk_rowwise(data, config, policy)
    t0, t_last, steps, offset, total = _decision_rows(data, config)
    market = Market(data, config, close_at=_segment_closes(data, t0, t_last))
    out_pos = np.zeros(total)
    out_ret = np.zeros(total)
    out_cost = np.zeros(total)
    out_turn = np.zeros(total)
    out_row = np.zeros(total, np.int64)
    out_fill = np.zeros(total)
    out_exit = np.zeros(total)
    out_cost_prev = np.zeros(total)
    out_ruined = np.zeros(total, dtype=bool)
    builder = ObsBuilder(data, config, max(len(t0), 1))
    pos = np.zeros(len(t0))
    entry = np.ones(len(t0))
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
        log_ret, cost, turnover, p_next, entry[active], fill, exit_price, cost_prev, ruined = (
            market.transition_priced(t[active], p, entry[active], q)
        )
        at = offset[active] + k
        out_pos[at] = q
        out_ret[at] = log_ret
        out_cost[at] = cost
        out_turn[at] = turnover
        out_row[at] = t[active] + 1
        out_fill[at] = fill
        out_exit[at] = exit_price
        out_cost_prev[at] = cost_prev
        if ruined is not None:
            out_ruined[at] = ruined
        pos[active] = p_next
        t[active] += 1
        k += 1
        active = active[t[active] <= t_last[active]]
    w = Walk(
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
        exit_price=out_exit,
        cost_prev=out_cost_prev,
        ruined=out_ruined,
    )
    return _close_ruined(w)


def _close_ruined(w: Walk) -> Walk:
    """Each symbol's account closed after the step that ruined it: its later steps (in output order, which
    is the symbol's time order) made flat, with no return, cost, turnover or fill; only the first ruin is
    flagged. The segments are walked side by side (and the fast path scans without knowing of ruin), so the
    steps after a ruin were computed as if the account lived on: they are replaced here, as a closed account
    (flat, nothing traded) would have them. In place; returns `w`."""
    if not w.ruined.any():
        return w
    first = np.full(len(w.symbols), len(w), np.int64)
    at = np.flatnonzero(w.ruined)
    np.minimum.at(first, w.symbol_idx[at], at)
    closed = np.arange(len(w)) > first[w.symbol_idx]
    for name in ("position", "log_return", "cost", "turnover", "cost_prev"):
        getattr(w, name)[closed] = 0.0
    w.fill_price[closed] = np.nan
    w.exit_price[closed] = np.nan
    w.ruined[closed] = False
    return w


def decision_steps(data: MarketData, config: EnvConfig) -> int:
    """The steps a walk of `data` takes: its decision rows (0 when no segment is long enough to trade)."""
    return _decision_rows(data, config)[4]


def _decision_rows(
    data: MarketData, config: EnvConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Per segment long enough to trade: its first and last decision rows (a full window behind the
    first; a next bar to fill at after the last), the number of steps, where its steps start in the
    walk's output, and the total."""
    first, end = data.segment_bounds()
    t0 = first + config.window - 1  # first decision row
    t_last = end - 2  # last decision row
    keep = t_last >= t0
    t0, t_last = t0[keep], t_last[keep]
    steps = t_last - t0 + 1
    offset = np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.int64) if len(steps) else steps
    total = int(steps.sum()) if len(steps) else 0
    return t0, t_last, steps, offset, total


def _segment_closes(data: MarketData, t0: np.ndarray, t_last: np.ndarray) -> np.ndarray:
    """Rows at whose close the walk closes an open position: the last row of every walked segment that
    another segment of the same symbol follows in the data (a gap broke the run; the next segment may be
    too short to walk, the position is closed all the same)."""
    out = np.zeros(data.n_rows, dtype=bool)
    if len(t0):
        last = t_last + 1  # each walked segment's last row
        nxt = np.minimum(last + 1, max(data.n_rows - 1, 0))
        followed = (last + 1 < data.n_rows) & (data.symbol_idx[nxt] == data.symbol_idx[last])
        out[last[followed]] = True
    return out


def _walk_rowwise(data: MarketData, config: EnvConfig, policy: Callable[[np.ndarray], np.ndarray]) -> Walk:
    t0, t_last, steps, offset, total = _decision_rows(data, config)
    market = Market(data, config, close_at=_segment_closes(data, t0, t_last))
    # the decision rows, segment after segment (the step-by-step walk's output order)
    rows = np.repeat(t0 - offset, steps) + np.arange(total, dtype=np.int64)
    # the policy's action at every decision row for every position held there (position index = action)
    positions = config.position_of(np.arange(config.n_actions))
    table = np.zeros((total, len(positions)), np.int64)
    chunk = 8192
    for j, held in enumerate(positions):
        for s in range(0, total, chunk):
            r = rows[s : s + chunk]
            obs = ObsBuilder(data, config, len(r)).build(r, np.full(len(r), held))
            table[s : s + chunk, j] = np.asarray(policy(obs), dtype=np.int64).reshape(len(r))
    config.position_of(table)  # actions out of range raise, as in the step-by-step walk
    # the scan over time, segment by segment (plain Python: a few operations per row): the side held picks
    # the action, and a forced exit at the next bar's close leaves the segment flat again
    choice, exit_at = table.tolist(), (market.forced_exit[rows + 1]).tolist()
    actions: list[int] = []
    for start, n in zip(offset.tolist(), steps.tolist(), strict=True):
        held = 0  # each segment starts flat (action 0 = flat)
        for j in range(start, start + n):
            a = choice[j][held]
            actions.append(a)
            held = 0 if exit_at[j] and a != 0 else a
    action = np.array(actions, dtype=np.int64)
    q = positions[action]
    # the position before each step: the one after the previous step of its segment (flat at its start)
    after = np.where(market.forced_exit[rows + 1] & (q != 0), 0.0, q)
    p = np.zeros(total)
    cont = np.ones(total, dtype=bool)
    cont[offset] = False
    p[cont] = after[np.flatnonzero(cont) - 1]
    # the price the side held before each step was entered at: the fill of the segment's last trade before
    # it (1.0 before any, as in the step-by-step walk; a flat side's weight is 0 whatever it is)
    traded = np.flatnonzero(q != p)
    last = np.full(total, -1, np.int64)
    last[traded] = traded
    np.maximum.accumulate(last, out=last)
    before = np.full(total, -1, np.int64)
    before[cont] = last[np.flatnonzero(cont) - 1]
    before[before < np.repeat(offset, steps)] = -1  # a trade of an earlier segment
    entry = np.where(before >= 0, data.open[rows[before] + 1], 1.0)
    log_ret, cost, turnover, _, _, fill, exit_price, cost_prev, ruined = market.transition_priced(
        rows, p, entry, q
    )
    # a ruin (a short that lost everything, closed and flat after) the scan above did not know of: every step
    # up to a segment's first ruin is right (the scan diverges only after one), and every step of the
    # symbol after its first ruin is made flat (_close_ruined), as the step-by-step walk's are
    w = Walk(
        symbols=list(data.symbols),
        symbol_idx=data.symbol_idx[rows + 1],
        ts=data.ts[rows + 1],
        position=q,
        log_return=log_ret,
        cost=cost,
        turnover=turnover,
        segment_id=data.segment_id[rows + 1],
        row=rows + 1,
        fill_price=fill,
        exit_price=exit_price,
        cost_prev=cost_prev,
        ruined=ruined if ruined is not None else np.zeros(total, dtype=bool),
    )
    return _close_ruined(w)
