-- Stored bars (every source) whose prices are not a bar: high below open or close, low above them,
-- a non-positive low, or a negative volume.
SELECT source, symbol, "interval", ts, open, high, low, close, volume, source_file
FROM lake_bars
WHERE NOT (high >= greatest(open, close) AND low <= least(open, close) AND low > 0 AND volume >= 0)
ORDER BY symbol, "interval", ts;
