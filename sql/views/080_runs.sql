-- Training and evaluation runs; config and metrics as JSON.
CREATE OR REPLACE VIEW runs AS
SELECT run_id, kind, started_at, finished_at, config::JSON AS config, data_snapshot,
       metrics::JSON AS metrics, status
FROM lake_runs;
