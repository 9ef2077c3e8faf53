-- `bars` of one piece of a large pair (piece_bars.sql) whose keys are not known to be held once: the lake's
-- `bars` view (sql/views/020_bars.sql: one row per key, its precedence rule) with ts in [piece_from,
-- piece_to). Its window is partitioned by the key, ts included, so the filter keeps whole keys: the same
-- rows as the view's in that range. The lake's view is named by its catalog (the store's connection is in
-- memory: `memory`), as `main.bars` would name this temporary view itself. chunk_end.sql drops it.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT * FROM memory.main.bars
WHERE ts >= getvariable('piece_from') AND ts < getvariable('piece_to');
