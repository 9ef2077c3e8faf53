"""The training run (rl/train.py) end to end on a small lake the test builds: run folder, reproducibility,
model choice on validation, the test period never read, Ctrl-C; and the learner on real-looking bars with a
deliberate look-ahead leak (tests only) to show that it learns."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

import lake
import rl.train
from features.splits import load_splits
from ingest.common import bar_period
from ingest.sessions import land
from lake.config import Settings
from lake.errors import ConfigError, MarketlakeError
from rl.baselines import buy_and_hold
from rl.episodes import MarketData, load_period
from rl.market import EnvConfig
from rl.ppo import PPO, PPOConfig, greedy_policy, seed_everything
from rl.train import load_policy, read_run, read_train_settings, train
from rl.vector import VecTradingEnv
from rl.walk import walk
from tests.conftest import bars_table

UTC = dt.UTC
START = dt.datetime(2024, 3, 1, tzinfo=UTC)

# a tiny run: a few seconds
TINY: dict[str, Any] = {
    "num_iterations": 4,
    "episodes_per_iteration": 6,
    "batch_size": 64,
    "validate_every": 2,
    "window": 8,
    "episode_length": 48,
    "hidden_sizes": [16, 16],
}


def price_path(n: int, seed: int, start: float) -> list[float]:
    """A random walk with volatility that changes over the day (minute returns of about 0.05-0.15%)."""
    rng = np.random.default_rng(seed)
    vol = 0.001 * (1.0 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, n)))
    return [float(x) for x in start * np.exp(np.cumsum(rng.normal(0, 1, n) * vol))]


def write(root: Path, symbol: str, table: pa.Table) -> None:
    ts = table.column("ts").to_pylist()
    with land(root) as w:
        for p in sorted({bar_period("1m", t) for t in ts}):
            mask = pa.array([bar_period("1m", t) == p for t in ts])
            part = {"source": "binance", "interval": "1m", "symbol": symbol, "period": p}
            w.write(lake.BARS, part, table.filter(mask), mode="merge")


CUT = 1440 + 16 * 60 + 30  # bar 40.5 hours in: in the embargo between validation and test


def build_lake(root: Path, *, test_seed: int = 7) -> None:
    """Two eligible symbols over two days of 1m bars, one too short to be eligible. The bars from CUT on
    (the end of the embargo before the test period, and the test period) come from `test_seed`."""
    n = 2 * 1440
    cut = CUT
    for symbol, seed, start in (("BTCUSDT", 1, 60_000.0), ("ETHUSDT", 2, 3_000.0)):
        head = price_path(n, seed, start)[:cut]
        tail = price_path(n - cut + 1, seed * 100 + test_seed, head[-1])[1:]
        write(root, symbol, bars_table(START, head + tail, source_file=f"{symbol}.zip"))
    write(root, "SOLUSDT", bars_table(START, price_path(300, 3, 100.0), source_file="SOLUSDT.zip"))


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake") / "lake"
    build_lake(root)
    return root


def run_tiny(root: Path, runs: Path, **kw: Any) -> rl.train.TrainResult:
    overrides = TINY | kw.pop("overrides", {})
    return train(root, Settings(), overrides, runs_dir=runs, **kw)


def test_a_tiny_run_end_to_end(small_lake: Path, tmp_path: Path) -> None:
    said: list[str] = []
    result = run_tiny(small_lake, tmp_path / "runs", say=said.append, progress=True)
    text = "\n".join(said)
    assert result.status == "finished" and result.exit_code == 0
    assert result.symbols == ["BTCUSDT", "ETHUSDT"] and "SOLUSDT" in result.skipped
    assert "skipped SOLUSDT" in text and "BTCUSDT" in text and result.run_id in said[-1]
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "runs" and run_dir.name == result.run_id
    for name in ("settings.json", "norm.json", "metrics.jsonl", "timing.jsonl", "status.json"):
        assert (run_dir / name).is_file(), name
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [1, 2, 3, 4]
    assert all(m["episodes"] >= 6 and m["env_steps"] >= 6 * 48 for m in metrics)
    validated = [m for m in metrics if "val_score" in m]
    assert [m["iteration"] for m in validated] == [2, 4]
    best = max(validated, key=lambda m: m["val_score"])
    assert result.best_iteration == best["iteration"] and result.best_score == best["val_score"]
    assert result.best_checkpoint == run_dir / "checkpoints" / "best.pt" and result.best_checkpoint.is_file()
    info = read_run(run_dir)
    assert info["status"]["status"] == "finished" and info["status"]["best_iteration"] == best["iteration"]
    assert info["torch_threads"] == torch.get_num_threads() == 1
    assert info["ppo"]["num_iterations"] == 4 and info["env"]["window"] == 8
    assert set(info["periods"]) == {"train", "validation"}
    # the chosen policy, as the evaluation loads it: deterministic, and it scores what training recorded
    policy, env, norm = load_policy(run_dir)
    assert env.window == 8 and norm.feature_names
    val = load_period(small_lake, Settings(), result.symbols, "1m", "validation", norm, config=env)
    w1, w2 = walk(val, env, policy), walk(val, env, policy)
    assert np.array_equal(w1.position, w2.position)
    score = rl.train.validation_score(val, env, policy)["score"]
    assert score == pytest.approx(best["val_score"], rel=1e-9, abs=1e-12)


def test_the_default_runs_folder_is_beside_the_lake(small_lake: Path, tmp_path: Path) -> None:
    assert rl.train.default_runs_dir(small_lake) == small_lake.parent / "runs"
    s = Settings(train={"runs_dir": str(tmp_path / "elsewhere")})
    _, _, opts = read_train_settings(s)
    assert opts.runs_dir == str(tmp_path / "elsewhere")


def _metrics(result: rl.train.TrainResult) -> str:
    return (result.run_dir / "metrics.jsonl").read_text()


def test_same_seed_same_metrics_other_seed_other_trajectory(small_lake: Path, tmp_path: Path) -> None:
    a = run_tiny(small_lake, tmp_path / "a", overrides={"num_iterations": 2})
    b = run_tiny(small_lake, tmp_path / "b", overrides={"num_iterations": 2})
    c = run_tiny(small_lake, tmp_path / "c", overrides={"num_iterations": 2, "seed": 1})
    assert _metrics(a) == _metrics(b)
    ma = [json.loads(x) for x in _metrics(a).splitlines()]
    mc = [json.loads(x) for x in _metrics(c).splitlines()]
    assert ma[0]["mean_return"] != mc[0]["mean_return"] and ma[-1]["policy_loss"] != mc[-1]["policy_loss"]


def test_the_test_period_is_never_read(
    small_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training loads the train and validation periods only (a spy on the episode source and its recorded
    queries), trains on train rows only, walks only the validation rows, and a lake whose test-period bars
    differ gives the same metrics bit for bit."""
    loaded: list[MarketData] = []
    envs: list[MarketData] = []
    walked: list[MarketData] = []
    real_load, real_walk, real_env = rl.train.load_period, rl.train.walk, rl.train.VecTradingEnv

    def spy_load(*args: Any, **kw: Any) -> MarketData:
        d = real_load(*args, **kw)
        loaded.append(d)
        return d

    def spy_walk(data: MarketData, *args: Any) -> Any:
        walked.append(data)
        return real_walk(data, *args)

    def spy_env(data: MarketData, *args: Any, **kw: Any) -> VecTradingEnv:
        envs.append(data)
        return real_env(data, *args, **kw)

    monkeypatch.setattr(rl.train, "load_period", spy_load)
    monkeypatch.setattr(rl.train, "walk", spy_walk)
    monkeypatch.setattr(rl.train, "VecTradingEnv", spy_env)
    result = run_tiny(small_lake, tmp_path / "runs")
    assert [d.period for d in loaded] == ["train", "validation"]
    assert [d.period for d in envs] == ["train"] and all(d.period == "validation" for d in walked) and walked
    con = lake.connect(small_lake, read_only=True, settings=Settings())
    periods = {p.name: p for p in load_splits(con)}
    con.close()
    test_bounds = {periods["test"].start_at.isoformat(), periods["test"].end_at.isoformat()}
    for d in loaded:
        for q in d.queries:
            assert "'test'" not in q and not any(b in q for b in test_bounds), q
    test_start_us = int(periods["test"].start_at.timestamp() * 1e6)
    assert all(int(d.available_at.max()) < test_start_us for d in loaded)

    # the same lake but other test-period prices: training cannot tell
    assert periods["validation"].end_at <= START + dt.timedelta(minutes=CUT) < periods["test"].start_at
    other = tmp_path / "other" / "lake"
    build_lake(other, test_seed=8)
    con = lake.connect(other, read_only=True, settings=Settings())
    assert {p.name: p for p in load_splits(con)} == periods
    changed = con.sql(
        "SELECT count(*) FROM bars WHERE ts >= $s", params={"s": periods["test"].start_at}
    ).fetchone()
    con.close()
    assert changed and changed[0] > 0
    monkeypatch.undo()
    again = run_tiny(other, tmp_path / "runs2")
    assert _metrics(again) == _metrics(result)


