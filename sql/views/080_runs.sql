-- Training and evaluation runs; config, metrics and data_files as JSON. kind: train | evaluate;
-- status: running | finished | interrupted | failed; parent_run_id: the training run an evaluation judged.
CREATE OR REPLACE VIEW runs AS
SELECT run_id, kind, started_at, finished_at, status, config::JSON AS config, data_snapshot,
       metrics::JSON AS metrics, code_version, run_dir, parent_run_id, data_files::JSON AS data_files
FROM lake_runs;
