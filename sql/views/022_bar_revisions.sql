-- Earlier versions of bars: one row per (symbol, source, interval, ts) and version that a republished
-- vendor file replaced, with the values it had, when it was first seen and last seen, and the file that
-- replaced it. `bars` always shows the latest version; this view shows what changed and when.
--   first_seen: when the lake first held this version (when its file was landed; else when the version
--     before it was replaced); NULL when neither is known (a lake older than this record).
--   last_seen: when a later write replaced it; replaced_by: the file that did (NULL: dropped, no successor).
--   version: 1 for the oldest kept version of a bar, counting up.
CREATE OR REPLACE VIEW bar_revisions AS
SELECT symbol, source, "interval", ts,
       row_number() OVER w AS version,
       available_at, open, high, low, close, volume, trades, source_file,
       coalesce(first_seen, lag(last_seen) OVER w) AS first_seen,
       last_seen, replaced_by
FROM lake_bar_revisions
WINDOW w AS (PARTITION BY symbol, source, "interval", ts ORDER BY last_seen);
