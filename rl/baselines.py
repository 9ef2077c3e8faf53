"""Baseline policies, run in the same environment with the same costs as the agent.

A policy maps an observation batch float32 [B, obs_dim] to action indices int64 [B] (how the evaluation
asks it, rl/walk.py). The baselines also take one observation [obs_dim] (as the single env gives it) and
then return one action, an int64 scalar: `buy_and_hold(config)(obs)` is 1 for one observation, [1] * B for B.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rl.market import EnvConfig

Policy = Callable[[np.ndarray], np.ndarray]


def _batch(obs: np.ndarray) -> int | None:
    """B for a batch [B, obs_dim], None for one observation [obs_dim]."""
    shape = np.shape(obs)
    if len(shape) == 1:
        return None
    if len(shape) == 2:
        return shape[0]
    raise ValueError(f"a policy takes one observation [obs_dim] or a batch [B, obs_dim], got shape {shape}")


def _constant(action: int) -> Policy:
    def policy(obs: np.ndarray) -> np.ndarray:
        b = _batch(obs)
        return np.asarray(np.int64(action)) if b is None else np.full(b, action, dtype=np.int64)

    return policy


def flat(config: EnvConfig) -> Policy:
    """Never holds a position (action 0): earns exactly 0."""
    return _constant(0)


def buy_and_hold(config: EnvConfig) -> Policy:
    """Fully long at the first fill and after (action 1): pays one commission per episode (per session
    when stocks may not be held overnight; in the evaluation walk, per segment, closed at a data gap)."""
    return _constant(1)


def random_policy(config: EnvConfig, seed: int) -> Policy:
    """Uniform over the actions, from its own seeded generator: the same seed gives the same actions."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        b = _batch(obs)
        if b is None:
            return np.asarray(rng.integers(0, config.n_actions, dtype=np.int64))
        return rng.integers(0, config.n_actions, size=b, dtype=np.int64)

    return policy


BASELINES = {"flat": flat, "buy_and_hold": buy_and_hold}
