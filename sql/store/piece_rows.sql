-- The rows a large pair of the feature store will hold (features/store.py plans its pieces from them): the
-- ts, in microseconds, of every bar of the batch (chunk_interval, chunk_symbols) that bar_features_priced
-- keeps, i.e. the bars of bar_sessions in the selected session (sql/views/049_bar_features_priced.sql reads
-- `bar_sessions WHERE in_session`, one row per bar). No window: it streams, its memory the ts column's.
-- Run after chunk_bars.sql when the keys are held once (as features_chunk.sql); no order (sorted by the
-- store).
SELECT epoch_us(ts) AS ts
FROM bar_sessions
WHERE in_session
  AND "interval" = getvariable('chunk_interval') AND list_contains(getvariable('chunk_symbols'), symbol);
