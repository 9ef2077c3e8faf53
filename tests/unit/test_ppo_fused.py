"""The learner's fast path (rl/ppo.py FusedAgent, PPO.loss_gradients, FlatAdam) against the reference: the
Agent's modules with autograd, the PPO loss written as CleanRL writes it, and torch.optim.Adam."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rl.episodes import market_data_from_arrays
from rl.market import EnvConfig
from rl.ppo import PPO, Agent, FlatAdam, FusedAgent, PPOConfig, seed_everything
from rl.vector import VecTradingEnv

# (obs_dim, n_actions, hidden, layout, bar_width)
SHAPES: list[tuple[int, int, tuple[int, ...], tuple[int, int] | None, int]] = [
    (6 * 5 + 2, 2, (16, 16), (6, 5), 4),  # the product's shape, small: BarEncoder, two hidden layers
    (4 * 3 + 2, 3, (8,), (4, 3), 2),  # shorting (3 actions), one hidden layer
    (7, 2, (8, 8, 8), None, 0),  # a plain MLP over the flat observation
    (7, 3, (5,), (2, 3), 0),  # bar_width 0: no encoder even with a layout
]


def reference_loss(agent: Agent, cfg: PPOConfig, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The PPO loss as CleanRL's ppo.py writes it, through autograd."""
    _, logp, entropy, value = agent.act(batch["obs"], batch["actions"])
    logratio = logp - batch["logprobs"]
    ratio = logratio.exp()
    adv = batch["adv"]
    if cfg.norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    c = cfg.clip_coef
    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - c, 1 + c)).mean()
    if cfg.clip_vloss:
        v_unclipped = (value - batch["returns"]) ** 2
        v_clipped = batch["values"] + torch.clamp(value - batch["values"], -c, c)
        v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - batch["returns"]) ** 2).mean()
    else:
        v_loss = 0.5 * ((value - batch["returns"]) ** 2).mean()
    return pg_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v_loss


def make(shape: Any, dtype: torch.dtype, seed: int, n: int = 33) -> tuple[Agent, dict[str, torch.Tensor]]:
    obs_dim, n_actions, hidden, layout, bar_width = shape
    torch.manual_seed(seed)
    agent = Agent(obs_dim, n_actions, hidden, layout, bar_width).to(dtype)
    for p in agent.parameters():  # larger output layers than the init's, so that ratios move and clip
        p.data.add_(torch.randn_like(p) * 0.3)
    g = torch.Generator().manual_seed(seed + 1)
    obs = torch.randn(n, obs_dim, generator=g, dtype=dtype)
    with torch.no_grad():
        logits = agent.actor(obs)
        value = agent.value(obs)
    actions = torch.randint(0, n_actions, (n,), generator=g)
    logp = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
    batch = {
        "obs": obs,
        "actions": actions,
        # the rollout's policy and values a little off the current ones: some ratios and values clip
        "logprobs": logp + 0.3 * torch.randn(n, generator=g, dtype=dtype),
        "values": value + 0.3 * torch.randn(n, generator=g, dtype=dtype),
        "adv": torch.randn(n, generator=g, dtype=dtype),
        "returns": value + torch.randn(n, generator=g, dtype=dtype),
    }
    return agent, batch


