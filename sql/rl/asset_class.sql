-- The asset class of one (symbol, interval), for rl/episodes.py. Parameters: $symbol, $interval.
SELECT any_value(asset_class) FROM bars WHERE symbol = $symbol AND "interval" = $interval HAVING count(*) > 0;
