-- Whether every (symbol, interval, ts) of a batch's stored bars is held once (by one source, in one period):
-- then the `bars` view (sql/views/020_bars.sql) keeps every row of lake_bars (its precedence window ranks one
-- row per key), and the batch reads them through chunk_bars.sql instead, without that window. A key held
-- twice (NULL keys count as equal, as in the view's PARTITION BY) keeps the view.
SELECT count(*) = 0 AS held_once
FROM (SELECT symbol, "interval", ts FROM lake_bars GROUP BY ALL HAVING count(*) > 1);
