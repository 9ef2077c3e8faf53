-- Quarantined rows, as written, with the reason and the raw text of the row.
CREATE OR REPLACE VIEW lake_bars_rejected AS
SELECT source, symbol, "interval", source_file, line_number, raw, ts,
       open, high, low, close, volume, reason, period
FROM read_parquet(
    coalesce(getvariable('dataset_bars_rejected'), lake_dataset('bars_rejected')) || '/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'period': VARCHAR}
);
