-- Every stored bars file, per trading day of its rows: what the quality report needs from the rows, from one
-- read of the files and one pass over each file in its physical order (no sort by ts, no de-duplication).
-- One row per (file, day).
--   filename, source, interval, symbol, period: the file and its partition
--   asset_classes    the asset classes in the whole file (distinct)
--   day              the row's trading day as bar_sessions has it: New York date for stocks and ETFs, UTC date
--                    for crypto, from each row's own asset_class
--   n_rows           stored rows
--   n_in             rows inside their session window (bar_sessions.in_session's rule: the XNYS session of
--                    the `session` setting for stocks and ETFs, the whole day for crypto)
--   first_in_ts, max_in_end: the earliest ts and the latest available_at of those rows
--   last_in_end      the available_at of the in-window row with the latest ts
--   inner_gap        seconds: the longest time from an in-window row's available_at to the next in-window
--                    row's ts of the same day in the file's order; right as a gap between bars only where
--                    the file is in strictly increasing ts (order_stored = 0 for the whole file)
--   min_ts, max_ts   the earliest and latest ts
--   min_span, max_span: the least and greatest available_at - ts, in microseconds
--   ohlc_violations  rows whose prices are not a bar (high below open or close, low above them, low <= 0,
--                    volume < 0)
--   off_session      stock and ETF rows that overlap no XNYS session even with extended hours (no session on
--                    their New York date, or outside 04:00-20:00 New York)
--   order_stored     rows whose ts is not after the previous row's in the file (bar_file_order.out_of_order)
CREATE OR REPLACE MACRO bar_file_rows() AS TABLE
-- every stored row with its file, its place in the file, its day and session window (microseconds)
WITH ny_midnight AS (
    -- 00:00 New York of every date of the years the XNYS calendar covers: a stock's New York date is its UTC
    -- date when it is at or after that instant, the day before otherwise (New York is 4 or 5 hours behind
    -- UTC and changes clocks at 02:00), without converting every row's time zone
    SELECT d::DATE AS utc_day, epoch_us(timezone('America/New_York', d)) AS midnight_us
    FROM (
        SELECT unnest(generate_series(make_timestamp(min(year(day)), 1, 1, 0, 0, 0),
                                      make_timestamp(max(year(day)), 12, 31, 0, 0, 0), INTERVAL 1 DAY)) AS d
        FROM lake_trading_sessions
        WHERE calendar = 'XNYS'
        HAVING count(*) > 0
    )
),
rows AS (
    SELECT filename, file_row_number, ts, available_at, epoch_us(ts) AS ts_us, epoch_us(available_at) AS end_us,
           asset_class = 'crypto' AS crypto,
           -- the UTC date by arithmetic, as bar_sessions computes it
           make_timestamp(epoch_us(ts))::DATE AS utc_day,
           NOT (high >= greatest(open, close) AND low <= least(open, close) AND low > 0 AND volume >= 0)
               AS ohlc_bad
    FROM read_parquet(
        coalesce(getvariable('dataset_bars'), lake_dataset('bars')) || '/*/*/*/*/data.parquet',
        hive_partitioning = true,
        hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR},
        filename = true,
        file_row_number = true
    )
),
dated AS (
    -- the trading day as bar_sessions has it: UTC date for crypto, New York date otherwise
    SELECT r.* EXCLUDE (utc_day),
           CASE WHEN r.crypto THEN r.utc_day
                WHEN m.midnight_us IS NULL THEN timezone('America/New_York', r.ts)::DATE
                WHEN r.ts_us >= m.midnight_us THEN r.utc_day
                ELSE r.utc_day - 1 END AS day
    FROM rows r
    LEFT JOIN ny_midnight m ON m.utc_day = CASE WHEN NOT r.crypto THEN r.utc_day END
)
SELECT r.filename, r.file_row_number, r.ts, r.available_at, r.ts_us, r.end_us, r.crypto, r.day, r.ohlc_bad,
       w.start_us AS window_start_us, w.end_us AS window_end_us,
       -- the day's first instant: 00:00 UTC for crypto, 00:00 New York for a stock's trading day
       CASE WHEN r.crypto THEN epoch_us(r.day::TIMESTAMP) ELSE w.midnight_us END AS day_start_us,
       CASE WHEN r.crypto THEN true
            ELSE coalesce(r.ts_us < w.end_us AND r.end_us > w.start_us, false) END AS in_window,
       -- a stock or ETF row overlapping no extended-hours session (the bars_outside_session check's rule)
       NOT r.crypto AND NOT coalesce(r.ts_us < w.ext_end_us AND r.end_us > w.ext_start_us, false) AS off_session
FROM dated r
-- (an equality on the day alone, NULL for crypto, so that DuckDB joins by hash)
LEFT JOIN (
    SELECT day, epoch_us(start_at) AS start_us, epoch_us(end_at) AS end_us,
           epoch_us(ext_open_at) AS ext_start_us, epoch_us(ext_close_at) AS ext_end_us,
           epoch_us(timezone('America/New_York', day::TIMESTAMP)) AS midnight_us
    FROM session_windows
) w ON w.day = CASE WHEN NOT r.crypto THEN r.day END;
CREATE OR REPLACE VIEW bar_file_days AS
WITH per_day AS (
    SELECT filename, day,
           count(*) AS n_rows,
           count(*) FILTER (WHERE in_window) AS n_in,
           min(ts) FILTER (WHERE in_window) AS first_in_ts,
           max(available_at) FILTER (WHERE in_window) AS max_in_end,
           arg_max(available_at, ts_us) FILTER (WHERE in_window) AS last_in_end,
           min(ts) AS min_ts, max(ts) AS max_ts,
           min(end_us - ts_us) AS min_span, max(end_us - ts_us) AS max_span,
           count(*) FILTER (WHERE ohlc_bad) AS ohlc_violations,
           count(*) FILTER (WHERE off_session) AS off_session,
           -- ts - row number x span: one value over the whole file exactly when the file is an unbroken
           -- run of bars in order, each starting where the one before it ended
           min(ts_us - file_row_number * (end_us - ts_us)) AS min_start,
           max(ts_us - file_row_number * (end_us - ts_us)) AS max_start
    FROM bar_file_rows()
    GROUP BY ALL
),
unbroken AS (
    SELECT filename,
           min(min_span) = max(max_span) AND min(min_span) > 0 AND min(min_start) = max(max_start) AS unbroken
    FROM per_day
    GROUP BY filename
),
walked AS (
    -- the other files row by row in their own order: the previous row's ts, and (where every row's
    -- available_at lies as far after its ts as every other row's of the file) its available_at
    SELECT filename, day,
           max(ts_us - prev_end_us) FILTER (
               WHERE in_window AND prev_same_day
                 AND (crypto OR (prev_us < window_end_us AND prev_end_us > window_start_us))) / 1e6 AS inner_gap,
           count(*) FILTER (WHERE ts_us <= prev_us) AS order_stored
    FROM (
        SELECT *,
               prev_us + (end_us - ts_us) AS prev_end_us,
               prev_us >= day_start_us AS prev_same_day
        FROM (
            SELECT filename, day, ts_us, end_us, crypto, in_window, window_start_us, window_end_us, day_start_us,
                   lag(ts_us) OVER (PARTITION BY filename ORDER BY file_row_number) AS prev_us
            FROM bar_file_rows()
            SEMI JOIN (SELECT filename FROM unbroken WHERE NOT unbroken) USING (filename)
        )
    )
    GROUP BY ALL
),
files AS (
    SELECT filename, any_value(symbol) AS symbol, any_value("interval") AS "interval",
           any_value(source) AS source, any_value(period) AS period,
           list(DISTINCT asset_class ORDER BY asset_class) AS asset_classes
    FROM read_parquet(
        coalesce(getvariable('dataset_bars'), lake_dataset('bars')) || '/*/*/*/*/data.parquet',
        hive_partitioning = true,
        hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR},
        filename = true
    )
    GROUP BY filename
)
SELECT f.filename, f.source, f."interval", f.symbol, f.period, f.asset_classes, d.day,
       d.n_rows::BIGINT AS n_rows, d.n_in::BIGINT AS n_in, d.first_in_ts, d.max_in_end, d.last_in_end,
       (CASE WHEN u.unbroken THEN CASE WHEN d.n_in >= 2 THEN 0 END ELSE w.inner_gap END)::DOUBLE AS inner_gap,
       d.min_ts, d.max_ts, d.min_span, d.max_span,
       d.ohlc_violations::BIGINT AS ohlc_violations, d.off_session::BIGINT AS off_session,
       (CASE WHEN u.unbroken THEN 0 ELSE coalesce(w.order_stored, 0) END)::BIGINT AS order_stored
FROM per_day d
JOIN unbroken u USING (filename)
JOIN files f USING (filename)
LEFT JOIN walked w USING (filename, day);
