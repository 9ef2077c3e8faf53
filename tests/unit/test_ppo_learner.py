"""The learner alone, on a tiny numpy vector env: settings, GAE, truncation bootstrap, learning, seeds.

The trading environment is not needed here: `CueEnv` is a contextual bandit with episodes (the observation
says which action pays), enough to tell a learner that learns from one that does not.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from lake.errors import ConfigError, MarketlakeError
from rl.ppo import PPO, Agent, PPOConfig, Rollout, RunningStd, seed_everything


class CueEnv:
    """N episodes of `length` steps; the observation's first entry is +1 or -1 and action 1 pays +1 when it
    is +1, action 0 pays +1 when it is -1 (otherwise -1). Episodes end truncated (a time limit)."""

    def __init__(self, num_envs: int, length: int = 20, obs_dim: int = 6, seed: int = 0) -> None:
        self.num_envs, self.length, self.obs_dim = num_envs, length, obs_dim
        self.single_observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.ret = np.zeros(num_envs)
        self.obs = np.zeros((num_envs, obs_dim), dtype=np.float32)

    def _draw(self, rows: np.ndarray) -> None:
        self.obs[rows] = self.rng.normal(size=(len(rows), self.obs_dim)).astype(np.float32) * 0.3
        self.obs[rows, 0] = self.rng.choice([-1.0, 1.0], size=len(rows))

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t[:] = 0
        self.ret[:] = 0
        self._draw(np.arange(self.num_envs))
        return self.obs.copy(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        want = (self.obs[:, 0] > 0).astype(np.int64)
        reward = np.where(actions == want, 1.0, -1.0).astype(np.float32)
        self.ret += reward
        self.t += 1
        truncated = self.t >= self.length
        terminated = np.zeros(self.num_envs, dtype=bool)
        ep_ret = np.where(truncated, self.ret, np.nan)
        ep_len = np.where(truncated, self.t, 0)
        self._draw(np.arange(self.num_envs))
        final = self.obs.copy()
        done = np.flatnonzero(truncated)
        self.t[done] = 0
        self.ret[done] = 0
        self._draw(done)
        info = {"episode_return": ep_ret, "episode_length": ep_len, "final_obs": final}
        return self.obs.copy(), reward, terminated, truncated, info


def small(**kw: Any) -> PPOConfig:
    base: dict[str, Any] = {
        "num_iterations": 15,
        "episodes_per_iteration": 8,
        "batch_size": 64,
        "seed": 3,
        "learning_rate": 3e-3,
    }
    return PPOConfig().replace_from(base | kw)


def run(cfg: PPOConfig, flip: bool = False) -> list[dict[str, Any]]:
    seed_everything(cfg.seed, cfg.torch_threads)
    ppo = PPO(CueEnv(cfg.envs, seed=cfg.seed), cfg, torch.device("cpu"))
    ppo.flip_advantages = flip
    return [ppo.iterate().to_json() for _ in range(cfg.num_iterations)]


def test_defaults_are_the_products() -> None:
    cfg = PPOConfig()
    assert (cfg.num_iterations, cfg.episodes_per_iteration, cfg.batch_size, cfg.seed) == (100, 50, 256, 0)
    assert cfg.envs == 50


def test_every_field_has_a_docstring() -> None:
    import ast
    import inspect

    import rl.ppo

    tree = ast.parse(inspect.getsource(rl.ppo))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PPOConfig")
    body = cls.body
    documented = set()
    for a, b in zip(body, body[1:], strict=False):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            assert isinstance(a.target, ast.Name)
            documented.add(a.target.id)
    assert documented == set(PPOConfig.keys())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_iterations", "ten"),
        ("num_iterations", 0),
        ("batch_size", 1.5),
        ("anneal_lr", 1),
        ("gamma", 1.5),
        ("hidden_sizes", [64, "x"]),
        ("device", "tpu"),
        ("learning_rate", True),
        ("no_such_key", 1),
    ],
)
def test_bad_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=repr(key)):
        PPOConfig().replace_from({key: value})


def test_table_and_overrides() -> None:
    cfg = PPOConfig.from_table({"num_iterations": 7, "hidden_sizes": [32], "commission": 0.002})
    assert cfg.num_iterations == 7 and cfg.hidden_sizes == (32,)
    cfg = cfg.replace_from({"hidden_sizes": "16,8", "seed": 5, "target_kl": None})
    assert cfg.hidden_sizes == (16, 8) and cfg.seed == 5 and cfg.target_kl is None
    assert PPOConfig.from_table({"target_kl": 0}).target_kl is None  # TOML has no null


def test_gae_by_hand() -> None:
    """GAE against a direct loop for one environment, with an episode end in the middle."""
    cfg = PPOConfig(gamma=0.9, gae_lambda=0.8)
    rewards = [1.0, 0.5, -1.0, 2.0]
    values = [0.2, 0.1, 0.4, -0.3]
    dones = [0.0, 1.0, 0.0, 0.0]
    next_value = 0.7
    r = Rollout(
        obs=torch.zeros(4, 1, 1),
        actions=torch.zeros(4, 1),
        logprobs=torch.zeros(4, 1),
        values=torch.tensor(values).reshape(4, 1),
        rewards=torch.tensor(rewards).reshape(4, 1),
        dones=torch.tensor(dones).reshape(4, 1),
        next_value=torch.tensor([next_value]),
        episode_returns=[],
        episode_lengths=[],
    )
    ppo = PPO.__new__(PPO)
    ppo.config = cfg
    adv, ret = ppo.advantages(r)
    expect = [0.0] * 4
    gae = 0.0
    for t in (3, 2, 1, 0):
        nv = next_value if t == 3 else values[t + 1]
        nd = 1.0 - dones[t]
        delta = rewards[t] + cfg.gamma * nv * nd - values[t]
        gae = delta + cfg.gamma * cfg.gae_lambda * nd * gae
        expect[t] = gae
    assert adv[:, 0].tolist() == pytest.approx(expect)
    assert ret[:, 0].tolist() == pytest.approx([a + v for a, v in zip(expect, values, strict=True)])


def test_truncation_bootstraps_with_the_final_observation_value() -> None:
    cfg = small(episodes_per_iteration=2, num_envs=2, norm_reward=False)
    env = CueEnv(2, length=3)
    ppo = PPO(env, cfg, torch.device("cpu"))
    r = ppo.collect()
    assert r.rewards.shape == (3, 2) and r.dones[-1].tolist() == [1.0, 1.0]
    assert len(r.episode_returns) == 2
    # the raw rewards are +-1: the last step's reward must carry gamma * V(final obs) on top
    extra = r.rewards[-1] - torch.sign(r.rewards[-1])
    assert torch.all(extra.abs() > 0)
    assert torch.all(r.rewards[:-1].abs() == 1.0)


def test_collect_stops_after_enough_episodes() -> None:
    cfg = small(episodes_per_iteration=5, num_envs=2)
    r = PPO(CueEnv(2, length=4), cfg, torch.device("cpu")).collect()
    assert len(r.episode_returns) >= 5 and r.rewards.shape == (12, 2)  # 3 rounds of 2 episodes


def test_a_diverged_policy_is_an_error_not_a_silent_action() -> None:
    ppo = PPO(CueEnv(2, length=4), small(num_envs=2), torch.device("cpu"))
    assert len(ppo.collect().episode_returns) > 0  # finite weights: fine
    ppo.fused.flat.fill_(float("nan"))  # what an exploded update leaves
    with pytest.raises(MarketlakeError, match="diverged"):
        ppo.collect()


def test_the_learner_learns_and_a_broken_one_does_not() -> None:
    good = run(small())
    bad = run(small(), flip=True)
    # a perfect policy earns +20 per episode; a random one 0
    assert good[-1]["mean_return"] > 15, [m["mean_return"] for m in good]
    assert bad[-1]["mean_return"] < 0, [m["mean_return"] for m in bad]


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    cfg = small(num_iterations=3)
    a, b = run(cfg), run(cfg)
    assert a == b
    c = run(cfg.replace_from({"seed": 4}))
    assert c != a


def test_agent_shapes() -> None:
    agent = Agent(5, 3, (8,))
    x = torch.zeros(4, 5)
    action, logp, ent, value = agent.act(x)
    assert action.shape == logp.shape == ent.shape == value.shape == (4,)
    assert agent.greedy(x).shape == (4,)


def test_running_std_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=int(rng.integers(1, 9))) for _ in range(40)]
    rs = RunningStd()
    for b in batches:
        rs.update(b)
    allx = np.concatenate(batches)
    assert rs.mean == pytest.approx(allx.mean(), rel=1e-3)
    assert rs.std == pytest.approx(allx.std(), rel=1e-3)


def test_rewards_are_scaled_when_asked() -> None:
    seed_everything(0, 1)
    raw = PPO(CueEnv(2, length=3), small(norm_reward=False), torch.device("cpu")).collect()
    seed_everything(0, 1)
    scaled = PPO(CueEnv(2, length=3), small(), torch.device("cpu")).collect()
    assert not torch.equal(raw.rewards[:-1], scaled.rewards[:-1])
    assert torch.equal(torch.sign(raw.rewards[:-1]), torch.sign(scaled.rewards[:-1]))


def test_device_auto_and_override() -> None:
    from rl.ppo import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")
