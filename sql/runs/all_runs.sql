-- Every row of the lake's `runs`, every column, oldest first, for rl/runlog.stored_records
-- (`marketlake runs sync --all` sends them all to Supabase).
SELECT run_id, kind, started_at, finished_at, config::VARCHAR AS config, data_snapshot,
       metrics::VARCHAR AS metrics, status, code_version, run_dir, parent_run_id,
       data_files::VARCHAR AS data_files
FROM runs
ORDER BY started_at, run_id;
