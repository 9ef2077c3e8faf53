-- `bars` of a batch of the feature store whose keys are each held once (bars_held_once.sql): the rows of
-- lake_bars as they are, in the view's columns, which are then exactly the view's rows (sql/views/020_bars.sql
-- keeps one row per (symbol, interval, ts)). A temporary view of the same name shadows the lake's for the
-- batch (DuckDB resolves temp before main, also inside the views that read `bars`); chunk_end.sql drops it.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades
FROM lake_bars;
