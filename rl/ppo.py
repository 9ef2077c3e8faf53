"""Clipped PPO with GAE, in torch, readable top to bottom (after CleanRL's single-file ppo.py).

1. `PPOConfig`: every knob, one line of docstring each; read from the `[train]` table of marketlake.toml
   (`PPOConfig.from_table`) and overridable from the command line (`PPOConfig.replace_from`).
2. `seed_everything`, `resolve_device`: reproducibility (same seed, same machine -> the same metrics, bit
   for bit) and the device (CUDA when present, else CPU).
3. `Agent`: a small MLP policy (logits over the discrete actions) and a small MLP value function over the
   observation vector the environment hands out.
4. `PPO.collect`: runs the vector environment (rl/vector.py, `VecEnv` below) until at least
   `episodes_per_iteration` episodes have ended, recording observations, actions, log-probabilities,
   values and rewards; a *truncated* episode (time limit, end of a data segment) bootstraps with the value
   of its final observation, a *terminated* one does not.
5. `PPO.advantages`: generalised advantage estimation (GAE(lambda)) and returns.
6. `PPO.update`: `update_epochs` passes over shuffled minibatches of `batch_size` samples: normalised
   advantages, clipped surrogate objective, value loss (optionally clipped), entropy bonus, gradient
   clipping; stops early when the approximate KL exceeds `target_kl`. The learning rate anneals linearly.
7. `PPO.iterate`: one iteration = collect + advantages + update, returning the iteration's statistics.

The training run around it (data, validation, checkpoints, run folder, Ctrl-C) lives in rl/train.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from lake.errors import ConfigError

# --- 1. settings ------------------------------------------------------------------------------------------


@dataclass
class PPOConfig:
    """The learner's settings: the `[train]` keys of marketlake.toml that are not environment settings."""

    num_iterations: int = 100
    """Training iterations; each collects `episodes_per_iteration` episodes, then updates the networks."""
    episodes_per_iteration: int = 50
    """Episodes collected per iteration (at least this many end in each rollout)."""
    batch_size: int = 256
    """PPO minibatch: samples per gradient step."""
    seed: int = 0
    """Seeds the environment's episode sampling, torch and the minibatch shuffling."""
    num_envs: int = 0
    """Environments stepped at once by the vector env; 0 = episodes_per_iteration."""
    learning_rate: float = 3e-4
    """Adam's learning rate at the first iteration."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over num_iterations."""
    gamma: float = 0.99
    """Discount factor of future rewards."""
    gae_lambda: float = 0.95
    """Lambda of generalised advantage estimation (1 = Monte Carlo, 0 = one-step TD)."""
    update_epochs: int = 4
    """Passes over an iteration's samples per update."""
    norm_reward: bool = True
    """Divide rewards by a running std of the discounted return (log returns of 1m bars are tiny)."""
    norm_adv: bool = True
    """Normalise advantages within each minibatch (zero mean, unit variance)."""
    clip_coef: float = 0.2
    """Surrogate clipping: the probability ratio is kept within 1 +- clip_coef."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's value estimates, as the policy ratio is clipped."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (keeps the policy exploring)."""
    vf_coef: float = 0.5
    """Weight of the value loss in the total loss."""
    max_grad_norm: float = 0.5
    """Gradients are clipped to this global norm."""
    target_kl: float | None = 0.02
    """Stop an update early once the approximate KL to the rollout policy exceeds this (None: never)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy MLP and of the value MLP (tanh activations)."""
    device: str = "auto"
    """Torch device: auto (CUDA when present, else CPU), cpu, cuda or cuda:N."""
    torch_threads: int = 1
    """Torch intra-op threads, fixed so that results repeat bit for bit (recorded in the run)."""
    validate_every: int = 5
    """Evaluate the deterministic policy on the validation period every this many iterations (and last)."""

    # -- reading and overriding ---------------------------------------------------------------------------

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, where: str = "[train]") -> PPOConfig:
        """The settings from a `[train]` table: keys of this class only (others are ignored here: the caller
        checks that every key belongs to someone); a wrong type is a ConfigError naming the key."""
        return cls().replace_from({k: v for k, v in table.items() if k in cls.keys()}, where=where)

    def replace_from(self, values: Mapping[str, Any], *, where: str = "[train]") -> PPOConfig:
        """A copy with `values` applied (TOML values or command-line overrides); unknown keys and wrong types
        are ConfigErrors naming the key."""
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if value is None and key != "target_kl":
                continue
            changes[key] = _coerce(key, value, where)
        out = dataclasses.replace(self, **changes)
        out.validate(where)
        return out

    def validate(self, where: str = "[train]") -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{where}: key {key!r}: {why}, got {getattr(self, key)!r}")

        for key in ("num_iterations", "episodes_per_iteration", "batch_size", "update_epochs"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        for key in ("num_envs", "seed"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if self.validate_every < 1:
            raise bad("validate_every", "must be at least 1")
        if self.torch_threads < 1:
            raise bad("torch_threads", "must be at least 1")
        for key in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "must be between 0 and 1")
        for key in ("learning_rate", "clip_coef", "max_grad_norm"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be positive")
        for key in ("ent_coef", "vf_coef"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if self.target_kl is not None and not self.target_kl > 0:
            raise bad("target_kl", "must be positive (or absent for no early stop)")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise bad("hidden_sizes", "must be a non-empty list of positive widths")
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise bad("device", "must be auto, cpu, cuda or cuda:N")

    @property
    def envs(self) -> int:
        """The number of environments actually stepped at once."""
        return self.num_envs or self.episodes_per_iteration

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d


def _coerce(key: str, value: Any, where: str) -> Any:
    """A TOML or command-line value checked (and converted) against the field's type."""
    kinds = {f.name: f.type for f in dataclasses.fields(PPOConfig)}
    if key not in kinds:
        raise ConfigError(f"{where}: key {key!r}: unknown learner setting (known: {', '.join(kinds)})")
    kind = str(kinds[key])

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{where}: key {key!r}: expected {what}, got {value!r}")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind in ("float", "float | None"):
        if value is None and kind == "float | None":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad("a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "tuple[int, ...]":
        if isinstance(value, str):  # "64,64" from the command line
            try:
                value = [int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise bad("a list of integers") from None
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise bad("a list of integers")
        return tuple(value)
    raise AssertionError(f"no coercion for {key}: {kind}")  # pragma: no cover


# --- 2. reproducibility and device ------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """auto -> CUDA when present, else CPU; an explicit name is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


def seed_everything(seed: int, threads: int) -> None:
    """Seeds torch, fixes the thread count and asks for deterministic kernels (process-wide)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, read at CUDA init
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


# --- 3. the networks --------------------------------------------------------------------------------------


def _layer(n_in: int, n_out: int, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int, out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [_layer(n_in, h), nn.Tanh()]
        n_in = h
    layers.append(_layer(n_in, n_out, std=out_std))
    return nn.Sequential(*layers)


class Agent(nn.Module):
    """A policy MLP (logits over the actions) and a value MLP, both over the flat observation."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden = obs_dim, n_actions, tuple(hidden)
        self.actor = _mlp(obs_dim, self.hidden, n_actions, out_std=0.01)  # near-uniform policy at first
        self.critic = _mlp(obs_dim, self.hidden, 1, out_std=1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    def act(
        self, obs: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, its log-probability, the policy's entropy, the value) for an observation batch; a given
        `action` is scored instead of sampled."""
        dist = Categorical(logits=self.actor(obs))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(obs)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic policy: the most probable action (ties -> the lowest index)."""
        return self.actor(obs).argmax(-1)


# --- 4.-7. the learner ------------------------------------------------------------------------------------


class VecEnv(Protocol):
    """What the learner needs of rl/vector.py's VecTradingEnv (auto-reset, numpy in and out)."""

    @property
    def num_envs(self) -> int: ...

    @property
    def single_observation_space(self) -> gymnasium.spaces.Box: ...

    @property
    def single_action_space(self) -> gymnasium.spaces.Discrete: ...

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]: ...

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]: ...


class RunningStd:
    """Running variance of a stream of batches (parallel Welford), float64; for reward scaling."""

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, x: np.ndarray) -> None:
        n = x.size
        if n == 0:
            return
        mean, var = float(x.mean()), float(x.var())
        delta, total = mean - self.mean, self.count + n
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    @property
    def std(self) -> float:
        return math.sqrt(self.var + 1e-8)


@dataclass
class Rollout:
    """One iteration's samples, [T, N] (time, environment), on the learner's device."""

    obs: torch.Tensor  # [T, N, obs_dim]
    actions: torch.Tensor  # [T, N]
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # truncated steps already include gamma * V(final_obs)
    dones: torch.Tensor  # 1.0 where the step ended an episode (terminated or truncated)
    next_value: torch.Tensor  # [N]: V of the observation after the last step
    episode_returns: list[float]
    episode_lengths: list[int]


@dataclass
class IterationStats:
    """What one iteration did; the numbers are deterministic for a seed (no timings here)."""

    iteration: int
    env_steps: int  # steps taken in this iteration (all environments)
    episodes: int
    mean_return: float  # mean episodic return (sum of rewards) of the episodes that ended (NaN if none)
    mean_length: float
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clipfrac: float
    explained_variance: float
    learning_rate: float
    epochs: float  # update epochs done (fractional when the KL target stopped an epoch early)
    extra: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(d.pop("extra"))
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


class PPO:
    """The learner: an Agent, its optimiser, and a vector environment it keeps stepping across iterations."""

    def __init__(self, envs: VecEnv, config: PPOConfig, device: torch.device | None = None) -> None:
        self.config, self.envs = config, envs
        self.device = device or resolve_device(config.device)
        obs_dim = int(np.prod(envs.single_observation_space.shape))
        self.agent = Agent(obs_dim, int(envs.single_action_space.n), config.hidden_sizes).to(self.device)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.learning_rate, eps=1e-5)
        self.rng = np.random.default_rng(config.seed)  # minibatch shuffling
        self.return_std = RunningStd()  # of the discounted return, per environment, for reward scaling
        self.discounted = np.zeros(envs.num_envs)
        self.iteration = 0
        obs, _ = envs.reset(seed=config.seed)
        self.next_obs = np.array(obs)  # a copy: the env owns (and overwrites) its buffer
        self.flip_advantages = False  # tests only: a deliberately broken learner must fail to learn

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=self.device)

    # 4. collect ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def collect(self) -> Rollout:
        cfg, envs = self.config, self.envs
        obs_l, act_l, logp_l, val_l, rew_l, done_l = [], [], [], [], [], []
        returns: list[float] = []
        lengths: list[int] = []
        obs = self.next_obs
        max_steps = 10_000_000 // max(envs.num_envs, 1) + 1  # a guard: an env that never ends an episode
        for _ in range(max_steps):
            obs_t = torch.tensor(
                obs, dtype=torch.float32, device=self.device
            )  # a copy: envs may reuse buffers
            action, logprob, _, value = self.agent.act(obs_t)
            next_obs, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
            done = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
            reward = np.asarray(reward, dtype=np.float64)
            if cfg.norm_reward:  # as gymnasium's NormalizeReward: scale by the discounted return's std
                self.discounted = self.discounted * cfg.gamma + reward
                self.return_std.update(self.discounted)
                reward = reward / self.return_std.std
                self.discounted[done] = 0.0
            reward_t = self._tensor(reward.astype(np.float32))
            # a truncated episode did not end in the task: its remaining return is estimated by V(final_obs)
            trunc = np.asarray(truncated, dtype=bool) & ~np.asarray(terminated, dtype=bool)
            if trunc.any():
                idx = np.flatnonzero(trunc)
                final = self._tensor(np.asarray(info["final_obs"])[idx])
                reward_t[self._tensor(idx)] += cfg.gamma * self.agent.value(final)
            obs_l.append(obs_t)
            act_l.append(action)
            logp_l.append(logprob)
            val_l.append(value)
            rew_l.append(reward_t)
            done_l.append(self._tensor(done.astype(np.float32)))
            if done.any():
                ep_ret = np.asarray(info["episode_return"], dtype=np.float64)
                ep_len = np.asarray(info["episode_length"])
                for i in np.flatnonzero(done):
                    returns.append(float(ep_ret[i]))
                    lengths.append(int(ep_len[i]))
            obs = next_obs
            if len(returns) >= cfg.episodes_per_iteration:
                break
        self.next_obs = np.array(obs)
        return Rollout(
            obs=torch.stack(obs_l),
            actions=torch.stack(act_l),
            logprobs=torch.stack(logp_l),
            values=torch.stack(val_l),
            rewards=torch.stack(rew_l),
            dones=torch.stack(done_l),
            next_value=self.agent.value(self._tensor(obs)),
            episode_returns=returns,
            episode_lengths=lengths,
        )

    # 5. advantages ---------------------------------------------------------------------------------------

    def advantages(self, r: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE(lambda): advantages and returns (= advantages + values), [T, N]."""
        cfg = self.config
        adv = torch.zeros_like(r.rewards)
        last = torch.zeros_like(r.next_value)
        next_value = r.next_value
        for t in reversed(range(r.rewards.shape[0])):
            not_done = 1.0 - r.dones[t]
            delta = r.rewards[t] + cfg.gamma * next_value * not_done - r.values[t]
            last = delta + cfg.gamma * cfg.gae_lambda * not_done * last
            adv[t] = last
            next_value = r.values[t]
        return adv, adv + r.values

    # 6. update -------------------------------------------------------------------------------------------

    def update(self, r: Rollout, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        cfg, agent = self.config, self.agent
        b_obs = r.obs.reshape(-1, r.obs.shape[-1])
        b_actions, b_logprobs, b_values = r.actions.reshape(-1), r.logprobs.reshape(-1), r.values.reshape(-1)
        b_adv, b_returns = advantages.reshape(-1), returns.reshape(-1)
        if self.flip_advantages:
            b_adv = -b_adv
        n = b_obs.shape[0]
        mb = min(cfg.batch_size, n)
        per_epoch = max(n // mb, 1)  # a ragged tail of fewer than `mb` samples waits for the next epoch
        pg_l, v_l, ent_l, kl_l, clip_l = [], [], [], [], []
        steps = 0
        stop = False
        for _epoch in range(cfg.update_epochs):
            order = self._tensor(self.rng.permutation(n))
            for k in range(per_epoch):
                idx = order[k * mb : (k + 1) * mb]
                _, newlogprob, entropy, newvalue = agent.act(b_obs[idx], b_actions[idx])
                logratio = newlogprob - b_logprobs[idx]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()  # the unbiased low-variance estimator
                    clip_l.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean())
                adv = b_adv[idx]
                if cfg.norm_adv and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                # clipped surrogate objective (a loss: negated)
                pg_loss = torch.max(
                    -adv * ratio, -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
                ).mean()
                # value loss, optionally clipped around the rollout's estimates
                if cfg.clip_vloss:
                    v_unclipped = (newvalue - b_returns[idx]) ** 2
                    v_clipped = b_values[idx] + torch.clamp(
                        newvalue - b_values[idx], -cfg.clip_coef, cfg.clip_coef
                    )
                    v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[idx]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[idx]) ** 2).mean()
                ent = entropy.mean()
                loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                steps += 1
                pg_l.append(pg_loss.detach())
                v_l.append(v_loss.detach())
                ent_l.append(ent.detach())
                kl_l.append(approx_kl)
                if cfg.target_kl is not None and approx_kl.item() > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        y_pred, y_true = b_values, b_returns
        var_y = torch.var(y_true).item() if n > 1 else float("nan")
        explained = float("nan") if not var_y > 0 else 1.0 - torch.var(y_true - y_pred).item() / var_y
        return {
            "policy_loss": torch.stack(pg_l).mean().item(),
            "value_loss": torch.stack(v_l).mean().item(),
            "entropy": torch.stack(ent_l).mean().item(),
            "approx_kl": kl_l[-1].item(),  # the KL at the end of the update
            "clipfrac": torch.stack(clip_l).mean().item(),
            "explained_variance": explained,
            "epochs": steps / per_epoch,
        }

    # 7. one iteration ------------------------------------------------------------------------------------

    def iterate(self) -> IterationStats:
        cfg = self.config
        self.iteration += 1
        lr = cfg.learning_rate
        if cfg.anneal_lr:
            lr *= 1.0 - (self.iteration - 1.0) / cfg.num_iterations
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rollout = self.collect()
        adv, ret = self.advantages(rollout)
        losses = self.update(rollout, adv, ret)
        returns = rollout.episode_returns
        return IterationStats(
            iteration=self.iteration,
            env_steps=int(rollout.rewards.numel()),
            episodes=len(returns),
            mean_return=float(np.mean(returns)) if returns else float("nan"),
            mean_length=float(np.mean(rollout.episode_lengths)) if returns else float("nan"),
            policy_loss=losses["policy_loss"],
            value_loss=losses["value_loss"],
            entropy=losses["entropy"],
            approx_kl=losses["approx_kl"],
            clipfrac=losses["clipfrac"],
            explained_variance=losses["explained_variance"],
            learning_rate=lr,
            epochs=losses["epochs"],
        )


def greedy_policy(agent: Agent, device: torch.device, chunk: int = 65536) -> Any:
    """A numpy policy function (obs [B, obs_dim] float32 -> int64 [B]) from an agent: argmax, no sampling."""

    @torch.inference_mode()
    def policy(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        out = np.empty(obs.shape[0], dtype=np.int64)
        for s in range(0, obs.shape[0], chunk):
            out[s : s + chunk] = (
                agent.greedy(torch.as_tensor(obs[s : s + chunk], device=device)).cpu().numpy()
            )
        return out

    return policy


def now() -> float:
    """Wall-clock seconds for throughput figures (never written into the deterministic metrics)."""
    return time.perf_counter()
