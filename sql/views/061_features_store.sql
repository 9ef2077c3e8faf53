-- The `features` view as materialised in the lake's feature store (features/store.py): the same columns
-- in the same order, the same rows and values for every (symbol, interval) whose partitions are fresh.
-- Reading it costs a Parquet scan of the symbol's own files (a filter on symbol or interval prunes the
-- others), where `features` recomputes windows and as-of joins. The store is brought up to date after
-- every ingest and before training (features.store.refresh); a (symbol, interval) whose inputs changed
-- since is stale until the next refresh: `marketlake features refresh` (or store.stale()) tells.
CREATE OR REPLACE VIEW features_store AS
SELECT symbol, "interval", * EXCLUDE (symbol, "interval", year)
FROM lake_features;
