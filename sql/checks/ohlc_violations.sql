-- Stored bars (every source) whose prices are not a bar: high below open or close, low above them,
-- a non-positive low, or a negative volume.
-- `marketlake check` sets check_files_ohlc to the files (source|interval|symbol|period) where bar_file_days
-- counted such a row by the same rule, so that no other file is opened; unset, every file is read.
SELECT source, symbol, "interval", ts, open, high, low, close, volume, source_file
FROM lake_bars
WHERE NOT (high >= greatest(open, close) AND low <= least(open, close) AND low > 0 AND volume >= 0)
  AND (getvariable('check_files_ohlc') IS NULL
       OR list_contains(getvariable('check_files_ohlc'), concat_ws('|', source, "interval", symbol, period)))
ORDER BY symbol, "interval", ts;
