"""Clipped PPO with GAE, in torch, readable top to bottom (after CleanRL's single-file ppo.py).

1. `PPOConfig`: every knob, one line of docstring each; read from the `[train]` table of marketlake.toml
   (`PPOConfig.from_table`) and overridable from the command line (`PPOConfig.replace_from`).
2. `seed_everything`, `resolve_device`: reproducibility (same seed, same machine -> the same metrics, bit
   for bit) and the device (CUDA when present, else CPU).
3. `Agent`: a small MLP policy (logits over the discrete actions) and a small MLP value function over the
   observation vector the environment hands out (the reference, and what checkpoints hold).
   `FusedAgent` drives the same Agent fast: its parameters in one flat tensor, actor and critic side by
   side in batched matmuls, a hand-written forward and backward (no autograd graph per minibatch), and
   `FlatAdam` (torch.optim.Adam's update) on the flat tensor. PPO minibatches are small (256 samples): per
   tensor operation and per parameter tensor costs, not arithmetic, used to dominate. Checked equal to
   autograd on the Agent and to torch.optim.Adam by tests/unit/test_ppo_fused.py.
4. `PPO.collect`: runs the vector environment (rl/vector.py, `VecEnv` below) until at least
   `episodes_per_iteration` episodes have ended, recording observations (or, when the env says where its
   windows come from, each step's data row: `WindowSource`), actions, log-probabilities, values and
   rewards; a *truncated* episode (time limit, end of a data segment) bootstraps with the value of its
   final observation, a *terminated* one does not.
5. `PPO.advantages`: generalised advantage estimation (GAE(lambda)) and returns.
6. `PPO.update`: `update_epochs` passes over shuffled minibatches of `batch_size` samples: normalised
   advantages, clipped surrogate objective, value loss (optionally clipped), entropy bonus, gradient
   clipping; stops early when the approximate KL exceeds `target_kl`. The learning rate anneals linearly.
   `PPO.loss_gradients` writes the loss out together with its gradients with respect to the logits and
   the value, which FusedAgent.backward carries through the networks.
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
from typing import Any, Protocol, cast

import gymnasium
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from lake.config import CPU_COUNT, LEARNING_RATE_MAX, SEED_MAX
from lake.errors import ConfigError, MarketlakeError

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
    """Stop an update early once the approximate KL to the rollout policy exceeds this (0 or None: never)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy MLP and of the value MLP (tanh activations)."""
    bar_width: int = 4
    """Each bar of the window is first encoded to this many numbers by a layer shared across bars (0: none)."""
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
        for key in ("num_envs", "seed", "bar_width"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if self.validate_every < 1:
            raise bad("validate_every", "must be at least 1")
        if self.torch_threads < 1:
            raise bad("torch_threads", "must be at least 1")
        # more threads than CPUs wait on each other: hundreds of times slower
        if self.torch_threads > CPU_COUNT:
            raise bad("torch_threads", f"must be at most {CPU_COUNT} (this machine's CPU count)")
        if self.seed > SEED_MAX:
            raise bad("seed", f"must be at most {SEED_MAX} (2**64 - 1, the largest seed torch takes)")
        for key in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "must be between 0 and 1")
        for key in ("learning_rate", "clip_coef", "max_grad_norm"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be positive")
        if self.learning_rate > LEARNING_RATE_MAX:
            raise bad("learning_rate", f"must be at most {LEARNING_RATE_MAX:g}")
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

    def rollout_size(self, episode_length: int) -> int:
        """The samples of one iteration's rollout with episodes of `episode_length` steps: `collect` steps
        its `envs` environments together (each episode exactly that long) until `episodes_per_iteration`
        have ended, so ceil(episodes / envs) episodes of each. A minibatch is at most this (`update`)."""
        n = self.envs
        return -(-self.episodes_per_iteration // n) * n * episode_length

    def batch_size_problem(self, episode_length: int) -> str | None:
        """Why `batch_size` cannot be the minibatch with episodes of `episode_length` steps (more than a
        rollout holds: `update` would use the whole rollout), or None."""
        size = self.rollout_size(episode_length)
        if self.batch_size <= size:
            return None
        envs = "" if self.envs == self.episodes_per_iteration else f" over {self.envs} envs"
        return (
            f"{self.batch_size} is more than an iteration's rollout holds ({size} samples: "
            f"{self.episodes_per_iteration} episodes of {episode_length} steps{envs}), so each minibatch would "
            f"be the whole rollout: set batch_size to at most {size}, or raise episodes_per_iteration"
        )

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
        if kind == "float | None" and (value is None or (value == 0 and not isinstance(value, bool))):
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
    # ...without filling every new tensor with NaN first (a guard against reading memory never written, which
    # the learner does not do; it costs the small tensors of a PPO step a fill each)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


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


class BarEncoder(nn.Module):
    """Each bar's feature row of the observation window through one small linear layer shared by all bars
    (a kernel-1 convolution over time), relu, flattened, with the observation's trailing entries (position,
    session end) appended. It cuts the first layer's cost several times over a plain MLP on the flat window
    (CPU-sized), and treats every bar of the window alike."""

    def __init__(self, window: int, n_features: int, extra: int, width: int) -> None:
        super().__init__()
        self.window, self.n_features, self.extra = window, n_features, extra
        self.proj = _layer(n_features, width)
        self.out_dim = window * width + extra

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        bars = obs[:, : self.window * self.n_features].reshape(b, self.window, self.n_features)
        z = torch.relu(self.proj(bars)).reshape(b, -1)  # relu: tanh costs ~8x more per element on CPU
        return torch.cat([z, obs[:, self.window * self.n_features :]], dim=1)


class Agent(nn.Module):
    """A policy MLP (logits over the actions) and a value MLP over the observation, each with its own
    BarEncoder in front when `layout` (window, features per bar) and `bar_width` are given."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: tuple[int, ...] = (64, 64),
        layout: tuple[int, int] | None = None,
        bar_width: int = 0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden = obs_dim, n_actions, tuple(hidden)
        self.layout, self.bar_width = (tuple(layout) if layout else None), bar_width

        def net(n_out: int, out_std: float) -> nn.Module:
            if layout is None or bar_width <= 0:
                return _mlp(obs_dim, self.hidden, n_out, out_std)
            window, n_features = layout
            enc = BarEncoder(window, n_features, obs_dim - window * n_features, bar_width)
            return nn.Sequential(enc, _mlp(enc.out_dim, self.hidden, n_out, out_std))

        self.actor = net(n_actions, out_std=0.01)  # near-uniform policy at first
        self.critic = net(1, out_std=1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def act(
        self, obs: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, its log-probability, the policy's entropy, the value) for an observation batch; a given
        `action` is scored instead of sampled."""
        dist = Categorical(logits=self.actor(obs), validate_args=False)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(obs)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sampled action, its log-probability, the value): act() without the entropy, for rollouts."""
        logp = torch.log_softmax(self.actor(obs), dim=-1)
        action = torch.multinomial(logp.exp(), 1)
        return action.squeeze(-1), logp.gather(-1, action).squeeze(-1), self.value(obs)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic policy: the most probable action (ties -> the lowest index)."""
        return self.actor(obs).argmax(-1)

    def spec(self) -> dict[str, Any]:
        """What rebuilds this agent (saved with checkpoints)."""
        return {
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "hidden_sizes": list(self.hidden),
            "layout": list(self.layout) if self.layout else None,
            "bar_width": self.bar_width,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Agent:
        layout = spec.get("layout")
        return cls(
            int(spec["obs_dim"]),
            int(spec["n_actions"]),
            tuple(spec["hidden_sizes"]),
            (int(layout[0]), int(layout[1])) if layout else None,
            int(spec.get("bar_width") or 0),
        )


def _layers(net: nn.Module) -> tuple[nn.Linear | None, list[nn.Linear]]:
    """(the BarEncoder's projection or None, the MLP's linear layers in order) of an Agent's actor or critic."""
    mods = list(net.children())
    if mods and isinstance(mods[0], BarEncoder):
        return mods[0].proj, [m for m in mods[1].children() if isinstance(m, nn.Linear)]
    return None, [m for m in mods if isinstance(m, nn.Linear)]


# a 0-dim tensor: an operand torch takes as is, where a Python float is wrapped into a tensor first
_ONE = torch.tensor(1.0)


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place as 2 sigmoid(2x) - 1: equal to torch.tanh within float32 rounding (a few 1e-7), and
    about 4x cheaper on CPU, where torch.tanh is not vectorised. Doubling as x + x (exact, as x * 2) and 1
    as a tensor spare the three Python numbers' conversions (~1.5 us each, per layer and step)."""
    return x.add_(x).sigmoid_().add_(x).sub_(_ONE)


@dataclass
class _Cache:
    """What the backward pass needs from the forward pass."""

    bars: torch.Tensor  # [B * W, F] (encoder) or [B, obs_dim]
    enc: (
        torch.Tensor | None
    )  # [2 * bar_width, B * W]: the encoders' outputs after relu (actor rows, then critic)
    acts: list[torch.Tensor]  # [2, B, n]: the input of each hidden layer, then the last hidden layer's output


class FusedAgent:
    """An Agent driven by hand, for speed; the Agent stays the reference (and what checkpoints hold).

    - The Agent's parameters move into ONE flat tensor: they become views of it, so the Agent, its
      state_dict and its checkpoints see every update, and the optimiser (Adam on the flat tensor) and the
      gradient clipping are one operation each instead of one per parameter tensor.
    - The actor's and the critic's layers of equal shape sit side by side ([2, out, in]), so one batched
      matmul runs both networks; the two encoders are one matmul.
    - forward/backward are the Agent's networks written out (tanh as 2 sigmoid(2x) - 1, see `_tanh_`), and
      `backward` takes the gradients of the loss with respect to the logits and the value, which the PPO
      update (PPO.update) writes out too: no autograd graph is built.

    PPO's minibatches are small (256 samples), so autograd's bookkeeping, a dozen optimiser tensors and
    torch.tanh used to cost more than the arithmetic. tests/unit/test_ppo_fused.py checks the outputs and
    the gradients equal to autograd's on the Agent."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        (enc_a, mlp_a), (enc_c, mlp_c) = _layers(agent.actor), _layers(agent.critic)
        self.has_encoder = enc_a is not None and enc_c is not None
        groups: list[tuple[torch.Tensor, ...]] = []  # stacked pairs (actor, critic), then single tensors
        if enc_a is not None and enc_c is not None:
            groups += [(enc_a.weight, enc_c.weight), (enc_a.bias, enc_c.bias)]
        for a, c in zip(mlp_a[:-1], mlp_c[:-1], strict=True):
            groups += [(a.weight, c.weight), (a.bias, c.bias)]
        groups += [(mlp_a[-1].weight,), (mlp_a[-1].bias,), (mlp_c[-1].weight,), (mlp_c[-1].bias,)]
        first = next(agent.parameters())
        total = sum(p.numel() for g in groups for p in g)
        self.flat = torch.zeros(total, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.flat)
        views: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        at = 0
        for g in groups:
            shape = (2, *g[0].shape) if len(g) == 2 else tuple(g[0].shape)
            n = sum(p.numel() for p in g)
            views.append(self.flat[at : at + n].view(shape))
            grads.append(self.grad[at : at + n].view(shape))
            for i, p in enumerate(g):
                v = views[-1][i] if len(g) == 2 else views[-1]
                v.copy_(p.data)
                p.data = v  # the Agent's parameter now lives in the flat tensor
            at += n
        k = 0
        if self.has_encoder:
            assert agent.layout is not None
            self.window, self.n_features = agent.layout
            self.bar_width = agent.bar_width
            self.split = self.window * self.n_features
            # [2 * bar_width, F]: the actor's encoder rows, then the critic's
            self.enc_w, self.enc_b = views[0].flatten(0, 1), views[1].flatten()
            self.g_enc_w, self.g_enc_b = grads[0].flatten(0, 1), grads[1].flatten()
            self.enc_b_col = self.enc_b.unsqueeze(1)  # [2 * bar_width, 1]
            k = 2
        else:
            self.split = agent.obs_dim
        self.w, self.b = views[k:-4:2], views[k + 1 : -4 : 2]  # hidden layers: [2, out, in], [2, out]
        self.gw, self.gb = grads[k:-4:2], grads[k + 1 : -4 : 2]
        self.pi_w, self.pi_b, self.v_w, self.v_b = views[-4:]
        self.g_pi_w, self.g_pi_b, self.g_v_w, self.g_v_b = grads[-4:]
        # the views the forward pass reads, made once (views of `flat`: they see every update)
        self.w_t = [w.transpose(1, 2) for w in self.w]  # [2, in, out]
        self.b_col = [b.unsqueeze(1) for b in self.b]  # [2, 1, out]
        self.pi_w_t, self.v_w_t = self.pi_w.t(), self.v_w.t()

    def split_obs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the bars of the window, contiguous [B, W * F], the trailing entries [B, E]) of an observation batch
        (without an encoder: the whole observation and an empty tensor)."""
        bars = obs[:, : self.split]
        return (bars if bars.is_contiguous() else bars.contiguous()), obs[:, self.split :]

    def forward(self, bars: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, _Cache]:
        """(logits [B, n_actions], value [B], what `backward` needs) of the Agent, for split_obs's halves."""
        b = bars.shape[0]
        if self.has_encoder:
            w, bw = self.window, self.bar_width
            x = bars.view(b * w, self.n_features)
            enc = torch.addmm(self.enc_b_col, self.enc_w, x.t()).relu_()  # [2 * bw, B * W]
            h = bars.new_empty(2, b, w * bw + extra.shape[1])
            # BarEncoder's order: bar by bar, each bar's `bw` numbers, then the trailing entries
            h[:, :, : w * bw].unflatten(2, (w, bw)).copy_(enc.view(2, bw, b, w).permute(0, 2, 3, 1))
            h[:, :, w * bw :] = extra
        else:
            x, enc = bars, None
            h = bars.unsqueeze(0).expand(2, b, bars.shape[1])
        logits, value, acts = self._mlps(h)
        return logits, value, _Cache(x, enc, acts)

    def _mlps(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(logits, value, every layer's input and the last hidden output) of the two MLPs for their inputs
        h [2, B, in] (the actor's, then the critic's)."""
        acts = [h]
        for weight_t, bias in zip(self.w_t, self.b_col, strict=True):
            h = _tanh_(torch.baddbmm(bias, h, weight_t))
            acts.append(h)
        logits = torch.addmm(self.pi_b, h[0], self.pi_w_t)
        value = torch.addmm(self.v_b, h[1], self.v_w_t).squeeze(1)
        return logits, value, acts

    def encode_rows(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both encoders over every feature row at once, as windows: the actor's and the critic's, each
        [n_windows, W * bar_width], window i being the encoded rows i .. i + W - 1 (views). While the networks
        do not change (a rollout), a step's windows are then a gather (`forward_windows`) instead of an encoder
        pass over W rows each: consecutive steps share W - 1 of their rows. The same numbers as `forward` (the
        same matmul per row; tests/unit/test_ppo_fused.py checks them equal bit for bit)."""
        rows, w, bw = features.shape[0], self.window, self.bar_width
        enc = torch.addmm(self.enc_b_col, self.enc_w, features.t()).relu_()  # [2 * bw, rows]
        enc = enc.view(2, bw, rows).transpose(1, 2).contiguous()  # [2, rows, bw]
        shape = (rows - w + 1, w * bw)
        return enc[0].as_strided(shape, (bw, 1)), enc[1].as_strided(shape, (bw, 1))

    def forward_windows(
        self, windows: tuple[torch.Tensor, torch.Tensor], first: torch.Tensor, extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, value) of the observations whose windows start at the feature rows `first` [B], with their
        trailing entries `extra` [B, E], from `encode_rows`'s windows (no gradient: no cache kept)."""
        b, wb = first.shape[0], windows[0].shape[1]
        h = extra.new_empty(2, b, wb + extra.shape[1])
        for i in (0, 1):
            h[i, :, :wb] = windows[i].index_select(0, first)
        h[:, :, wb:] = extra
        logits, value, _ = self._mlps(h)
        return logits, value

    def backward(self, cache: _Cache, d_logits: torch.Tensor, d_value: torch.Tensor) -> None:
        """Writes into `grad` (the flat gradient) the gradient of a loss whose gradients with respect to the
        forward's logits and value are d_logits [B, n_actions] and d_value [B]."""
        acts = cache.acts
        last = acts[-1]
        d_value = d_value.unsqueeze(1)
        torch.mm(d_logits.t(), last[0], out=self.g_pi_w)
        torch.sum(d_logits, 0, out=self.g_pi_b)
        torch.mm(d_value.t(), last[1], out=self.g_v_w)
        torch.sum(d_value, 0, out=self.g_v_b)
        dh = last.new_empty(last.shape)  # [2, B, last hidden]
        torch.mm(d_logits, self.pi_w, out=dh[0])
        torch.mm(d_value, self.v_w, out=dh[1])
        for i in reversed(range(len(self.w))):
            # tanh' = 1 - tanh^2, times dh, in place
            d_pre = torch.ops.aten.tanh_backward.grad_input(dh, acts[i + 1], grad_input=dh)
            torch.bmm(d_pre.transpose(1, 2), acts[i], out=self.gw[i])
            torch.sum(d_pre, 1, out=self.gb[i])
            if i > 0 or self.has_encoder:
                dh = torch.bmm(d_pre, self.w[i])
        if cache.enc is not None:
            w, bw = self.window, self.bar_width
            b = dh.shape[1]
            d_enc = torch.empty_like(cache.enc)  # [2 * bw, B * W]
            d_enc.view(2, bw, b, w).copy_(dh[:, :, : w * bw].unflatten(2, (w, bw)).permute(0, 3, 1, 2))
            # relu': 0 where relu gave 0, in place
            torch.ops.aten.threshold_backward.grad_input(d_enc, cache.enc, 0, grad_input=d_enc)
            torch.mm(d_enc, cache.bars, out=self.g_enc_w)
            torch.sum(d_enc, 1, out=self.g_enc_b)


class FlatAdam:
    """Adam on one flat parameter tensor (FusedAgent.flat) with its gradient tensor: torch.optim.Adam's
    update (bias-corrected, eps added outside the square root, no weight decay), a handful of tensor
    operations per step. `param_groups[0]["lr"]` is the learning rate, as in torch.optim."""

    def __init__(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param, self.grad, self.betas, self.eps = param, grad, betas, eps
        self.param_groups: list[dict[str, float]] = [{"lr": lr}]
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        (beta1, beta2), lr = self.betas, self.param_groups[0]["lr"]
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        denom = self.exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**self.steps)).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-lr / (1 - beta1**self.steps))


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


class WindowSource(Protocol):
    """What a vector env may offer so that the learner stores rows instead of observation windows: the
    window part of its observation of environment i is `window_features[obs_rows[i] - window + 1 ..
    obs_rows[i]]`, flattened (rl/vector.py's VecTradingEnv)."""

    @property
    def obs_rows(self) -> np.ndarray: ...

    @property
    def window_features(self) -> np.ndarray: ...


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

    obs: torch.Tensor  # [T, N, obs_dim]; with `rows`: only the trailing entries after the window
    actions: torch.Tensor  # [T, N]
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # truncated steps already include gamma * V(final_obs)
    dones: torch.Tensor  # 1.0 where the step ended an episode (terminated or truncated)
    next_value: torch.Tensor  # [N]: V of the observation after the last step
    episode_returns: list[float]
    episode_lengths: list[int]
    rows: torch.Tensor | None = None  # [T, N]: the data row of each observation (its window ends there)


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

    def __init__(
        self,
        envs: VecEnv,
        config: PPOConfig,
        device: torch.device | None = None,
        layout: tuple[int, int] | None = None,
    ) -> None:
        """layout: (window, features per bar) of the observation, for the agent's BarEncoder (None: a plain
        MLP over the flat observation)."""
        self.config, self.envs = config, envs
        self.device = device or resolve_device(config.device)
        obs_dim = int(np.prod(envs.single_observation_space.shape))
        n_actions = int(envs.single_action_space.n)
        self.agent = Agent(obs_dim, n_actions, config.hidden_sizes, layout, config.bar_width).to(self.device)
        self.fused = FusedAgent(self.agent)  # the agent's parameters now live in one flat tensor
        self.optimizer = FlatAdam(self.fused.flat, self.fused.grad, lr=config.learning_rate, eps=1e-5)
        self.rng = np.random.default_rng(config.seed)  # minibatch shuffling
        self.return_std = RunningStd()  # of the discounted return, per environment, for reward scaling
        self.discounted = np.zeros(envs.num_envs)
        self.iteration = 0
        obs, _ = envs.reset(seed=config.seed)
        self.next_obs = np.array(obs)  # a copy: the env owns (and overwrites) its buffer
        self.flip_advantages = False  # tests only: a deliberately broken learner must fail to learn
        self._obs_buf: np.ndarray | None = None
        # An env that says where its windows come from (WindowSource) lets the rollout keep each step's data
        # row instead of its window (32 x 28 floats): the update gathers the windows of a minibatch from the
        # features, which stay in the CPU's cache, instead of reading 1 kB per sample scattered over a
        # buffer of hundreds of MB. The same numbers either way (tests/unit/test_ppo_fused.py).
        self.features: torch.Tensor | None = None
        if self.fused.has_encoder and hasattr(envs, "obs_rows") and hasattr(envs, "window_features"):
            features = np.ascontiguousarray(envs.window_features, dtype=np.float32)
            if features.shape[1:] == (self.fused.n_features,):
                self.features = self._tensor(features)
                self.next_rows = np.array(envs.obs_rows)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=self.device)

    def _policy(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, value) of an observation batch (the fused forward; no gradient)."""
        logits, value, _ = self.fused.forward(*self.fused.split_obs(self._tensor(obs)))
        return logits, value

    # 4. collect ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def collect(self) -> Rollout:
        cfg, envs, n = self.config, self.envs, self.envs.num_envs
        # every sample goes straight into preallocated numpy buffers (grown if the episodes run longer)
        length = int(getattr(envs, "episode_length", 0) or 64)
        rows = -(-cfg.episodes_per_iteration // n) * length
        # the observation buffer is the big one (T x N x obs_dim): kept from one rollout to the next (fresh
        # pages cost a page fault each), so a Rollout's obs is valid until the next collect()
        by_row = self.features is not None
        split = self.fused.split if by_row else 0  # with rows, only the entries after the window are kept
        shape = (rows, n, self.next_obs.shape[1] - split)
        if self._obs_buf is None or self._obs_buf.shape != shape:
            self._obs_buf = np.empty(shape, np.float32)
        obs_buf = self._obs_buf
        row_buf = np.empty((rows, n), np.int64)
        obs_rows = self.next_rows if by_row else None
        act_buf = np.empty((rows, n), np.int64)
        logp_buf = np.empty((rows, n), np.float32)
        val_buf = np.empty((rows, n), np.float32)
        rew_buf = np.empty((rows, n), np.float32)
        done_buf = np.empty((rows, n), np.float32)
        returns: list[float] = []
        lengths: list[int] = []
        obs = self.next_obs
        # with rows, the policy reads its windows from both encoders run once over the features (see
        # FusedAgent.encode_rows): the networks do not change during a rollout
        windows = self.fused.encode_rows(cast(torch.Tensor, self.features)) if by_row else None
        first_row = self.fused.window - 1 if by_row else 0
        max_steps = 10_000_000 // max(n, 1) + 1  # a guard: an env that never ends an episode
        t = 0
        for t in range(max_steps):
            if t == len(obs_buf):
                obs_buf, row_buf, act_buf, logp_buf, val_buf, rew_buf, done_buf = (
                    np.concatenate([a, np.empty_like(a)])
                    for a in (obs_buf, row_buf, act_buf, logp_buf, val_buf, rew_buf, done_buf)
                )
                self._obs_buf = obs_buf
            obs_buf[t] = obs[:, split:]  # a copy: the env owns (and overwrites) its buffer
            if obs_rows is not None:
                row_buf[t] = obs_rows
            if windows is not None and obs_rows is not None:
                logits, value = self.fused.forward_windows(
                    windows, self._tensor(obs_rows - first_row), self._tensor(obs_buf[t])
                )
            else:
                logits, value = self._policy(obs)
            logp = torch.log_softmax(logits, dim=-1)
            # sampled by inverting the CDF at a uniform draw of torch's seeded generator
            cdf = logp.exp().cumsum_(1)
            action = (cdf[:, :-1] <= torch.rand(n, 1, device=cdf.device)).sum(1, keepdim=True)
            act_buf[t] = action.squeeze(1).numpy(force=True)
            logp_buf[t] = logp.gather(1, action).squeeze(1).numpy(force=True)
            val_buf[t] = value.numpy(force=True)
            next_obs, reward, terminated, truncated, info = envs.step(act_buf[t])
            done = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
            reward = np.asarray(reward, dtype=np.float64)
            if cfg.norm_reward:  # as gymnasium's NormalizeReward: scale by the discounted return's std
                self.discounted = self.discounted * cfg.gamma + reward
                self.return_std.update(self.discounted)
                reward = reward / self.return_std.std
                self.discounted[done] = 0.0
            rew_buf[t] = reward
            # a truncated episode did not end in the task: its remaining return is estimated by V(final_obs)
            trunc = np.asarray(truncated, dtype=bool) & ~np.asarray(terminated, dtype=bool)
            if trunc.any():
                idx = np.flatnonzero(trunc)
                final = np.ascontiguousarray(np.asarray(info["final_obs"], dtype=np.float32)[idx])
                rew_buf[t, idx] += cfg.gamma * self._policy(final)[1].numpy(force=True)
            done_buf[t] = done
            if done.any():
                ep_ret = np.asarray(info["episode_return"], dtype=np.float64)
                ep_len = np.asarray(info["episode_length"])
                for i in np.flatnonzero(done):
                    returns.append(float(ep_ret[i]))
                    lengths.append(int(ep_len[i]))
            obs = next_obs
            if by_row:
                obs_rows = np.array(cast(WindowSource, envs).obs_rows)
            if len(returns) >= cfg.episodes_per_iteration:
                break
        self.next_obs = np.array(obs)
        if obs_rows is not None:
            self.next_rows = obs_rows
        steps = t + 1
        if not np.isfinite(logp_buf[:steps]).all():  # NaN logits would sample action 0 without a word
            raise MarketlakeError(
                "PPO diverged: the policy's outputs are not finite (try a lower learning_rate or max_grad_norm)"
            )
        return Rollout(
            obs=self._tensor(obs_buf[:steps]),
            actions=self._tensor(act_buf[:steps]),
            logprobs=self._tensor(logp_buf[:steps]),
            values=self._tensor(val_buf[:steps]),
            rewards=self._tensor(rew_buf[:steps]),
            dones=self._tensor(done_buf[:steps]),
            next_value=self._policy(self.next_obs)[1],
            episode_returns=returns,
            episode_lengths=lengths,
            rows=self._tensor(row_buf[:steps]) if by_row else None,
        )

    # 5. advantages ---------------------------------------------------------------------------------------

    def advantages(self, r: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE(lambda): advantages and returns (= advantages + values), [T, N] (a loop over time in numpy,
        float32 as the tensors)."""
        cfg = self.config
        rewards, values = r.rewards.numpy(force=True), r.values.numpy(force=True)
        not_done = 1.0 - r.dones.numpy(force=True)
        adv = np.zeros_like(rewards)
        last = np.zeros_like(rewards[0])
        next_value = r.next_value.numpy(force=True)
        gamma, gl = np.float32(cfg.gamma), np.float32(cfg.gamma * cfg.gae_lambda)
        for t in reversed(range(rewards.shape[0])):
            delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
            last = delta + gl * not_done[t] * last
            adv[t] = last
            next_value = values[t]
        adv_t = torch.as_tensor(adv, device=r.values.device)
        return adv_t, adv_t + r.values

    # 6. update -------------------------------------------------------------------------------------------

    def loss_gradients(
        self,
        logits: torch.Tensor,
        value: torch.Tensor,
        actions: torch.Tensor,
        old_logprobs: torch.Tensor,
        old_values: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The PPO loss of a minibatch, written out with its gradients with respect to the logits and the
        value (for FusedAgent.backward): (d loss / d logits, d loss / d value, the loss's parts).

            loss = policy loss - ent_coef * entropy + vf_coef * value loss
            policy loss = mean(max(-A r, -A clip(r, 1 - c, 1 + c))),  r = exp(log pi(a) - old log pi(a))
            value loss = 0.5 mean(max((v - R)^2, (old v + clip(v - old v, -c, c) - R)^2))  (clip_vloss)

        where the max picks a branch, its gradient is that branch's (in a tie both branches have the same
        gradient, as autograd's half-and-half split gives); tests check it against autograd."""
        cfg = self.config
        mb = logits.shape[0]
        c = cfg.clip_coef
        actions = actions.view(mb, 1)
        logp_all = torch.log_softmax(logits, dim=1)
        p = logp_all.exp()
        neg_entropy = (p * logp_all).sum(1)
        logratio = logp_all.gather(1, actions).view(mb).sub_(old_logprobs)
        ratio = logratio.exp()
        # mean((r - 1) - log r): the unbiased low-variance one; r - 1 as expm1 (subtracting 1 after the mean
        # would round a KL below about 1e-7 to 0)
        approx_kl = (torch.expm1(logratio) - logratio).mean()
        clipfrac = (ratio - 1.0).abs_().gt_(c).mean()
        if cfg.norm_adv and mb > 1:
            std, mean = torch.std_mean(advantages)
            neg_adv = (mean - advantages).div_(std + 1e-8)
        else:
            neg_adv = -advantages
        pg1 = neg_adv * ratio  # the unclipped branch, -A r
        pg2 = neg_adv.mul_(ratio.clamp_(1 - c, 1 + c))  # the clipped branch
        pg_loss = torch.maximum(pg1, pg2).mean()
        # d policy loss / d log pi(a) (times mb): the unclipped branch's -A r where it is the max, else 0
        g_logp = pg1.masked_fill_(pg1 < pg2, 0.0).unsqueeze(1)
        diff = value - returns
        if cfg.clip_vloss:
            v_delta = value - old_values
            clipped = v_delta.clamp(-c, c).add_(old_values).sub_(returns)  # old v + clip(v - old v) - R
            sq, sq_clipped = diff * diff, clipped.mul_(clipped)
            v_loss = torch.maximum(sq, sq_clipped).mean() * 0.5
            # the clipped branch has no gradient where the clip is active; inside, it equals the unclipped
            d_value = diff.masked_fill_((sq < sq_clipped).logical_and_(v_delta.abs_() > c), 0.0)
        else:
            v_loss = (diff * diff).mean() * 0.5
            d_value = diff
        d_value.mul_(cfg.vf_coef / mb)
        # d/d logits (times mb): log pi(a) -> onehot(a) - p; entropy H -> -p (log p + H)
        d_logits = (logp_all - neg_entropy.unsqueeze(1)).mul_(cfg.ent_coef).sub_(g_logp).mul_(p)
        d_logits.scatter_add_(1, actions, g_logp).div_(mb)
        parts = {"pg_loss": pg_loss, "v_loss": v_loss, "entropy": -neg_entropy.mean()}
        parts |= {"approx_kl": approx_kl, "clipfrac": clipfrac}
        return d_logits, d_value, parts

    @torch.inference_mode()
    def update(self, r: Rollout, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        cfg, fused = self.config, self.fused
        n = r.actions.numel()
        b_obs = r.obs.reshape(n, -1)  # whole observations, or (with rows) their entries after the window
        b_actions = r.actions.reshape(-1)
        b_adv = advantages.reshape(-1)
        if self.flip_advantages:
            b_adv = -b_adv
        # the per-sample numbers, together: log pi_old(a), V_old, A, R
        b_numbers = torch.stack([r.logprobs.reshape(-1), r.values.reshape(-1), b_adv, returns.reshape(-1)])
        mb = min(cfg.batch_size, n)
        per_epoch = max(n // mb, 1)  # a ragged tail of fewer than `mb` samples waits for the next epoch
        by_row = r.rows is not None
        if by_row:  # the windows are cut from the features at each minibatch (see __init__)
            assert r.rows is not None and self.features is not None
            b_first = r.rows.reshape(-1) - (fused.window - 1)  # each window's first row
            n_windows = self.features.shape[0] - fused.window + 1
            windows = self.features.as_strided((n_windows, fused.split), (fused.n_features, 1))
            bars = b_obs.new_empty(mb, fused.split)
        pg_l, v_l, ent_l, kl_l, clip_l = [], [], [], [], []
        steps = 0
        stop = False
        for _epoch in range(cfg.update_epochs):
            # one shuffle per epoch: the small per-sample tensors are put in its order at once (minibatches
            # are then slices); the observations are gathered per minibatch
            order = self._tensor(self.rng.permutation(n))
            numbers, actions = b_numbers.index_select(1, order), b_actions.index_select(0, order)
            if by_row:
                first, extra = b_first.index_select(0, order), b_obs.index_select(0, order)
            for k in range(per_epoch):
                at = slice(k * mb, (k + 1) * mb)
                if by_row:
                    torch.index_select(windows, 0, first[at], out=bars)
                    extra_mb = extra[at]
                else:
                    obs = b_obs.index_select(0, order[at])
                    bars, extra_mb = fused.split_obs(obs)
                old_logprobs, old_values, adv, ret = numbers[:, at].unbind()  # contiguous rows
                logits, value, cache = fused.forward(bars, extra_mb)
                d_logits, d_value, parts = self.loss_gradients(
                    logits, value, actions[at], old_logprobs, old_values, adv, ret
                )
                fused.backward(cache, d_logits, d_value)
                # gradient clipping to a global norm (as nn.utils.clip_grad_norm_), then Adam
                scale = cfg.max_grad_norm / (fused.grad.norm() + 1e-6)
                fused.grad.mul_(scale.clamp_(max=1.0))
                self.optimizer.step()
                steps += 1
                pg_l.append(parts["pg_loss"])
                v_l.append(parts["v_loss"])
                ent_l.append(parts["entropy"])
                kl_l.append(parts["approx_kl"])
                clip_l.append(parts["clipfrac"])
                if cfg.target_kl is not None and parts["approx_kl"].item() > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        y_pred, y_true = b_numbers[1], b_numbers[3]
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


class GreedyPolicy:
    """A numpy policy (obs [B, obs_dim] float32 -> int64 [B]) from an agent: argmax, no sampling. Each row is
    decided on its own (`rowwise`: rl/walk.py may ask for many rows at once)."""

    rowwise = True

    def __init__(self, agent: Agent, device: torch.device, chunk: int = 65536) -> None:
        self.agent, self.device, self.chunk = agent, device, chunk

    @torch.inference_mode()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        out = np.empty(obs.shape[0], dtype=np.int64)
        for s in range(0, obs.shape[0], self.chunk):
            x = torch.as_tensor(obs[s : s + self.chunk], device=self.device)
            out[s : s + self.chunk] = self.agent.greedy(x).cpu().numpy()
        return out


def greedy_policy(agent: Agent, device: torch.device, chunk: int = 65536) -> GreedyPolicy:
    """The agent's deterministic policy as a numpy function: argmax, no sampling."""
    return GreedyPolicy(agent, device, chunk)


def now() -> float:
    """Wall-clock seconds for throughput figures (never written into the deterministic metrics)."""
    return time.perf_counter()
