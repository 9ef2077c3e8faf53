-- The asset class of each given symbol that has bars of the interval, for rl/episodes.py.
-- Parameters: $symbols (a list), $interval.
SELECT symbol, any_value(asset_class) AS asset_class
FROM bars
WHERE "interval" = $interval AND list_contains($symbols, symbol)
GROUP BY symbol;
