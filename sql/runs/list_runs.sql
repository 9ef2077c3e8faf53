-- Every run in the lake's `runs` dataset, newest first, for rl/runlog.list_runs (`marketlake runs`).
-- Parameters (bound): $kind (NULL for every kind), $limit (NULL for no limit).
SELECT run_id, kind, status, started_at, finished_at, parent_run_id, data_snapshot,
       code_version, run_dir, config::VARCHAR AS config, metrics::VARCHAR AS metrics
FROM runs
WHERE $kind IS NULL OR kind = $kind
ORDER BY started_at DESC, run_id DESC
LIMIT coalesce($limit, 9223372036854775807);