def fused_gradient(agent: Agent, cfg: PPOConfig, batch: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    fused = FusedAgent(agent)
    ppo = PPO.__new__(PPO)
    ppo.config = cfg
    logits, value, cache = fused.forward(*fused.split_obs(batch["obs"]))
    d_logits, d_value, parts = ppo.loss_gradients(
        logits, value, batch["actions"], batch["logprobs"], batch["values"], batch["adv"], batch["returns"]
    )
    fused.backward(cache, d_logits, d_value)
    return fused, logits, value, parts


def grads_by_name(agent: Agent, fused: FusedAgent) -> dict[str, torch.Tensor]:
    """The fused gradient cut into the Agent's parameters (each parameter is a view of the flat tensor)."""
    size = fused.flat.element_size()
    out = {}
    for name, p in agent.named_parameters():
        at = (p.data_ptr() - fused.flat.data_ptr()) // size
        out[name] = fused.grad[at : at + p.numel()].view(p.shape)
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("clip_vloss", [True, False])
@pytest.mark.parametrize("norm_adv", [True, False])
def test_fused_gradients_equal_autograd(shape: Any, clip_vloss: bool, norm_adv: bool) -> None:
    cfg = PPOConfig(clip_vloss=clip_vloss, norm_adv=norm_adv, ent_coef=0.05)
    agent, batch = make(shape, torch.float64, seed=len(shape[2]) + 7 * shape[1])
    agent.zero_grad()
    loss = reference_loss(agent, cfg, batch)
    loss.backward()
    reference = {name: torch.clone(p.grad) for name, p in agent.named_parameters() if p.grad is not None}
    fused, logits, value, parts = fused_gradient(agent, cfg, batch)
    with torch.no_grad():
        assert torch.allclose(logits, agent.actor(batch["obs"]), rtol=1e-12, atol=1e-12)
        assert torch.allclose(value, agent.value(batch["obs"]), rtol=1e-12, atol=1e-12)
    total = parts["pg_loss"] - cfg.ent_coef * parts["entropy"] + cfg.vf_coef * parts["v_loss"]
    assert float(total) == pytest.approx(float(loss.detach()), rel=1e-12)
    got = grads_by_name(agent, fused)
    assert set(got) == set(reference)
    for name, g in reference.items():
        assert torch.allclose(got[name], g, rtol=1e-9, atol=1e-12), name
    # the batch exercises both branches of both clips
    assert 0.0 < float(parts["clipfrac"]) < 1.0
    v_delta = (value - batch["values"]).abs()
    assert bool((v_delta > cfg.clip_coef).any()) and bool((v_delta < cfg.clip_coef).any())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 70), which=st.integers(0, len(SHAPES) - 1))
def test_fused_float32_gradients_match_autograd(seed: int, n: int, which: int) -> None:
    cfg = PPOConfig()
    agent, batch = make(SHAPES[which], torch.float32, seed, n)
    agent.zero_grad()
    reference_loss(agent, cfg, batch).backward()
    reference = {name: torch.clone(p.grad) for name, p in agent.named_parameters() if p.grad is not None}
    fused, *_ = fused_gradient(agent, cfg, batch)
    got = grads_by_name(agent, fused)
    scale = max(float(g.abs().max()) for g in reference.values())
    for name, g in reference.items():
        assert torch.allclose(got[name], g, rtol=1e-4, atol=1e-5 * scale), name


