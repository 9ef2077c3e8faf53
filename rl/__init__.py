"""rl/: the trading environment, PPO and evaluation on top of the lake.

`import rl` registers the Gymnasium id `marketlake/Trading-v0` (rl.env.TradingEnv)."""

from __future__ import annotations

import gymnasium

ENV_ID = "marketlake/Trading-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="rl.env:TradingEnv", disable_env_checker=False)
