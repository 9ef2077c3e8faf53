"""`hold_overnight = false` with bars of a day or longer is refused by one rule (EnvConfig.check_interval) at
every entry point where the trading settings and the interval meet, with the same one-line message, before
the lake is read. Before, only `marketlake train` refused it: everywhere else every daily bar was a session
end and every position was closed the bar it opened (buy-and-hold AAPL -61% with 1,234 turnover for +52.6%).
The lake: real SPY daily bars (samples/, conftest.spy_daily_lake)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

from lake.config import Settings
from lake.errors import ConfigError
from rl import ENV_ID
from rl.env import TradingEnv
from rl.episodes import market_data_from_arrays
from rl.evaluate import evaluate, evaluate_policy
from rl.market import EnvConfig, Market
from rl.vector import VecTradingEnv, make_vec_env

SAYS = (
    "hold_overnight = false with interval 1d: false closes a stock position at its session's last bar, and a "
    "bar of a day or longer is always its session's last (it holds the whole session), so every stock "
    "position would be closed the bar it opens (crypto has no session end: the setting does nothing for it); "
    "hold_overnight = false needs intraday bars (1m, 5m, 15m or 1h)"
)
KW: dict[str, Any] = {"symbols": ["SPY"], "interval": "1d", "settings": Settings(), "window": 10}


@pytest.fixture
def no_read(periods_read: list[str]) -> list[str]:
    """The periods read from the lake (refused before any)."""
    return periods_read


def _refused(exc: pytest.ExceptionInfo[ConfigError], interval: str = "1d") -> None:
    assert str(exc.value) == SAYS.replace("interval 1d", f"interval {interval}")
    assert "\n" not in str(exc.value)


def _hold(obs: np.ndarray) -> np.ndarray:
    return np.ones(obs.shape[:-1], np.int64)


def test_the_rule_refuses_a_day_or_longer_and_allows_intraday_bars() -> None:
    cfg = EnvConfig(hold_overnight=False)
    for interval in ("1d", "1w", "2d"):
        with pytest.raises(ConfigError) as exc:
            cfg.check_interval(interval)
        _refused(exc, interval)
    with pytest.raises(ConfigError, match=r"^mine.toml \[train\]: hold_overnight = false with interval 1d: "):
        cfg.check_interval("1d", "mine.toml [train]")
    for interval in ("1m", "5m", "15m", "1h", "4h"):
        cfg.check_interval(interval)
    EnvConfig().check_interval("1d")  # held overnight: daily bars are fine


def test_gymnasium_make_refuses_it_before_reading_the_lake(spy_daily_lake: Path, no_read: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        gymnasium.make(ENV_ID, lake=spy_daily_lake, period="train", hold_overnight=False, **KW)
    _refused(exc)
    assert no_read == []
    env = gymnasium.make(ENV_ID, lake=spy_daily_lake, period="train", **KW)  # held overnight: made
    assert no_read == ["train"] and env.unwrapped.config.hold_overnight  # type: ignore[attr-defined]


def test_the_vector_env_refuses_it_by_make_vec_and_make_vec_env(
    spy_daily_lake: Path, no_read: list[str]
) -> None:
    with pytest.raises(ConfigError) as exc:
        gymnasium.make_vec(ENV_ID, num_envs=2, lake=spy_daily_lake, hold_overnight=False, **KW)
    _refused(exc)
    with pytest.raises(ConfigError) as exc:
        make_vec_env(2, spy_daily_lake, period="train", hold_overnight=False, **KW)
    _refused(exc)
    assert no_read == []


def test_a_settings_file_saying_it_is_refused(
    spy_daily_lake: Path, tmp_path: Path, no_read: list[str]
) -> None:
    config = tmp_path / "mine.toml"
    config.write_text('[train]\ninterval = "1d"\nhold_overnight = false\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        gymnasium.make(ENV_ID, lake=spy_daily_lake, symbols=["SPY"], interval="1d", config=config)
    _refused(exc)
    with pytest.raises(ConfigError) as exc:
        make_vec_env(2, spy_daily_lake, ["SPY"], "1d", config=config)
    _refused(exc)
    with pytest.raises(ConfigError) as exc:
        evaluate_policy(_hold, spy_daily_lake, ["SPY"], "1d", config=config)
    _refused(exc)
    assert no_read == []


def test_evaluations_refuse_it(spy_daily_lake: Path, tmp_path: Path, no_read: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        evaluate_policy(_hold, spy_daily_lake, period="test", hold_overnight=False, **KW)
    _refused(exc)
    with pytest.raises(ConfigError) as exc:
        evaluate_policy(
            _hold, spy_daily_lake, ["SPY"], "1d", config=EnvConfig(window=10, hold_overnight=False)
        )
    _refused(exc)
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    with pytest.raises(ConfigError) as exc:
        evaluate(
            spy_daily_lake, Settings(), run_dir, "test", policy=_hold, symbols=["SPY"], interval="1d",
            env_config=EnvConfig(window=10, hold_overnight=False), record=False,
        )  # fmt: skip
    _refused(exc)
    assert no_read == []


def test_arrays_given_as_they_are_are_refused_by_the_market() -> None:
    n = 40
    closes = 100.0 + np.arange(n, dtype=float)
    data = market_data_from_arrays(
        closes, closes + 1, closes - 1, closes, np.zeros((n, 2)), interval="1d", asset_classes=["stock"],
        session_end=np.ones(n, bool),
    )  # fmt: skip
    cfg = EnvConfig(window=3, hold_overnight=False)
    for make in (
        lambda: Market(data, cfg),
        lambda: TradingEnv(data=data, config=cfg),
        lambda: VecTradingEnv(data, cfg, 2),
    ):
        with pytest.raises(ConfigError) as exc:
            make()
        _refused(exc)
    Market(data, EnvConfig(window=3))  # held overnight: fine