def test_ctrl_c_keeps_the_best_checkpoint_and_records_the_interruption(
    small_lake: Path, tmp_path: Path
) -> None:
    def stop_at_3(stats: Any) -> None:
        if stats.iteration == 3:
            raise KeyboardInterrupt

    said: list[str] = []
    result = run_tiny(small_lake, tmp_path / "runs", on_iteration=stop_at_3, say=said.append)
    assert result.status == "interrupted" and result.exit_code == 130
    assert result.iterations == 3 and result.best_iteration == 2
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["best_iteration"] == 2
    assert len((result.run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert "interrupted" in "\n".join(said)
    policy, _, _ = load_policy(result.run_dir)  # the kept checkpoint loads
    assert policy(
        np.zeros((2, json.loads((result.run_dir / "settings.json").read_text())["obs_dim"]), np.float32)
    ).shape == (2,)


def test_an_interruption_before_any_validation_keeps_no_checkpoint(small_lake: Path, tmp_path: Path) -> None:
    def stop(stats: Any) -> None:
        raise KeyboardInterrupt

    result = run_tiny(small_lake, tmp_path / "runs", on_iteration=stop)
    assert result.status == "interrupted" and result.best_checkpoint is None
    with pytest.raises(MarketlakeError, match="no checkpoint"):
        load_policy(result.run_dir)


@pytest.mark.parametrize("key", ["num_iteration", "comission"])
def test_an_unknown_train_key_is_named(key: str) -> None:
    with pytest.raises(ConfigError, match=repr(key)):
        read_train_settings(Settings(train={key: 1}))


def test_settings_split_and_overrides() -> None:
    s = Settings(train={"num_iterations": 3, "commission": 0.002, "symbols": ["BTCUSDT"], "seed": 4})
    ppo, env, opts = read_train_settings(s, {"seed": 9, "interval": "1h", "device": None})
    assert (ppo.num_iterations, ppo.seed, ppo.device) == (3, 9, "auto")
    assert env.commission == 0.002 and opts.symbols == ["BTCUSDT"] and opts.interval == "1h"
    with pytest.raises(ConfigError, match="'batch_size'"):
        read_train_settings(s, {"batch_size": "big"})


# --- the learner learns: a deliberate leak of the next bar's return (tests only) ----------------------------


def leaky(data: MarketData) -> MarketData:
    """A copy whose first feature at row t is the return of bar t+1 (open to close), the bar a decision at t
    holds its new position over: look-ahead on purpose, to test the learner, never in the product."""
    nxt = np.zeros(data.n_rows)
    nxt[:-1] = data.close[1:] / data.open[1:] - 1.0
    same_segment = np.zeros(data.n_rows, dtype=bool)
    same_segment[:-1] = data.segment_id[1:] == data.segment_id[:-1]
    nxt[~same_segment] = 0.0
    features = data.features.copy()
    features[:, 0] = np.clip(nxt / nxt.std(), -5, 5)
    return dataclasses.replace(data, features=features)


def learn_on_leak(root: Path, flip: bool) -> tuple[float, float, float]:
    """(PPO's, buy-and-hold's and the leak-oracle's total log return over the train period's walk)."""
    env_cfg = EnvConfig(window=4, episode_length=64, commission=0.0, slippage_bps=0.0)
    data = leaky(load_period(root, Settings(), None, "1m", "train", config=env_cfg))
    cfg = PPOConfig().replace_from(
        {
            "num_iterations": 8,
            "episodes_per_iteration": 16,
            "batch_size": 128,
            "learning_rate": 1e-3,
            "seed": 0,
        }
    )
    seed_everything(cfg.seed, 1)
    envs = VecTradingEnv(data, env_cfg, cfg.envs, seed=cfg.seed)
    ppo = PPO(envs, cfg, torch.device("cpu"), layout=(env_cfg.window, data.features.shape[1]))
    ppo.flip_advantages = flip
    for _ in range(cfg.num_iterations):
        ppo.iterate()
    agent = float(walk(data, env_cfg, greedy_policy(ppo.agent, ppo.device)).log_return.sum())
    hold = float(walk(data, env_cfg, buy_and_hold(env_cfg)).log_return.sum())
    column = (env_cfg.window - 1) * data.features.shape[1]  # feature 0 of the decision row

    def oracle(obs: np.ndarray) -> np.ndarray:
        return (obs[:, column] > 0).astype(np.int64)

    best = float(walk(data, env_cfg, oracle).log_return.sum())
    return agent, hold, best


def test_the_learner_beats_buy_and_hold_with_a_leak_and_a_broken_one_does_not(small_lake: Path) -> None:
    agent, hold, best = learn_on_leak(small_lake, flip=False)
    assert best > hold + 0.05  # the leak is worth something on these bars
    assert agent > hold + 0.6 * (best - hold), (agent, hold, best)
    broken, _, _ = learn_on_leak(small_lake, flip=True)
    assert broken < hold + 0.6 * (best - hold), (broken, hold, best)


def test_an_empty_validation_period_keeps_the_last_checkpoint(
    small_lake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = START.date()
    # an embargo of a whole day right after train leaves the validation period empty
    s = Settings(
        split_method="date", train_end=day, validation_end=day + dt.timedelta(days=1), embargo_days=1
    )
    said: list[str] = []
    with caplog.at_level("WARNING", logger="marketlake.train"):
        result = train(small_lake, s, TINY, runs_dir=tmp_path / "runs", say=said.append)
    assert result.status == "finished", said
    assert any(x.startswith("validation: the validation period") for x in said), said
    # a fact that changes the run: a warning (shown even with --quiet), not progress
    warned = [r.getMessage() for r in caplog.records if r.name == "marketlake.train"]
    assert any("validation period" in w and "the last checkpoint is kept" in w for w in warned), warned
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    assert set(read_run(result.run_dir)["periods"]) == {"train"}


def test_a_ctrl_c_just_after_best_pt_was_replaced_records_what_best_pt_holds(
    small_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = rl.train.save_checkpoint

    def then_ctrl_c(path: Path, agent: Any, iteration: int, score: float) -> None:
        real(path, agent, iteration, score)
        if path.name == "best.pt":  # before the run's state says so
            raise KeyboardInterrupt

    monkeypatch.setattr(rl.train, "save_checkpoint", then_ctrl_c)
    result = run_tiny(small_lake, tmp_path / "runs")
    assert result.status == "interrupted"
    held = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=True)
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["best_iteration"] == held["iteration"] == result.best_iteration == 2, status
    assert status["iterations"] == result.iterations == 2, status  # the iteration it validated counts
    assert result.best_checkpoint is not None and result.best_checkpoint.name == "best.pt"


def test_a_validation_period_no_model_can_be_scored_on_is_said(
    small_lake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    said: list[str] = []
    # a window longer than any run of validation bars: no decision bar there (train still has room)
    with caplog.at_level("WARNING", logger="marketlake.train"):
        result = run_tiny(small_lake, tmp_path / "runs", overrides={"window": 500}, say=said.append)
    assert result.status == "finished"
    # no model choice changes the run: a warning (shown even with --quiet), not progress
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "marketlake.train")
    assert "no model can be scored on it: the last checkpoint is kept" in text, text
    assert result.best_iteration == TINY["num_iterations"]


def test_a_ctrl_c_before_the_first_validation_names_when_it_would_have_been(
    small_lake: Path, tmp_path: Path
) -> None:
    def stop(stats: Any) -> None:
        raise KeyboardInterrupt

    said: list[str] = []
    overrides = {"num_iterations": 2, "validate_every": 5}  # the last iteration validates too
    run_tiny(small_lake, tmp_path / "runs", overrides=overrides, on_iteration=stop, say=said.append)
    assert "no checkpoint yet (the first validation is at iteration 2)" in "\n".join(said), said
