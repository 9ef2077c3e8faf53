-- The data snapshot a training run recorded (its hash and the lake files it covers), for
-- rl/runlog.recorded_snapshot (`marketlake evaluate` compares it with the lake as it is now).
-- Parameters (bound): $run_id.
SELECT data_snapshot, data_files::VARCHAR AS data_files
FROM runs
WHERE run_id = $run_id AND kind = 'train'
ORDER BY started_at DESC
LIMIT 1;
