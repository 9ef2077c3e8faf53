-- The `running` rows of the lake's `runs`, every column, for rl/runlog.repair_dead_runs (a running row whose
-- process is gone is rewritten whole, as interrupted).
SELECT run_id, kind, started_at, finished_at, config::VARCHAR AS config, data_snapshot,
       metrics::VARCHAR AS metrics, status, code_version, run_dir, parent_run_id,
       data_files::VARCHAR AS data_files
FROM runs
WHERE status = 'running'
ORDER BY started_at, run_id;
