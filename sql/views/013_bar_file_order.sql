-- Stored bars in their physical order inside each Parquet file, with the previous row's ts.
-- The lake writer sorts every partition by ts, so a row whose ts is not after the previous row's
-- (out_of_order) means a file written around the writer, or a corrupt one. What a vendor's raw file had
-- out of order is only known to the ingestor: it quarantines such rows in bars_rejected with a reason
-- that says so ('out of order'); bar_quality counts both.
CREATE OR REPLACE VIEW bar_file_order AS
SELECT source, symbol, "interval", asset_class, ts, filename, file_row_number,
       lag(ts) OVER (PARTITION BY filename ORDER BY file_row_number) AS prev_ts,
       coalesce(ts <= lag(ts) OVER (PARTITION BY filename ORDER BY file_row_number), false) AS out_of_order
FROM read_parquet(
    coalesce(getvariable('dataset_bars'), lake_dataset('bars')) || '/*/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR},
    filename = true,
    file_row_number = true
);
