-- One batch of the feature store (features/store.py): the `features` rows of one interval ($1) and a list
-- of symbols ($2), with the bar's prices (features_priced) and the UTC year of ts that names the partition.
-- Run on a connection whose lake_bars and lake_news see only the batch's inputs. No ORDER BY: the rows are
-- grouped into their (symbol, year) partitions in Python and each partition is ordered by ts as it is
-- written, so DuckDB never sorts the wide rows.
SELECT * EXCLUDE ("interval"), year(ts) AS year
FROM features_priced
WHERE "interval" = $1 AND list_contains($2, symbol);
