-- Every stored bar of every source, as written (one Parquet file per source/interval/symbol/period).
CREATE OR REPLACE VIEW lake_bars AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades, source_file, period
FROM read_parquet(
    coalesce(getvariable('dataset_bars'), lake_dataset('bars')) || '/*/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR}
);
