-- The asset class of each given symbol that has bars of the interval, for rl/episodes.py. A symbol whose
-- bars carry two classes (a CSV import calling a crypto pair a stock) takes the class of most of its bars,
-- ties by the class's name: the same answer on every run (any_value gave whichever rows came first).
-- Parameters: $symbols (a list), $interval.
SELECT symbol, first(asset_class ORDER BY n DESC, asset_class) AS asset_class
FROM (
    SELECT symbol, asset_class, count(*) AS n
    FROM bars
    WHERE "interval" = $interval AND list_contains($symbols, symbol)
    GROUP BY symbol, asset_class
)
GROUP BY symbol;
