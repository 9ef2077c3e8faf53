"""PPO training speed: `python -m tests.bench_ppo` (part of `make bench`).

Rows: benchmark, figure, reference, ratio, target, pass/fail.

- Ours: `rl.train.train` end to end, in environment steps per second of its training loop (the sum of the
  per-iteration wall times in timing.jsonl: rollouts with the numpy vector env, GAE, PPO updates, the
  validation walk, checkpoints and the run folder's files; data loading, once per run, excluded), with the
  product's defaults: 50 episodes of 1440 1m bars per iteration (72,000 steps), minibatch 256, 4 epochs,
  KL target 0.02, a BarEncoder (4 numbers per bar) in front of 64x64 tanh MLPs, separate policy and value
  networks, one torch thread; BENCH_PPO_ITERATIONS iterations (default 3), validating at the last one
  (the product validates every 5). Target: >= 15,000 steps/s on 2 CPU cores.
- stable-baselines3's PPO in the same process, on the same environment: rl.env.TradingEnv (the single env
  whose trajectories the vector env reproduces) over the same MarketData and EnvConfig, 50 of them in SB3's
  DummyVecEnv; the same network (our BarEncoder as its features extractor, not shared, then 64x64 tanh
  MLPs for pi and vf); the same rollout (1440 steps x 50 envs = one of our iterations), minibatch, epochs,
  learning rate, gamma, GAE lambda, clip range (value clipping too, as ours), entropy and value
  coefficients, gradient clipping, KL early stop (SB3 stops past 1.5 x target_kl: it is given ours / 1.5),
  torch thread count, CPU. Timed: one `learn()` of one rollout and its update. SB3 does less than ours in
  that time: no reward normalisation, no validation walk, no checkpoint. (SB3 cuts 72,000 samples into
  281 minibatches of 256 and one of 64 per epoch; ours leaves the 64 for the next epoch's shuffle.)
  Target: ours >= 10x.
- Informational: SB3 with its own defaults (8 envs x 2048 steps, minibatch 64, 10 epochs).

The data is a generated random walk (2 symbols x 20 days of 1m bars) in a temporary lake: this measures
machinery, not markets.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import lake
from lake.config import Settings
from lake.schemas import UTC_TS
from lake.writer import LakeWriter
from tests.bench import Row, print_table

SYMBOLS = ("BENCHA", "BENCHB")
DAYS = 20
ITERATIONS = int(os.environ.get("BENCH_PPO_ITERATIONS", "3"))


def random_walk(days: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = days * 1440
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ts = pa.array([t0 + dt.timedelta(minutes=i) for i in range(n)], type=UTC_TS)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pa.table(
        {
            "asset_class": ["crypto"] * n,
            "ts": ts,
            "available_at": pa.compute.add(ts, pa.scalar(dt.timedelta(minutes=1))),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": rng.uniform(0, 10, n),
            "trades": pa.array(rng.integers(0, 100, n), type=pa.int64()),
            "source_file": ["bench"] * n,
        }
    )


def build_lake(root: Path) -> None:
    from ingest.common import bar_period

    with LakeWriter.open(root) as w:
        for i, symbol in enumerate(SYMBOLS):
            table = random_walk(DAYS, i)
            ts = table.column("ts").to_pylist()
            for p in sorted({bar_period("1m", t) for t in ts}):
                mask = pa.array([bar_period("1m", t) == p for t in ts])
                part = {"source": "binance", "interval": "1m", "symbol": symbol, "period": p}
                w.write(lake.BARS, part, table.filter(mask), mode="replace")


def ours(root: Path, runs: Path) -> tuple[float, dict[str, Any]]:
    """Steps per second of `train()`'s loop (data loading excluded: it happens once per run)."""
    from rl.train import train

    result = train(
        root, Settings(), {"num_iterations": ITERATIONS, "validate_every": ITERATIONS}, runs_dir=runs
    )
    timing = [json.loads(x) for x in (result.run_dir / "timing.jsonl").read_text().splitlines()]
    seconds = sum(t["seconds"] for t in timing)
    info = json.loads((result.run_dir / "settings.json").read_text())
    return result.env_steps / seconds, info


