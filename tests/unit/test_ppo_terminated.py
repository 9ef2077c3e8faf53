"""PPO's rollout on a vector env whose accounts are ruined: a terminated step (a true terminal state) keeps
its raw reward, with no value bootstrapped past it; a truncated step gets gamma * V(final obs) added; the
rollout's dones are terminated | truncated."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rl.episodes import market_data_from_arrays
from rl.market import EnvConfig
from rl.ppo import PPO, PPOConfig
from rl.vector import VecTradingEnv


def test_terminated_steps_are_not_bootstrapped_and_truncated_ones_are() -> None:
    # four segments in which a short entered at 100 is wiped out by a gap to 210 (and longs are not)
    opens = np.array([100, 100, 100, 100, 210, 220, 230] * 4, float)
    closes = np.array([100, 100, 100, 150, 215, 225, 235] * 4, float)
    n = len(closes)
    data = market_data_from_arrays(
        opens,
        np.maximum(opens, closes),
        np.minimum(opens, closes),
        closes,
        np.linspace(-1, 1, 2 * n).reshape(n, 2),
        segment_id=np.repeat(np.arange(4), 7),
    )
    cfg = EnvConfig(window=3, episode_length=4, allow_short=True, commission=0.0, slippage_bps=0.0)
    env = VecTradingEnv(data, cfg, 4, seed=0)
    config = PPOConfig().replace_from(
        {"num_envs": 4, "episodes_per_iteration": 40, "norm_reward": False, "seed": 1, "batch_size": 16}
    )
    ppo = PPO(env, config, torch.device("cpu"))
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    step = env.step

    def logged(actions: np.ndarray) -> Any:
        out = step(actions)
        seen.append((out[1].copy(), np.asarray(out[2]).copy(), np.asarray(out[3]).copy()))
        return out

    env.step = logged  # type: ignore[method-assign]
    rollout = ppo.collect()
    rewards = rollout.rewards.numpy()
    terminated = truncated = 0
    for t, (raw, term, trunc) in enumerate(seen):
        for i in range(4):
            assert not (term[i] and trunc[i])
            if term[i]:
                terminated += 1
                assert rewards[t, i] == np.float32(raw[i]), (t, i)  # nothing bootstrapped past a ruin
            elif trunc[i]:
                truncated += 1
                assert rewards[t, i] != np.float32(raw[i]), (t, i)  # gamma * V(final obs) added
    assert terminated > 0 and truncated > 0, (terminated, truncated)
    dones = np.array([term | trunc for _, term, trunc in seen], np.float32)
    np.testing.assert_array_equal(rollout.dones.numpy(), dones)
