"""The one implementation of fills, costs and rewards, vectorised over arrays (rl/env.py, rl/vector.py and
rl/walk.py all step through `Market.transition`, or `Market.transition_priced`, the same step that also says
the prices it traded at).

Time and prices (DESIGN.md, "Trading semantics"):

- The agent decides at bar t's `available_at`, from feature rows up to t and its own position.
- The order fills at bar t+1's OPEN, moved against the trader by slippage: `bps` moves it by
  `slippage_bps` basis points of the open, `range` by `slippage_range_fraction` of bar t+1's high-low
  range. No fill uses a price the agent has seen.
- The action is a side: 0 flat, 1 long, -1 short (with `allow_short`). A position is shares held: its
  weight w (position value / equity) is the side when entered and then drifts with the price, after a
  move r to w (1 + r) / (1 + w r) (`weight`: a long stays at 1 exactly, flat at 0, a short grows in size
  as the price rises). Keeping the side trades nothing. Changing it trades from the drifted weight w to
  the new side q: |q - w| of the equity at the fill, costing |q - w| x (commission + slippage / open) of
  that equity (commission a fraction of traded notional; the slippage what the moved fill price loses
  against the open); the new position is q of the equity left.
- Equity is marked at every bar's close. One step (decision at t, fill at t+1) multiplies equity by

      (1 + w0 (open[t+1] / close[t] - 1))      w0 the weight held at t's close, over the gap
    x (1 - |q - w1| (commission + slip[t+1]))  only when the side changes; w1: w0 drifted to the open
    x (1 + w2 (close[t+1] / open[t+1] - 1))    w2 = q after a trade, else w1: the bar, open to close
    x (1 - |w3| (commission + exit_slip[t+1])) only when the position must be closed at t+1's close (a
                                               stock not held overnight at its session's last bar; the
                                               evaluation walk's segment ends): w3 the weight there

  and the reward is the log of that product: the change in log equity net of costs. Equity never falls
  below FLOOR x its value before the step: a short that loses everything (or costs that take it all) is
  floored there and closed. That step is the account's ruin (`ruined`): its reward is the log change down
  to the floor, log(FLOOR) (about -27.6), and the account is closed: the environments end the episode there
  (terminated, a true terminal state), the evaluation walk keeps the symbol flat for the rest of the period.
  So buy-and-hold over an episode earns exactly
  log(close[last] / open[first fill]) + log(1 - commission - slip[first fill]); a short held earns
  log(2 - close[last] / open[first fill]) + log(1 - commission - slip[first fill]) (1 - P_end / P_entry on
  the equity left after the entry costs); flat earns exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from lake.errors import ConfigError, MarketlakeError

if TYPE_CHECKING:
    from rl.episodes import MarketData

SLIPPAGE_MODES = ("bps", "range")
FLOOR = 1e-12
"""Equity never falls below this fraction of its value before a step (log equity stays finite): a short that
loses everything is floored there and closed, and the account is ruined (`Market.transition`'s `ruined`):
it trades no more (the episode terminates; the walk keeps the symbol flat)."""


@dataclass(frozen=True)
class EnvConfig:
    """Trading settings: the keys of the [train] table of marketlake.toml of the same names."""

    window: int = 32
    """W: feature rows in an observation."""
    episode_length: int | None = None
    """Steps per episode; None: one session for intraday stocks, one day for intraday crypto (1440 1m
    bars), 252 for daily bars; shortened to what the longest segment allows."""
    commission: float = 0.001
    """Fraction of traded notional."""
    slippage: str = "bps"
    """'bps' (fixed basis points of the open) or 'range' (fraction of the fill bar's high-low range)."""
    slippage_bps: float = 1.0
    slippage_range_fraction: float = 0.1
    allow_short: bool = False
    """Actions: Discrete(2) 0 flat, 1 long; with shorting Discrete(3) 0 flat, 1 long, 2 short."""
    hold_overnight: bool = True
    """Stocks: when False, a position is closed at its session's last bar's close (costs paid)."""

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"setting train.{key}: {why}")

        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
            raise bad("window", f"must be a whole number >= 1, got {self.window!r}")
        if self.episode_length is not None and (
            not isinstance(self.episode_length, int)
            or isinstance(self.episode_length, bool)
            or self.episode_length < 1
        ):
            raise bad("episode_length", f"must be a whole number >= 1, got {self.episode_length!r}")
        if self.slippage not in SLIPPAGE_MODES:
            raise bad("slippage", f"must be one of {', '.join(SLIPPAGE_MODES)}, got {self.slippage!r}")
        for key in ("commission", "slippage_bps", "slippage_range_fraction"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1e4:
                raise bad(key, f"must be a number >= 0, got {v!r}")
        if self.commission >= 1:
            raise bad("commission", f"must be below 1 (a fraction of notional), got {self.commission!r}")
        if self.slippage_range_fraction > 1:
            raise bad("slippage_range_fraction", f"must be at most 1, got {self.slippage_range_fraction!r}")
        for key in ("allow_short", "hold_overnight"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, f"must be true or false, got {getattr(self, key)!r}")

    @classmethod
    def from_settings(cls, train: dict[str, Any]) -> EnvConfig:
        """The config from the [train] table (other keys of the table, e.g. num_iterations, are ignored)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in train.items() if k in names}
        if isinstance(kwargs.get("commission"), int) and not isinstance(kwargs["commission"], bool):
            kwargs["commission"] = float(kwargs["commission"])
        return cls(**kwargs)

    @property
    def n_actions(self) -> int:
        return 3 if self.allow_short else 2

    def position_of(self, action: np.ndarray) -> np.ndarray:
        """Action index -> target position: 0 flat, 1 long, 2 short (-1)."""
        table = np.array([0.0, 1.0, -1.0][: self.n_actions])
        a = np.asarray(action, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() >= self.n_actions):
            raise ValueError(f"action out of range 0..{self.n_actions - 1}: {a}")
        return table[a]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check_interval(self, interval: str, where: str | None = None) -> None:
        """The one rule of where these settings and a bar interval meet (every entry point calls it before
        reading the lake: the env, the vector env, the evaluations, `marketlake train`; and Market for arrays
        given as they are): `hold_overnight = false` is refused with bars of a day or longer, since every such
        bar is a whole session (its own last bar: rl/episodes.py session_ends) and every position would be
        closed at the close of the bar it was opened at. A ConfigError of one line, `where: ` before it when
        given (the settings file or the command line)."""
        if self.hold_overnight or not _day_or_longer(interval):
            return
        why = (
            f"hold_overnight = false with interval {interval}: false closes a stock position at its session's "
            "last bar, and a bar of a day or longer is always its session's last (it holds the whole session), "
            "so every stock position would be closed the bar it opens (crypto has no session end: the setting "
            "does nothing for it); hold_overnight = false needs intraday bars (1m, 5m, 15m or 1h)"
        )
        raise ConfigError(f"{where}: {why}" if where else why)


def _day_or_longer(interval: str) -> bool:
    """A bar interval of a day or longer (1d, 1w); an interval that is not one (its read says so) is not."""
    from rl.metrics import interval_minutes

    try:
        return interval_minutes(interval) >= 1440
    except (MarketlakeError, AttributeError):
        return False


class Market:
    """Per-row arrays of one MarketData precomputed for a config, and the vectorised transition."""

    def __init__(self, data: MarketData, config: EnvConfig, *, close_at: np.ndarray | None = None) -> None:
        """close_at: rows (a bool mask) at whose close an open position is closed with its exit costs, beside
        the sessions' last bars of `hold_overnight = false` (the evaluation walk's segment ends)."""
        config.check_interval(data.interval)
        self.data = data
        self.config = config
        o, h, lo, c = data.open, data.high, data.low, data.close
        n = len(c)
        self.n_rows = n
        prev_close = np.empty(n)
        prev_close[0] = c[0] if n else 0.0
        prev_close[1:] = c[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.gap_ret = np.where(prev_close > 0, o / prev_close - 1.0, 0.0)
            self.bar_ret = c / o - 1.0
            if config.slippage == "bps":
                self.slip = np.full(n, config.slippage_bps / 1e4)
                self.exit_slip = self.slip
            else:
                rng = np.maximum(h - lo, 0.0)
                self.slip = config.slippage_range_fraction * rng / o
                self.exit_slip = config.slippage_range_fraction * rng / c
        self.fill_cost = config.commission + self.slip  # per unit of |position change| at row's open
        self.exit_cost = config.commission + self.exit_slip
        if config.hold_overnight:
            self.forced_exit = np.zeros(n, dtype=bool)
        else:
            self.forced_exit = data.session_end.copy()
        if close_at is not None:
            self.forced_exit |= close_at
        self.any_exit = bool(self.forced_exit.any())
        # long only, can a step take all of the equity: a fill's costs near 1, or prices that fall to almost
        # nothing (a gap and a bar each worst of the data: only bad data)? Then each step checks for ruin
        self.costs_can_wipe = bool(n) and (
            float(self.fill_cost.max()) >= 0.5
            or (1.0 + float(self.gap_ret.min())) * (1.0 + float(self.bar_ret.min())) <= 2 * FLOOR
        )

    def transition(
        self, t: np.ndarray, side: np.ndarray, entry: np.ndarray, q: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Decisions at rows t (`side` held, entered at the price `entry`; target side q) filled at rows t + 1.

        Returns (log return of equity over the step net of costs, costs as a fraction of equity, turnover
        |traded weight|, side held after the step's close, entry price after the step, ruined). The weight
        of a side held is `weight(side, price / entry)`: its shares are held, so its weight drifts with the
        price; only a change of side trades (from the drifted weight to the target).

        ruined: a bool array, True where the step wiped the equity out (floored at FLOOR x its value before
        the step, the position closed; the log return there is log(FLOOR)): the account is ruined and
        must trade no more. None when no row was (the common case costs nothing to tell)."""
        out = self._step(t, side, entry, q, False)
        return out[0], out[1], out[2], out[3], out[4], out[8]

    def transition_priced(
        self, t: np.ndarray, side: np.ndarray, entry: np.ndarray, q: np.ndarray
    ) -> tuple[
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray | None,
    ]:
        """`transition`'s first five arrays (the same numbers), then the prices the step traded at:
        fill_price, the price of the order filled at row t + 1's open (the open moved against the trader:
        up to buy, down to sell), NaN where nothing filled at the open; and exit_price, the price a forced
        exit sold (or bought back a short) at, at row t + 1's close moved against the trader by the exit
        slippage (a long's: close x (1 - exit slippage); with `range` slippage close - fraction x range), NaN
        where no forced exit happened. A step may have both: an entry at the open closed at the close.
        Last, cost_prev: the step's costs as a fraction of the equity BEFORE it (at row t's close), so that
        cost_prev x that equity is the money they took (the open's costs are a fraction of the equity at the
        open, a forced exit's of the equity at the close before it: `cost` adds fractions of different
        amounts). Last, `transition`'s `ruined` (None when no row was)."""
        out = self._step(t, side, entry, q, True)
        log_ret, cost, turnover, side_next, entry_next, fill, exit_price, cost_prev, ruined = out
        assert fill is not None and exit_price is not None and cost_prev is not None
        return log_ret, cost, turnover, side_next, entry_next, fill, exit_price, cost_prev, ruined

    def _step(
        self, t: np.ndarray, side: np.ndarray, entry: np.ndarray, q: np.ndarray, prices: bool
    ) -> tuple[
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray,
        np.ndarray | None,
        np.ndarray | None,
        np.ndarray | None,
        np.ndarray | None,
    ]:
        """transition (prices False: fill, exit_price and cost_prev None) and transition_priced: one
        implementation. The last: ruined, None when no row was."""
        n = t + 1
        gone: np.ndarray | None = None
        if self.config.allow_short:
            o = self.data.open[n]
            w0 = weight(side, self.data.close[t] / entry)  # at the decision bar's close
            g1 = 1.0 + w0 * self.gap_ret[n]  # the gap to the fill bar's open
            w1 = weight(side, o / entry)  # drifted by the gap
            trade = q != side
            d = np.where(trade, np.abs(q - w1), 0.0)  # keeping the side trades nothing
            cost = d * self.fill_cost[n]
            entry_next = np.where(trade, o, entry)
            g2 = 1.0 + np.where(trade, q, w1) * self.bar_ret[n]  # the bar, open to close
            g = g1 * (1.0 - cost) * g2
            if len(g) and min(g1.min(), g2.min(), g.min()) <= FLOOR:
                gone = (g1 <= FLOOR) | (g2 <= FLOOR) | (g <= FLOOR)
                at_open = g1 <= FLOOR  # lost everything by the open: nothing left to trade there
                d = np.where(at_open, 0.0, d)
                cost = np.where(at_open, 0.0, cost)
        else:
            # long and flat only: the weight is the side exactly (1 or 0 never drifts) and the entry price
            # does not matter; the formulas above reduce to these (tests check both give the same numbers)
            d = np.abs(q - side)
            cost = d * self.fill_cost[n]
            g = (1.0 + side * self.gap_ret[n]) * (1.0 - cost) * (1.0 + q * self.bar_ret[n])
            entry_next = entry
            if self.costs_can_wipe:
                gone = g <= FLOOR
                if not gone.any():
                    gone = None
        side_next = q
        if gone is not None:  # equity wiped out: floored (log equity stays finite), the position is gone
            g = np.where(gone, FLOOR, g)
            side_next = np.where(gone, 0.0, q)
        fill = exit_price = cost_prev = None
        if prices:
            # the open's fill where something traded there, moved against the trader (the sign of q - side)
            fill = np.where(d > 0, self.data.open[n] * (1.0 + np.sign(q - side) * self.slip[n]), np.nan)
            exit_price = np.full(len(g), np.nan)
            # the open's costs are a fraction of the equity at the open: the equity before x the gap's g1
            g_open = g1 if self.config.allow_short else 1.0 + side * self.gap_ret[n]
            cost_prev = g_open * cost
        if not self.any_exit:
            return np.log(g), cost, d, side_next, entry_next, fill, exit_price, cost_prev, gone
        # a forced exit at the fill bar's close: the weight held there is sold, its costs paid
        exit_ = self.forced_exit[n] & (side_next != 0)
        w_close = np.abs(weight(side_next, self.data.close[n] / entry_next)) if self.config.allow_short else q
        exit_cost = np.where(exit_, w_close * self.exit_cost[n], 0.0)
        if cost_prev is not None:  # the exit's costs: a fraction of the equity at the close before it (g)
            cost_prev = cost_prev + g * exit_cost
        g = g * (1.0 - exit_cost)
        np.maximum(g, FLOOR, out=g)
        ruined = gone
        if len(g) and g.min() <= FLOOR:  # wiped out before the close, or the exit's costs took it all
            ruined = g <= FLOOR
        turnover = d + np.where(exit_, w_close, 0.0)
        if prices:  # sold at the close (a short bought back), moved against the trader by the exit slippage
            exit_price = np.where(
                exit_, self.data.close[n] * (1.0 - np.sign(side_next) * self.exit_slip[n]), np.nan
            )
        side_after = np.where(exit_, 0.0, side_next)
        return (
            np.log(g),
            cost + exit_cost,
            turnover,
            side_after,
            entry_next,
            fill,
            exit_price,
            cost_prev,
            ruined,
        )


def weight(side: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The weight (position value / equity) of a position of `side` entered at weight `side` after its price
    moved by the ratio x since the entry: the shares are held, so w = side x / (1 - side + side x). Exactly 1
    for a long and 0 for flat; a short's weight grows in size as the price rises (-x / (2 - x))."""
    sx = side * x
    return sx / np.maximum(1.0 - side + sx, FLOOR)


def default_episode_length(data: MarketData) -> int:
    """One session for intraday stocks (the most bars one trading day of the data holds), one UTC day for
    intraday crypto (1440 bars of 1m), 252 for daily and longer bars."""
    minutes = data.interval_minutes
    if minutes >= 1440:
        return 252
    stock = np.array([c != "crypto" for c in data.asset_classes], dtype=bool)
    if stock.any() and data.n_rows:
        rows = stock[data.symbol_idx]
        if rows.any():
            key = data.symbol_idx[rows].astype(np.int64) * 1_000_000 + data.day[rows]
            _, counts = np.unique(key, return_counts=True)
            return int(counts.max())
    return max(1440 // minutes, 1)


def episode_length(data: MarketData, config: EnvConfig, *, strict: bool = True) -> int:
    """Steps per episode: the setting (or the default), shortened to what the longest segment allows
    (a segment of n rows gives n - window steps: decisions need `window` rows of history and a next bar)."""
    want = config.episode_length or default_episode_length(data)
    first, end = data.segment_bounds()
    room = int((end - first).max()) - config.window if len(first) else 0
    if room < 1:
        if not strict:
            return 0
        raise ConfigError(
            f"no episode fits in the {data.period} period of {', '.join(data.symbols) or 'no symbol'} "
            f"{data.interval}: its longest run of consecutive bars after warm-up has "
            f"{room + config.window if len(first) else 0} rows, a window of {config.window} needs at least "
            f"{config.window + 1} (lower train.window or add data)"
        )
    return min(want, room)


FEW_STARTS = 10
"""Fewer distinct episode starts than this: the episodes are (nearly) all the same (`episode_notes`)."""


def episode_notes(data: MarketData, config: EnvConfig, length: int, n_starts: int) -> list[str]:
    """What a user should know of a period too small for the episodes asked for, one line each: the
    episode length shortened below the setting (or the default), and few distinct starts (FEW_STARTS)."""
    notes = []
    where = f"the {data.period} period of {', '.join(data.symbols) or 'no symbol'} {data.interval}"
    want = config.episode_length or default_episode_length(data)
    if length < want:
        what = "train.episode_length" if config.episode_length else "the default episode length"
        notes.append(
            f"episodes shortened to {length} steps from {want} ({what}): the longest run of consecutive bars "
            f"in {where} allows no more after a window of {config.window} (add data, or lower window)"
        )
    if n_starts < FEW_STARTS:
        notes.append(
            f"only {n_starts} distinct episode start(s) in {where} for episodes of {length} steps: every "
            "episode is (nearly) the same one (add data, or lower episode_length)"
        )
    return notes


def valid_starts(data: MarketData, config: EnvConfig, *, strict: bool = True) -> np.ndarray:
    """Rows where an episode may start: `window` rows of history in the segment (the start included) and
    room for `episode_length` steps before the segment ends."""
    length = episode_length(data, config, strict=strict)
    if length < 1:
        return np.zeros(0, np.int64)
    first, end = data.segment_bounds()
    seg_first = np.repeat(first, end - first)
    seg_end = np.repeat(end, end - first)
    rows = np.arange(data.n_rows, dtype=np.int64)
    ok = (rows - seg_first >= config.window - 1) & (rows + length <= seg_end - 1)
    return np.flatnonzero(ok).astype(np.int64)


def window_view(features: np.ndarray, window: int) -> np.ndarray:
    """A read-only [N - window + 1, window * F] view: row i is feature rows i .. i + window - 1 flattened,
    so the observation window ending at row t is row t - window + 1. No copy."""
    n, f = features.shape
    if not features.flags.c_contiguous:
        raise ValueError("features must be C-contiguous")
    count = max(n - window + 1, 0)
    return np.lib.stride_tricks.as_strided(
        features,
        shape=(count, window * f),
        strides=(f * features.itemsize, features.itemsize),
        writeable=False,
    )
