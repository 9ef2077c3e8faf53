-- Before `marketlake check` (features/check.py) reads symbol_quality and the checks: the views they read
-- more than once are computed once, into temporary tables, and shadowed by temporary views of the same
-- name (DuckDB resolves temp before main). The same rows, computed by the same view definitions.
-- bar_file_days reads every bars file once, and bar_day_stats (which bar_quality and symbol_quality read)
-- is built from it.
CREATE OR REPLACE TEMP TABLE check_bar_file_days AS SELECT * FROM main.bar_file_days;
CREATE OR REPLACE TEMP VIEW bar_file_days AS SELECT * FROM check_bar_file_days;
CREATE OR REPLACE TEMP TABLE check_bar_day_stats AS SELECT * FROM main.bar_day_stats;
CREATE OR REPLACE TEMP VIEW bar_day_stats AS SELECT * FROM check_bar_day_stats;
-- The checks that read stored rows are narrowed to the files that can hold a failing row, as found in
-- bar_file_days by the same rules; each list is a constant, so DuckDB opens no other file. A file is named
-- source|interval|symbol|period, its partition.
CREATE OR REPLACE TEMP TABLE check_files AS
WITH f AS (
    SELECT filename, concat_ws('|', source, "interval", symbol, period) AS file_key, source, "interval", symbol,
           any_value(asset_classes) AS asset_classes,
           min(min_ts) AS lo, max(max_ts) AS hi,
           min(min_span) AS min_span, max(max_span) AS max_span,
           sum(ohlc_violations) AS ohlc_violations, sum(order_stored) AS order_stored,
           sum(off_session) AS off_session,
           -- the years of its days without an XNYS calendar (a stock's day is its New York date)
           count(*) FILTER (WHERE year(day) NOT IN (SELECT DISTINCT year(day) FROM lake_trading_sessions
                                                    WHERE calendar = 'XNYS')) AS days_without_calendar,
           TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
               * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                           WHEN 'w' THEN 10080 END AS interval_minutes
    FROM check_bar_file_days
    GROUP BY ALL
),
-- a (source, symbol, interval) can hold a bar twice only with a file not in strictly increasing ts, or with
-- two files whose ts ranges meet
twice AS (
    SELECT DISTINCT f.source, f.symbol, f."interval"
    FROM f
    LEFT JOIN f g
        ON g.source = f.source AND g.symbol = f.symbol AND g."interval" = f."interval"
       AND g.filename <> f.filename AND g.lo <= f.hi AND f.lo <= g.hi
    WHERE f.order_stored > 0 OR g.filename IS NOT NULL
)
SELECT f.filename, f.file_key, f.symbol, f."interval",
       f.asset_classes <> ['crypto'] AND f.days_without_calendar > 0 AS missing_calendar,
       f.off_session > 0 AS off_session,
       f.ohlc_violations > 0 AS ohlc,
       f.order_stored > 0 AS out_of_order,
       t.source IS NOT NULL AS duplicates,
       -- available_at_mismatch: every row of an understood interval, stock and ETF daily bars aside, lies
       -- exactly the interval after its ts
       NOT coalesce((f.interval_minutes <> 1440 OR f.asset_classes = ['crypto'])
                    AND f.min_span = f.interval_minutes * 60000000
                    AND f.max_span = f.interval_minutes * 60000000, false) AS available_at
FROM f
LEFT JOIN twice t USING (source, symbol, "interval");
SET VARIABLE check_files_ohlc = (
    SELECT coalesce(list(file_key) FILTER (WHERE ohlc), []::VARCHAR[]) FROM check_files
);
SET VARIABLE check_files_duplicates = (
    SELECT coalesce(list(file_key) FILTER (WHERE duplicates), []::VARCHAR[]) FROM check_files
);
SET VARIABLE check_files_available_at = (
    SELECT coalesce(list(file_key) FILTER (WHERE available_at), []::VARCHAR[]) FROM check_files
);
SET VARIABLE check_files_missing_calendar = (
    SELECT coalesce(list(file_key) FILTER (WHERE missing_calendar), []::VARCHAR[]) FROM check_files
);
-- bars_outside_session: the files with such a row, and every (symbol, interval) they belong to (whose rows
-- compete for each ts by `bars`' rule)
SET VARIABLE check_files_outside_session = (
    SELECT coalesce(list(file_key) FILTER (WHERE off_session), []::VARCHAR[]) FROM check_files
);
SET VARIABLE check_series_outside_session = (
    SELECT coalesce(list(DISTINCT concat_ws('|', symbol, "interval")) FILTER (WHERE off_session), []::VARCHAR[])
    FROM check_files
);
-- bar_file_order: only the files that hold a row out of order; the out_of_order check reads those rows
SET VARIABLE check_files_out_of_order = (
    SELECT coalesce(list(filename) FILTER (WHERE out_of_order), []::VARCHAR[]) FROM check_files
);
CREATE OR REPLACE TEMP TABLE check_bar_file_order AS
SELECT * FROM main.bar_file_order WHERE list_contains(getvariable('check_files_out_of_order'), filename);
CREATE OR REPLACE TEMP VIEW bar_file_order AS SELECT * FROM check_bar_file_order;
