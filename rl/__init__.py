"""Episodes out of DuckDB, the trading environment, PPO, evaluation and run logging."""
