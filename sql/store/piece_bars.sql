-- `bars` of one piece of a large pair of the feature store (features/store.py computes a pair of more than
-- piece_rows bars in pieces): the batch's bars with ts in [piece_from, piece_to) (variables, TIMESTAMPTZ),
-- the piece's own bars and its look-back margin before them. Its keys are each held once
-- (bars_held_once.sql), so the rows of lake_bars are the `bars` view's (as chunk_bars.sql); the filter on ts
-- is pushed into the Parquet scan (row groups outside the range are skipped). A temporary view of the same
-- name shadows the lake's; chunk_end.sql drops it.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades
FROM lake_bars
WHERE ts >= getvariable('piece_from') AND ts < getvariable('piece_to');
