-- Bars stored more than once for one source, symbol, interval and ts (the writer keeps one per partition,
-- so a duplicate means the same bar sits in two period partitions, or a file written around the writer).
SELECT source, symbol, "interval", ts, count(*) AS copies, string_agg(DISTINCT period, ',') AS periods
FROM lake_bars
GROUP BY source, symbol, "interval", ts
HAVING count(*) > 1
ORDER BY symbol, "interval", ts;
