"""The single Gymnasium environment `marketlake/Trading-v0` (registered by `import rl`).

    gymnasium.make("marketlake/Trading-v0", lake=PATH, symbols=["BTCUSDT"], interval="1m", period="train")

Every other setting is a keyword of the same name as in marketlake.toml: the [train] keys of EnvConfig
(window, episode_length, commission, slippage, slippage_bps, slippage_range_fraction, allow_short,
hold_overnight) and the data and split settings (min_bars_per_symbol, embargo_bars, train_fraction, …).
Fills, costs and rewards are rl/market.py's, the same as the vector env's; step() only indexes arrays.

Settings: `settings=` (a lake.config.Settings) or `config=` (a settings file's path); otherwise the
working folder's marketlake.toml ($MARKETLAKE_CONFIG, else the built-in defaults), named once on stderr.
Without `symbols` or `interval`, the settings' [train] ones (else every eligible symbol, and 1m); symbols
are read in sorted order. `render_mode` None only; it and an unknown keyword are an UnsupportedKeyword
(a ConfigError and a TypeError) otherwise.
The validation and test periods are for evaluation only: building the environment on one warns
(EvaluationPeriodWarning). A period too small for the episodes asked for warns too (SmallDataWarning).

The info dict describes the bar `row` the observation ends at: after reset() the first decision bar,
after step() the bar the step's order filled at (its open) and its equity was marked at (its close),
which is also the next decision's bar. Keys: `row`, `ts` (that bar's open, int microseconds UTC),
`available_at` (when that bar is known: the decision's time, int microseconds UTC), `symbol`,
`position` (the side held after the bar's close: -1, 0, 1), `equity` (the episode's equity marked at that
bar's close net of all costs, 1.0 at reset; exp of the sum of the rewards); after step() also `cost`
(costs paid in the step, a fraction of equity), `turnover` (|weight traded|, a forced exit included),
`fill_price` (the price the order filled at, at the bar's open moved by slippage; only when something
filled there) and `exit_price` (the price a forced exit at the bar's close sold at, the close moved against
the trader by slippage; only when there was one: `hold_overnight = false` at a session's last bar). Each is
left out of the dict when there is no such price, as Gymnasium's vector wrappers expect of a key that only
some steps have: they then give a float array and its `_fill_price` / `_exit_price` mask, never an object
array of floats and None; read them with `info.get("fill_price")`. At the episode's last
step `episode_return` (the sum of its rewards) and `episode_length`.

An episode ends truncated after `episode_length` steps, or terminated (a true terminal state: nothing
follows, so no value is bootstrapped past it) at the step that ruins the account: its equity wiped out (a
short that lost everything, or costs or bad prices that took it all, rl/market.py) and floored at FLOOR (1e-12) of its value before the step; that
step's reward is the log change down to the floor, log(1e-12), and the position is closed. Never both.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import gymnasium
import numpy as np

from lake.config import Settings, load_settings, settings_with_values
from lake.connect import say_settings
from lake.errors import ConfigError
from rl.episodes import MarketData, NormStats
from rl.market import EnvConfig, Market, episode_length, episode_notes, valid_starts
from rl.vector import ObsBuilder, observation_space

_CONFIG_KEYS = {f.name for f in dataclasses.fields(EnvConfig)}
_SETTINGS_KEYS = {
    f.name
    for f in dataclasses.fields(Settings)
    if f.name not in ("binance", "polygon", "yahoo", "news", "train", "path")
}


class UnsupportedKeyword(ConfigError, TypeError):
    """A keyword the environment does not take: an unknown setting, or a render mode (it renders nothing). A
    ConfigError, and a TypeError as Python's own for an unexpected keyword argument: a library that tries a
    keyword and falls back without it on TypeError (stable-baselines3's make_vec_env first tries
    render_mode="rgb_array") then works."""


def check_render_mode(render_mode: str | None) -> None:
    """render_mode None (Gymnasium's "no rendering") is taken; any other is refused (UnsupportedKeyword):
    the env renders nothing."""
    if render_mode is not None:
        raise UnsupportedKeyword(
            f"render_mode={render_mode!r}: marketlake/Trading-v0 renders nothing (metadata['render_modes'] is "
            "empty): leave render_mode out or give render_mode=None"
        )


class EvaluationPeriodWarning(UserWarning):
    """The environment was built on the validation or test period: those are for evaluation only (training
    never reads the test period). Silence it deliberately with
    `warnings.filterwarnings("ignore", category=rl.env.EvaluationPeriodWarning)`."""


class SmallDataWarning(UserWarning):
    """The period is too small for the episodes asked for: they were shortened, or so few episode starts
    remain that the episodes are (nearly) all the same."""


def _user_level() -> int:
    """The stacklevel of a warning from TradingEnv.__init__ that points at the user's line (past this file
    and gymnasium's make), so that the warning says where the environment was made."""
    import sys

    gym_dir = str(Path(gymnasium.__file__).parent)
    ours = {__file__, str(Path(__file__).with_name("vector.py"))}  # the envs' own frames
    frame: FrameType | None = sys._getframe(2)  # (1: the caller of this function)
    level = 2
    while frame is not None and (
        frame.f_code.co_filename in ours or frame.f_code.co_filename.startswith(gym_dir)
    ):
        frame, level = frame.f_back, level + 1
    return level


_FILE_NAMES = {"method": "split_method"}
"""Keywords named as in marketlake.toml where the Settings field is named otherwise ([splits] method)."""


def settings_with(settings: Settings, keywords: dict[str, Any]) -> tuple[Settings, EnvConfig]:
    """Split keywords into the Settings and EnvConfig they change; an unknown keyword is refused
    (UnsupportedKeyword: a ConfigError and a TypeError, as Python's for an unexpected keyword argument).
    Keywords: the trading settings of [train] (EnvConfig's fields) and the [data] and [splits] settings,
    by their names in marketlake.toml (or the Settings field's name), each checked by the settings file's
    rules (a ConfigError `setting splits.train_fraction: why`; dates may be ISO text, "2013-12-31")."""
    if any(k in keywords for k in _FILE_NAMES):
        keywords = {_FILE_NAMES.get(k, k): v for k, v in keywords.items()}
    unknown = sorted(set(keywords) - _CONFIG_KEYS - _SETTINGS_KEYS)
    if unknown:
        known = (_CONFIG_KEYS | _SETTINGS_KEYS | set(_FILE_NAMES)) - set(_FILE_NAMES.values())
        raise UnsupportedKeyword(
            f"unknown setting(s) {', '.join(unknown)} (the trading settings of [train] and those of [data] "
            f"and [splits]: {', '.join(sorted(known))})"
        )
    s = settings_with_values(settings, {k: v for k, v in keywords.items() if k in _SETTINGS_KEYS})
    train = {**settings.train, **{k: v for k, v in keywords.items() if k in _CONFIG_KEYS}}
    return s, EnvConfig.from_settings(train)


def env_settings(
    settings: Settings | None,
    config: EnvConfig | str | Path | None,
    keywords: dict[str, Any],
    *,
    announce: bool = True,
) -> tuple[Settings, EnvConfig]:
    """The settings and trading settings of an env (single or vector) from its keywords: `settings`, or a
    settings file's path as `config`, else the working folder's marketlake.toml (named once on stderr when
    `announce`), with every [train] / [data] / [splits] keyword applied (`settings_with`); an EnvConfig
    given as `config` is taken as it is."""
    if isinstance(config, str | Path):
        if settings is not None:
            raise ConfigError("give settings= or a settings file as config=, not both")
        settings, config = load_settings(config), None
    if settings is None:
        settings = load_settings()
        if announce:
            say_settings(settings, "marketlake/Trading-v0: the environment uses")
    trading = sorted(k for k in keywords if k in _CONFIG_KEYS)
    if isinstance(config, EnvConfig) and trading:  # they would be ignored: the EnvConfig is taken as it is
        raise ConfigError(
            f"give the trading settings as an EnvConfig (config=) or as keywords, not both: {', '.join(trading)}"
        )
    base, cfg = settings_with(settings, keywords)
    return base, config if config is not None else cfg


def warn_if_evaluation_period(period: str) -> None:
    """EvaluationPeriodWarning for an env made on the validation or test period."""
    if period in ("validation", "test"):
        warnings.warn(
            f"marketlake/Trading-v0 on the {period} period: it is for evaluation only (train on "
            "period='train'; the test period is never read in training). To silence this deliberately: "
            "warnings.filterwarnings('ignore', category=rl.env.EvaluationPeriodWarning)",
            EvaluationPeriodWarning,
            stacklevel=_user_level(),
        )


class TradingEnv(gymnasium.Env[np.ndarray, np.int64]):
    """One episode at a time over one period of the lake."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        lake: str | Path | None = None,
        symbols: list[str] | str | None = None,
        interval: str | None = None,
        period: str = "train",
        *,
        data: MarketData | None = None,
        config: EnvConfig | str | Path | None = None,
        settings: Settings | None = None,
        norm: NormStats | None = None,
        render_mode: str | None = None,
        **settings_keywords: Any,
    ) -> None:
        """Either a lake (read here) or ready `data` (with `config`). For validation and test the
        normalisation statistics are the train period's: `norm`, or computed by reading train first.
        `config`: the trading settings (an EnvConfig), or the path of a settings file to read (as
        `settings=lake.config.load_settings(PATH)`); without either, the working folder's marketlake.toml
        ($MARKETLAKE_CONFIG, else the built-in defaults), named once on stderr. `symbols` (a list, or one
        string of comma-separated symbols) and `interval` default to the settings' [train] `symbols` and
        `interval`, else every symbol eligible in the train period and 1m (rl.vector.env_symbols_interval).
        `render_mode`: None only (the env renders nothing; any other is an UnsupportedKeyword)."""
        check_render_mode(render_mode)
        super().__init__()
        self.render_mode = render_mode
        base, self.config = env_settings(settings, config, settings_keywords, announce=data is None)
        if data is None:
            from rl.vector import read_env_period

            data = read_env_period(lake, base, symbols, interval, period, self.config, norm)
        self.data = data
        warn_if_evaluation_period(data.period)
        self.market = Market(data, self.config)
        self.episode_length = episode_length(data, self.config)
        self.starts = valid_starts(data, self.config)
        if len(self.starts) == 0:
            raise ConfigError(f"no episode start in the {data.period} period of {', '.join(data.symbols)}")
        for note in episode_notes(data, self.config, self.episode_length, len(self.starts)):
            warnings.warn(note, SmallDataWarning, stacklevel=_user_level())
        self.observation_space = observation_space(data, self.config)
        self.action_space = gymnasium.spaces.Discrete(self.config.n_actions)
        self._obs = ObsBuilder(data, self.config, 1)
        self._row = np.zeros(1, np.int64)
        self._pos = np.zeros(1, np.float64)  # the side held: -1, 0, 1
        self._entry = np.ones(1, np.float64)  # the price it was entered at (its weight drifts from there)
        self._k = 0
        self._ret = 0.0
        self._ended = True  # no episode before the first reset(), none after one ends

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """options={"start": row} starts the episode at that row (a valid start)."""
        super().reset(seed=seed)
        if options and options.get("start") is not None:
            start = int(options["start"])
            if not np.isin(start, self.starts):
                raise ValueError(f"row {start} is not a valid episode start")
        else:
            start = int(self.starts[self.np_random.integers(0, len(self.starts))])
        self._row[0] = start
        self._pos[0] = 0.0
        self._entry[0] = 1.0
        self._k = 0
        self._ret = 0.0
        self._ended = False
        return self._obs.one(start, 0.0), self._info()

    def _info(self) -> dict[str, Any]:
        r = int(self._row[0])
        return {
            "row": r,
            "ts": int(self.data.ts[r]),
            "available_at": int(self.data.available_at[r]),
            "symbol": self.data.symbols[int(self.data.symbol_idx[r])],
            "position": float(self._pos[0]),
            "equity": float(np.exp(self._ret)),
        }

    def _action_index(self, action: Any) -> int:
        """The action as an index of the action space, or a ValueError: a whole number 0..n-1 given as an int
        or a numpy integer (0-d arrays too), as gymnasium's Discrete(n).contains takes it (any numpy integer
        type: np.uint64 too); a float (1.5, even 1.0), a string or an array of several is refused, never
        rounded into an action."""
        x = action[()] if isinstance(action, np.ndarray) and action.shape == () else action
        n = self.config.n_actions
        if isinstance(x, int | np.integer) and 0 <= int(x) < n:
            return int(x)
        meaning = "0 flat, 1 long" + (", 2 short" if n == 3 else "")
        raise ValueError(
            f"action {action!r} is not in the action space {self.action_space}: an action is a whole number "
            f"0..{n - 1} ({meaning}), an int or a numpy integer"
        )

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._ended:
            raise gymnasium.error.ResetNeeded(
                "the episode has ended: call reset()"
                if self._k
                else "no episode has started: call reset() before step()"
            )
        a = self._action_index(action)
        q = self.config.position_of(np.array([a]))
        p = self._pos.copy()
        t = self._row.copy()
        log_ret, cost, turnover, p_next, self._entry, fill, exit_price, _, ruined = (
            self.market.transition_priced(t, p, self._entry, q)
        )
        self._row += 1
        self._pos = p_next
        self._k += 1
        self._ret += float(log_ret[0])
        # ruin (the equity wiped out, floored: rl/market.py) closes the account: a true terminal state
        terminated = ruined is not None and bool(ruined[0])
        truncated = not terminated and self._k >= self.episode_length
        info = self._info()
        info.update(cost=float(cost[0]), turnover=float(turnover[0]))
        if not np.isnan(fill[0]):  # (left out, not None: see the module's docstring)
            info["fill_price"] = float(fill[0])
        if not np.isnan(exit_price[0]):
            info["exit_price"] = float(exit_price[0])
        if terminated or truncated:
            self._ended = True
            info["episode_return"] = self._ret
            info["episode_length"] = self._k
        obs = self._obs.one(int(self._row[0]), float(self._pos[0]))
        return obs, float(log_ret[0]), terminated, truncated, info
