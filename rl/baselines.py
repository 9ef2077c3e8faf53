"""Baseline policies, run in the same environment with the same costs as the agent.

A policy maps an observation batch float32 [B, obs_dim] to action indices int64 [B]."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rl.market import EnvConfig

Policy = Callable[[np.ndarray], np.ndarray]


def flat(config: EnvConfig) -> Policy:
    """Never holds a position (action 0): earns exactly 0."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), dtype=np.int64)

    return policy


def buy_and_hold(config: EnvConfig) -> Policy:
    """Fully long at the first fill and after (action 1): pays one commission per episode (per session
    when stocks may not be held overnight; in the evaluation walk, per segment, closed at a data gap)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.ones(len(obs), dtype=np.int64)

    return policy


def random_policy(config: EnvConfig, seed: int) -> Policy:
    """Uniform over the actions, from its own seeded generator: the same seed gives the same actions."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        return rng.integers(0, config.n_actions, size=len(obs), dtype=np.int64)

    return policy


BASELINES = {"flat": flat, "buy_and_hold": buy_and_hold}
