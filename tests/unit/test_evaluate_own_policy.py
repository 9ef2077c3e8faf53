"""A policy of one's own judged beside the baselines (rl.evaluate.evaluate_policy, and evaluate's policy=
path), with the trading settings the env builds from the same settings and keywords; the baselines on one
observation or a batch. The lake: real SPY daily bars (samples/, conftest.spy_daily_lake)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

import rl
from lake.config import Settings
from lake.errors import MarketlakeError
from rl import ENV_ID, runlog
from rl.baselines import buy_and_hold, flat, random_policy
from rl.env import TradingEnv
from rl.evaluate import evaluate, evaluate_policy
from rl.market import EnvConfig

SPY: dict[str, Any] = {"symbols": ["SPY"], "interval": "1d"}


def trading_env(**kw: Any) -> TradingEnv:
    env = gymnasium.make(ENV_ID, **SPY, **kw).unwrapped
    assert isinstance(env, TradingEnv)
    return env


def momentum(window: int) -> Any:
    """Long when the latest row's ret_1 (normalised) is positive: a policy written by hand from the
    documented layout (time-major, oldest row first, rl.FEATURES per row)."""
    f = len(rl.FEATURES)
    col = (window - 1) * f + rl.FEATURES.index("ret_1")

    def policy(obs: np.ndarray) -> np.ndarray:
        return (obs[:, col] > 0).astype(np.int64)

    return policy


def test_evaluate_with_a_policy_trades_with_the_settings_trading_keys_as_the_env_does(
    spy_daily_lake: Path, tmp_path: Path
) -> None:
    """[train] commission = 0.01 and window = 20 in the settings: the env trades with them, and so must an
    evaluation of a policy with those settings (it used EnvConfig() before: window 32, commission 0.001)."""
    settings = Settings(train={"commission": 0.01, "window": 20})
    env = trading_env(lake=spy_daily_lake, period="train", settings=settings)
    assert env.config.window == 20 and env.config.commission == 0.01
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    seen: list[int] = []

    def policy(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.shape[1])
        return momentum(20)(obs)

    kw: dict[str, Any] = {"policy": policy, "record": False, "resamples": 400}
    report = evaluate(spy_daily_lake, settings, run_dir, "test", **SPY, **kw)
    assert report.env == env.config.to_dict()
    assert set(seen) == {env.observation_space.shape[0]}  # type: ignore[index]

    with pytest.warns(UserWarning, match="no training record"):
        own = evaluate_policy(
            momentum(20), spy_daily_lake, period="test", settings=settings, resamples=400, **SPY
        )
    assert own.env == env.config.to_dict()
    assert own.metrics == report.metrics
    # keywords as the env's keywords: the same EnvConfig as gymnasium.make with them
    more: dict[str, Any] = {"window": 12, "commission": 0.0005, "slippage": "range", "allow_short": True}
    env2 = trading_env(lake=spy_daily_lake, period="train", settings=settings, **more)
    with pytest.warns(UserWarning):
        other = evaluate_policy(momentum(12), spy_daily_lake, settings=settings, resamples=400, **SPY, **more)
    assert other.env == env2.config.to_dict()
    with pytest.raises(MarketlakeError, match="windw"):
        evaluate_policy(momentum(12), spy_daily_lake, settings=settings, windw=3, **SPY)


def test_a_hand_written_policy_is_judged_beside_the_baselines_and_writes_only_where_asked(
    spy_daily_lake: Path, tmp_path: Path
) -> None:
    settings = Settings()
    train = trading_env(lake=spy_daily_lake, period="train", settings=settings)
    window = train.config.window
    trained = {"train": train.data.bounds}
    files_before = sorted(p.name for p in tmp_path.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trained_on given, test period: nothing to warn about
        report = evaluate_policy(
            momentum(window), spy_daily_lake, period="test", settings=settings, trained_on=trained, **SPY
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before  # no out: nothing written
    assert report.json_path is None and report.png_path is None
    assert runlog.list_runs(spy_daily_lake) == []  # nothing recorded in the lake
    by = report.metrics["SPY"]
    assert set(by) == {"agent", "buy_and_hold", "flat", "random"}
    assert by["agent"].bars == by["buy_and_hold"].bars > 300
    assert by["flat"].total_return == 0.0 and by["buy_and_hold"].trades == 1
    assert by["agent"].trades > 10 and by["agent"].total_return != by["buy_and_hold"].total_return
    assert report.sharpe_ci["SPY"] is not None and report.parent_run_id is None

    # buy-and-hold written by hand is judged exactly as the baseline
    hold = evaluate_policy(
        lambda obs: np.ones(len(obs), np.int64), spy_daily_lake, settings=settings, trained_on=trained, **SPY
    )
    assert hold.metrics["SPY"]["agent"] == hold.metrics["SPY"]["buy_and_hold"]

    out = tmp_path / "reports" / "momentum"
    written = evaluate_policy(
        momentum(window), spy_daily_lake, settings=settings, trained_on=trained, out=out, **SPY
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation-test.json",
        "evaluation-test.parquet",
        "evaluation-test.png",
    ]
    assert written.json_path == out / "evaluation-test.json" and written.metrics == report.metrics
    assert runlog.list_runs(spy_daily_lake) == []


def test_the_guard_keeps_a_policy_clear_of_what_it_was_trained_on(spy_daily_lake: Path) -> None:
    """A policy trained up to a time inside the lake's test period (the lake's periods moved since): judged
    only after that time plus the embargo; on validation, a warning that it is not out of sample."""
    settings = Settings()
    test = trading_env(lake=spy_daily_lake, period="test", settings=settings)
    start = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(test.data.bounds[0]))
    trained_until = start + dt.timedelta(days=90)
    report = evaluate_policy(
        momentum(test.config.window),
        spy_daily_lake,
        settings=settings,
        trained_on={"train": (start - dt.timedelta(days=2000), trained_until.isoformat())},
        **SPY,
    )
    assert report.evaluated_from is not None
    assert dt.datetime.fromisoformat(report.evaluated_from) >= trained_until
    assert report.span is not None and dt.datetime.fromisoformat(report.span[0]) >= trained_until
    assert "trained and chose its model on" in report.clear_of_training
    with pytest.warns(UserWarning, match="not out of sample"):
        evaluate_policy(
            momentum(test.config.window),
            spy_daily_lake,
            period="validation",
            settings=settings,
            trained_on={"train": (start - dt.timedelta(days=2000), start - dt.timedelta(days=1000))},
            **SPY,
        )
    with pytest.raises(MarketlakeError, match="trained_on"):
        evaluate_policy(momentum(32), spy_daily_lake, settings=settings, trained_on={"train": "soon"}, **SPY)
    with pytest.raises(MarketlakeError, match="training run's folder"):
        evaluate_policy(momentum(32), spy_daily_lake, settings=settings, trained_on=Path("nowhere"), **SPY)


def test_baselines_take_one_observation_or_a_batch() -> None:
    cfg = EnvConfig(allow_short=True)
    one = np.zeros(7, np.float32)
    batch = np.zeros((5, 7), np.float32)
    for policy, want in ((flat(cfg), 0), (buy_and_hold(cfg), 1)):
        a = policy(one)
        assert a.shape == () and a.dtype == np.int64 and int(a) == want
        assert policy(batch).tolist() == [want] * 5 and policy(batch).dtype == np.int64
    r = random_policy(cfg, 3)
    a = r(one)
    assert a.shape == () and a.dtype == np.int64 and 0 <= int(a) < 3
    assert r(batch).shape == (5,)
    # the same stream as before for batches (the random baseline's results do not move)
    assert random_policy(cfg, 3)(batch).tolist() == np.random.default_rng(3).integers(0, 3, 5).tolist()
    with pytest.raises(ValueError, match="one observation"):
        flat(cfg)(np.zeros((2, 3, 4)))


def test_a_settings_file_or_an_envconfig_as_config_is_taken_as_the_env_takes_it(
    spy_daily_lake: Path, tmp_path: Path
) -> None:
    """config= is one of the env's keywords: a settings file's path (read instead of settings=) or an
    EnvConfig; evaluate_policy refused both (unknown setting config) while gymnasium.make took them."""
    toml = tmp_path / "demo.toml"
    toml.write_text("[train]\nwindow = 20\ncommission = 0.002\n")
    env = trading_env(lake=spy_daily_lake, period="train", config=str(toml))
    assert env.config.window == 20 and env.config.commission == 0.002
    with pytest.warns(UserWarning, match="no training record"):
        by_file = evaluate_policy(
            momentum(20), spy_daily_lake, period="test", config=str(toml), resamples=400, **SPY
        )
    assert by_file.env == env.config.to_dict()
    with pytest.warns(UserWarning):
        by_path = evaluate_policy(momentum(20), spy_daily_lake, config=toml, resamples=400, **SPY)
    assert by_path.metrics == by_file.metrics
    own = EnvConfig(window=12, commission=0.0005)
    env2 = trading_env(lake=spy_daily_lake, period="train", config=own)
    with pytest.warns(UserWarning):
        by_config = evaluate_policy(momentum(12), spy_daily_lake, config=own, resamples=400, **SPY)
    assert by_config.env == env2.config.to_dict() == own.to_dict()
    with pytest.raises(MarketlakeError, match="not both"):
        evaluate_policy(momentum(20), spy_daily_lake, settings=Settings(), config=str(toml), **SPY)


def test_without_out_the_per_step_table_is_not_even_built(
    spy_daily_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """out=None writes nothing, so the steps (a row per step of every policy, per symbol and overall) are not
    made at all; and the report never holds them (the file is read back, not kept in memory)."""
    import rl.evaluate as ev

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the per-step table was built though nothing is written")

    monkeypatch.setattr(ev, "steps_table", refuse, raising=False)
    monkeypatch.setattr(ev, "step_tables", refuse, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning):
        report = evaluate_policy(momentum(20), spy_daily_lake, settings=Settings(), resamples=400, **SPY)
    assert report.steps_path is None and not hasattr(report, "steps")
    assert list(tmp_path.iterdir()) == []