def _bar_features() -> Any:
    """Our BarEncoder as an SB3 features extractor: the same network on both sides."""
    import gymnasium
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from rl.ppo import BarEncoder

    class BarFeatures(BaseFeaturesExtractor):
        def __init__(self, space: gymnasium.spaces.Box, window: int, n_features: int, width: int) -> None:
            extra = int(space.shape[0]) - window * n_features
            enc = BarEncoder(window, n_features, extra, width)
            super().__init__(space, enc.out_dim)
            self.enc = enc

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.enc(obs)

    return BarFeatures


def sb3(root: Path, info: dict[str, Any], *, own_defaults: bool = False) -> float:
    """Steps per second of stable-baselines3's PPO.learn on the same environment, network and sizes
    (own_defaults: SB3's own rollout, minibatch and epochs instead: 8 envs x 2048 steps, 64, 10)."""
    import torch
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rl.env import TradingEnv
    from rl.episodes import load_period
    from rl.market import EnvConfig

    BarFeatures = _bar_features()
    env_cfg = EnvConfig(**info["env"])
    data = load_period(root, Settings(), info["symbols"], info["interval"], "train", config=env_cfg)
    ppo = dict(info["ppo"])
    n_envs = int(info["num_envs"])
    n_steps = int(info["episode_length"])  # one episode per environment per rollout, as ours
    if own_defaults:
        n_envs, n_steps, ppo["batch_size"], ppo["update_epochs"] = 8, 2048, 64, 10

    def make() -> TradingEnv:
        return TradingEnv(data=data, config=env_cfg, settings=Settings())

    vec = DummyVecEnv([make] * n_envs)
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(ppo["hidden_sizes"]), "vf": list(ppo["hidden_sizes"])},
        "activation_fn": torch.nn.Tanh,
        "share_features_extractor": False,  # separate policy and value networks, as ours
    }
    if ppo["bar_width"]:
        policy_kwargs["features_extractor_class"] = BarFeatures
        policy_kwargs["features_extractor_kwargs"] = {
            "window": env_cfg.window,
            "n_features": data.features.shape[1],
            "width": int(ppo["bar_width"]),
        }
    model = SB3PPO(
        "MlpPolicy",
        vec,
        learning_rate=ppo["learning_rate"],
        n_steps=n_steps,
        batch_size=ppo["batch_size"],
        n_epochs=ppo["update_epochs"],
        gamma=ppo["gamma"],
        gae_lambda=ppo["gae_lambda"],
        clip_range=ppo["clip_coef"],
        ent_coef=ppo["ent_coef"],
        vf_coef=ppo["vf_coef"],
        max_grad_norm=ppo["max_grad_norm"],
        clip_range_vf=ppo["clip_coef"] if ppo["clip_vloss"] else None,
        # SB3 stops an update once the KL exceeds 1.5 x target_kl; ours once it exceeds target_kl
        target_kl=ppo["target_kl"] / 1.5 if ppo["target_kl"] else None,
        policy_kwargs=policy_kwargs,
        device="cpu",
        seed=0,
        verbose=0,
    )
    total = n_envs * n_steps
    t = time.perf_counter()
    model.learn(total_timesteps=total)
    return total / (time.perf_counter() - t)


def rows() -> list[Row]:
    """The learner's rows of `make bench`."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        build_lake(root)
        ours_sps, info = ours(root, Path(tmp) / "runs")
        torch.set_num_threads(int(info["torch_threads"]))
        ref_sps = sb3(root, info)
        own_sps = sb3(root, info, own_defaults=True)
    cores = os.cpu_count()
    return [
        Row(
            f"PPO train loop, env steps/s ({cores} cores)",
            f"{ours_sps:,.0f}/s",
            "",
            None,
            ">= 15,000/s",
            ours_sps >= 15_000,
        ),
        Row(
            "PPO steps/s: ours / stable-baselines3 (same env, network, settings)",
            f"{ours_sps:,.0f}/s",
            f"SB3 {ref_sps:,.0f}/s",
            ours_sps / ref_sps,
            ">= 10x",
            ours_sps / ref_sps >= 10,
        ),
        Row(
            "  (SB3 with its own defaults: minibatch 64, 10 epochs)",
            f"{ours_sps:,.0f}/s",
            f"SB3 {own_sps:,.0f}/s",
            ours_sps / own_sps,
            "",
            None,
        ),
    ]


def main() -> None:
    print_table(rows())


if __name__ == "__main__":
    main()
