-- Bars stored more than once for one source, symbol, interval and ts (the writer keeps one per partition,
-- so a duplicate means the same bar sits in two period partitions, or a file written around the writer).
-- `marketlake check` sets check_files_duplicates to the files (source|interval|symbol|period) of every
-- (source, symbol, interval) that can hold a bar twice: one with a file not in strictly increasing ts, or
-- with two files whose ts ranges meet (bar_file_days); unset, every file is read.
SELECT source, symbol, "interval", ts, count(*) AS copies, string_agg(DISTINCT period, ',' ORDER BY period) AS periods
FROM lake_bars
WHERE getvariable('check_files_duplicates') IS NULL
   OR list_contains(getvariable('check_files_duplicates'), concat_ws('|', source, "interval", symbol, period))
GROUP BY source, symbol, "interval", ts
HAVING count(*) > 1
ORDER BY symbol, "interval", ts;
