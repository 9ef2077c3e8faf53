-- One chunk of the feature store (features/store.py): the `features` rows of one symbol ($1) and
-- interval ($2), with the UTC year of ts that names the partition. Run on a connection whose lake_bars and
-- lake_news see only the chunk's inputs; kept in a temporary table (DuckDB spills it under memory_limit)
-- and written out one year at a time.
CREATE OR REPLACE TEMP TABLE store_chunk AS
SELECT * EXCLUDE (symbol, "interval"), year(ts) AS year
FROM features
WHERE symbol = $1 AND "interval" = $2;
