-- Stored training and evaluation runs (one file per month of started_at). Files written before a column
-- existed read it as NULL (union_by_name).
CREATE OR REPLACE VIEW lake_runs AS
SELECT run_id, kind, started_at, finished_at, config, data_snapshot, metrics, status,
       code_version, run_dir, parent_run_id, data_files
FROM read_parquet(
    coalesce(getvariable('dataset_runs'), lake_dataset('runs')) || '/*/data.parquet',
    hive_partitioning = true,
    union_by_name = true,
    hive_types = {'period': VARCHAR}
);
