-- One batch of the feature store (features/store.py): the `features` rows of one interval ($1) and a list
-- of symbols ($2), with the bar's prices (features_priced) and the UTC year of ts that names the partition. Run on a connection whose lake_bars
-- and lake_news see only the batch's inputs; kept in a temporary table (DuckDB spills it under
-- memory_limit) and written out one symbol and year at a time.
CREATE OR REPLACE TEMP TABLE store_chunk AS
SELECT * EXCLUDE ("interval"), year(ts) AS year
FROM features_priced
WHERE "interval" = $1 AND list_contains($2, symbol);