def test_the_agent_lives_in_the_flat_tensor() -> None:
    agent, _ = make(SHAPES[0], torch.float32, seed=0)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    fused = FusedAgent(agent)
    for k, v in agent.state_dict().items():
        assert torch.equal(v, before[k]), k  # moved, unchanged
    assert sum(p.numel() for p in agent.parameters()) == fused.flat.numel()
    fused.flat.add_(1.0)
    for k, v in agent.state_dict().items():
        assert torch.equal(v, before[k] + 1.0), k  # an update of the flat tensor is the agent's


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_adam_equals_torch_adam(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(0)
    start = torch.as_tensor(rng.normal(size=50), dtype=dtype)
    ours_p, ours_g = start.clone(), torch.zeros_like(start)
    ref_p = torch.nn.Parameter(start.clone())
    ours = FlatAdam(ours_p, ours_g, lr=3e-3, eps=1e-5)
    ref = torch.optim.Adam([ref_p], lr=3e-3, eps=1e-5, foreach=False)
    for step in range(20):
        g = torch.as_tensor(rng.normal(size=50), dtype=dtype)
        lr = 3e-3 * (1 - step / 20)
        ours.param_groups[0]["lr"] = lr
        ref.param_groups[0]["lr"] = lr
        ours_g.copy_(g)
        ref_p.grad = g.clone()
        ours.step()
        ref.step()
        assert torch.allclose(ours_p, ref_p.detach(), rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)


class WithoutRows:
    """A VecTradingEnv that does not say where its windows come from: the learner stores observations."""

    def __init__(self, env: VecTradingEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.episode_length = env.episode_length

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        return self.env.reset(seed=seed)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        return self.env.step(actions)


def test_windows_cut_from_the_features_teach_the_same_agent_as_stored_observations() -> None:
    rng = np.random.default_rng(0)
    n = 700
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.concatenate([[c[0]], c[:-1]])
    data = market_data_from_arrays(
        o, np.maximum(o, c), np.minimum(o, c), c, rng.normal(size=(n, 3)), segment_id=np.arange(n) // 350
    )
    env_cfg = EnvConfig(window=5, episode_length=40)
    cfg = PPOConfig(
        num_iterations=3, episodes_per_iteration=6, batch_size=32, hidden_sizes=(8, 8), bar_width=2
    )
    runs = []
    for by_row in (True, False):
        seed_everything(cfg.seed, 1)
        env = VecTradingEnv(data, env_cfg, cfg.envs, seed=cfg.seed)
        ppo = PPO(env if by_row else WithoutRows(env), cfg, torch.device("cpu"), layout=(5, 3))
        assert (ppo.features is not None) == by_row
        stats = [ppo.iterate().to_json() for _ in range(cfg.num_iterations)]
        runs.append((stats, {k: v.clone() for k, v in ppo.agent.state_dict().items()}))
    (stats_a, state_a), (stats_b, state_b) = runs
    assert stats_a == stats_b
    for k in state_a:
        assert torch.equal(state_a[k], state_b[k]), k


@pytest.mark.parametrize(
    ("window", "n_features", "bar_width", "hidden", "batch"), [(32, 28, 4, (64, 64), 50), (5, 3, 2, (8,), 7)]
)
def test_windows_of_the_encoded_rows_give_the_forward_pass_bit_for_bit(
    window: int, n_features: int, bar_width: int, hidden: tuple[int, ...], batch: int
) -> None:
    """collect() encodes every feature row once and gathers each step's windows (FusedAgent.encode_rows,
    forward_windows): the same logits and values as the forward pass over whole observations, exactly."""
    torch.manual_seed(0)
    fused = FusedAgent(Agent(window * n_features + 2, 3, hidden, (window, n_features), bar_width))
    rows = 400
    features = torch.randn(rows, n_features)
    first = torch.randint(0, rows - window + 1, (batch,))
    extra = torch.randn(batch, 2)
    obs = torch.cat([torch.stack([features[i : i + window].reshape(-1) for i in first.tolist()]), extra], 1)
    with torch.inference_mode():
        logits, value, _ = fused.forward(*fused.split_obs(obs))
        logits_w, value_w = fused.forward_windows(fused.encode_rows(features), first, extra)
    assert torch.equal(logits, logits_w) and torch.equal(value, value_w)


@pytest.mark.parametrize("spread", [1e-4, 1e-3, 0.3])
def test_the_logged_kl_is_exact_for_small_policy_changes(spread: float) -> None:
    """approx_kl = mean((r - 1) - log r), in float32 as the learner runs: within 1% of the exact value also when
    the policy barely moved (subtracting 1 after the mean rounded a KL below about 1e-7 to 0)."""
    agent, batch = make(SHAPES[0], torch.float32, seed=3, n=256)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        logp = (
            torch.log_softmax(agent.actor(batch["obs"]), -1).gather(1, batch["actions"][:, None]).squeeze(1)
        )
    batch["logprobs"] = logp + spread * torch.randn(len(logp), generator=g)
    _, _, _, parts = fused_gradient(agent, PPOConfig(), batch)
    logratio = (logp - batch["logprobs"]).double()
    exact = float((torch.expm1(logratio) - logratio).mean())
    assert exact > 0
    assert float(parts["approx_kl"]) == pytest.approx(exact, rel=1e-2)
