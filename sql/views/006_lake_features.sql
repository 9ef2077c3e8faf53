-- The feature store as written by features/store.py: the `features` view materialised per interval,
-- symbol and UTC year of ts (one Parquet file each). Readers use features_store.
CREATE OR REPLACE VIEW lake_features AS
SELECT *
FROM read_parquet(
    coalesce(getvariable('dataset_features'), lake_dataset('features')) || '/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'interval': VARCHAR, 'symbol': VARCHAR, 'year': VARCHAR}
);
