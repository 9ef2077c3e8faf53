-- Stored training and evaluation runs.
CREATE OR REPLACE VIEW lake_runs AS
SELECT run_id, kind, started_at, finished_at, config, data_snapshot, metrics, status
FROM read_parquet(
    coalesce(getvariable('dataset_runs'), 'datasets/runs') || '/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'period': VARCHAR}
);
