-- Bars replaced by a later write, as written (the lake writer keeps them; see lake/schemas.py BAR_REVISIONS).
CREATE OR REPLACE VIEW lake_bar_revisions AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades, source_file, first_seen, last_seen, replaced_by, period
FROM read_parquet(
    coalesce(getvariable('dataset_bar_revisions'), lake_dataset('bar_revisions')) || '/*/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR}
);
