"""The single Gymnasium environment `marketlake/Trading-v0` (registered by `import rl`).

    gymnasium.make("marketlake/Trading-v0", lake=PATH, symbols=["BTCUSDT"], interval="1m", period="train")

Every other setting is a keyword of the same name as in marketlake.toml: the [train] keys of EnvConfig
(window, episode_length, commission, slippage, slippage_bps, slippage_range_fraction, allow_short,
hold_overnight) and the data and split settings (min_bars_per_symbol, embargo_bars, train_fraction, …).
Fills, costs and rewards are rl/market.py's, the same as the vector env's; step() only indexes arrays.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from lake.config import Settings, load_settings, settings_with_values
from lake.errors import ConfigError
from rl.episodes import MarketData, NormStats, load_period
from rl.market import EnvConfig, Market, episode_length, valid_starts
from rl.vector import ObsBuilder, observation_space

_CONFIG_KEYS = {f.name for f in dataclasses.fields(EnvConfig)}
_SETTINGS_KEYS = {
    f.name
    for f in dataclasses.fields(Settings)
    if f.name not in ("binance", "polygon", "yahoo", "news", "train", "path")
}


_FILE_NAMES = {"method": "split_method"}
"""Keywords named as in marketlake.toml where the Settings field is named otherwise ([splits] method)."""


def settings_with(settings: Settings, keywords: dict[str, Any]) -> tuple[Settings, EnvConfig]:
    """Split keywords into the Settings and EnvConfig they change; an unknown keyword is a ConfigError.
    Keywords: the trading settings of [train] (EnvConfig's fields) and the [data] and [splits] settings,
    by their names in marketlake.toml (or the Settings field's name), each checked by the settings file's
    rules (a ConfigError `setting splits.train_fraction: why`; dates may be ISO text, "2013-12-31")."""
    if any(k in keywords for k in _FILE_NAMES):
        keywords = {_FILE_NAMES.get(k, k): v for k, v in keywords.items()}
    unknown = sorted(set(keywords) - _CONFIG_KEYS - _SETTINGS_KEYS)
    if unknown:
        known = (_CONFIG_KEYS | _SETTINGS_KEYS | set(_FILE_NAMES)) - set(_FILE_NAMES.values())
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} (the trading settings of [train] and those of [data] "
            f"and [splits]: {', '.join(sorted(known))})"
        )
    s = settings_with_values(settings, {k: v for k, v in keywords.items() if k in _SETTINGS_KEYS})
    train = {**settings.train, **{k: v for k, v in keywords.items() if k in _CONFIG_KEYS}}
    return s, EnvConfig.from_settings(train)


class TradingEnv(gymnasium.Env[np.ndarray, np.int64]):
    """One episode at a time over one period of the lake."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        lake: str | Path | None = None,
        symbols: list[str] | None = None,
        interval: str = "1m",
        period: str = "train",
        *,
        data: MarketData | None = None,
        config: EnvConfig | None = None,
        settings: Settings | None = None,
        norm: NormStats | None = None,
        **settings_keywords: Any,
    ) -> None:
        """Either a lake (read here) or ready `data` (with `config`). For validation and test the
        normalisation statistics are the train period's: `norm`, or computed by reading train first."""
        super().__init__()
        base = settings if settings is not None else load_settings()
        base, cfg = settings_with(base, settings_keywords)
        self.config = config if config is not None else cfg
        if data is None:
            if norm is None and period != "train":
                norm = load_period(lake, base, symbols, interval, "train", config=self.config).norm
            data = load_period(lake, base, symbols, interval, period, norm=norm, config=self.config)
        self.data = data
        self.market = Market(data, self.config)
        self.episode_length = episode_length(data, self.config)
        self.starts = valid_starts(data, self.config)
        if len(self.starts) == 0:
            raise ConfigError(f"no episode start in the {data.period} period of {', '.join(data.symbols)}")
        self.observation_space = observation_space(data, self.config)
        self.action_space = gymnasium.spaces.Discrete(self.config.n_actions)
        self._obs = ObsBuilder(data, self.config, 1)
        self._row = np.zeros(1, np.int64)
        self._pos = np.zeros(1, np.float64)  # the side held: -1, 0, 1
        self._entry = np.ones(1, np.float64)  # the price it was entered at (its weight drifts from there)
        self._k = 0
        self._ret = 0.0

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
        return self._obs.one(start, 0.0), self._info()

    def _info(self) -> dict[str, Any]:
        r = int(self._row[0])
        return {
            "row": r,
            "ts": int(self.data.ts[r]),
            "symbol": self.data.symbols[int(self.data.symbol_idx[r])],
            "position": float(self._pos[0]),
        }

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = int(action)
        if not self.action_space.contains(a):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        q = self.config.position_of(np.array([a]))
        p = self._pos.copy()
        t = self._row.copy()
        log_ret, cost, turnover, p_next, self._entry = self.market.transition(t, p, self._entry, q)
        fill = self.market.fill_price(t + 1, p, q)
        self._row += 1
        self._pos = p_next
        self._k += 1
        self._ret += float(log_ret[0])
        truncated = self._k >= self.episode_length
        info = self._info()
        info.update(cost=float(cost[0]), turnover=float(turnover[0]), fill_price=float(fill[0]))
        if truncated:
            info["episode_return"] = self._ret
            info["episode_length"] = self._k
        obs = self._obs.one(int(self._row[0]), float(self._pos[0]))
        return obs, float(log_ret[0]), False, bool(truncated), info
