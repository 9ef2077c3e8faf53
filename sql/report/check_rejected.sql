-- `marketlake check`'s `rejected`: the quarantined bars of each (symbol, interval), each counted once.
-- bars_rejected keeps a row per (source_file, line_number): the same file imported again under another
-- name, or another file carrying the same bar, adds rows for a bar already quarantined. A bar is its
-- (symbol, interval, ts, reason); a row whose ts could not be read is its raw text and reason (and, with
-- no raw text either, its file and line).
SELECT coalesce(symbol, '') AS symbol,
       coalesce("interval", '') AS "interval",
       count(DISTINCT CASE
           WHEN ts IS NOT NULL THEN ['ts', CAST(epoch_us(ts) AS VARCHAR), reason]
           WHEN raw IS NOT NULL THEN ['raw', raw, reason]
           ELSE ['line', source_file, CAST(line_number AS VARCHAR), reason]
       END) AS n
FROM lake_bars_rejected
GROUP BY ALL
