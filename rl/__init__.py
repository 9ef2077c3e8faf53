"""rl/: the trading environment, PPO and evaluation on top of the lake.

`import rl` registers the Gymnasium id `marketlake/Trading-v0`: `gymnasium.make` builds the single env
(rl.env.TradingEnv), `gymnasium.make_vec(..., num_envs=N)` the numpy vector env (rl.vector.make_vec_env: one
read of the period for the N episodes; vectorization_mode="sync" or "async" wrap N single envs instead).
`rl.FEATURES` names the feature columns of an observation's window rows, in their order (docs/trading.md)."""

from __future__ import annotations

from typing import Any

import gymnasium

ENV_ID = "marketlake/Trading-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="rl.env:TradingEnv",
        vector_entry_point="rl.vector:make_vec_env",
        disable_env_checker=False,
    )


def __getattr__(name: str) -> Any:
    """rl.FEATURES (rl.episodes.FEATURES), imported when first asked for: `import rl` stays light."""
    if name == "FEATURES":
        from rl.episodes import FEATURES

        return FEATURES
    raise AttributeError(f"module 'rl' has no attribute {name!r}")
