-- What bar_quality and symbol_quality need from the bars, per symbol, interval and day: one row per
-- (symbol, interval, day) holding any stored bar.
--   day                  the bar's trading day as bar_sessions has it (New York date for stocks and ETFs, UTC
--                        date for crypto), from each stored row's own asset_class
--   n_shown              bars of `bars` (the precedence winners) on the day, in the session or not
--   n_bars               of those, the bars inside the session (bar_sessions.in_session)
--   first_ts, last_end   the earliest ts and the latest available_at of those in-session bars
--   inner_gap            seconds: the longest time from one in-session bar's available_at to the next one's
--                        ts on the same day (bar_quality's lag over the day's in-session bars ordered by ts);
--                        NULL with fewer than two
--   min_ts, max_ts       the earliest and latest ts of the shown bars
--   sources              the shown bars' sources (distinct); asset_class, calendar: one shown bar's
--   asset_classes        the asset classes of the day's stored rows; interval_minutes from the interval
--   ohlc_violations      stored rows (every source, shown or not) whose prices are not a bar
--   dup_stored           stored rows beyond the first of one source with the same (symbol, interval, ts)
--   order_stored         stored rows not after their predecessor in their file (bar_file_order)
-- How: bar_file_days reads every file once, in its own order. A (symbol, interval) is simple when each of
-- its files is in strictly increasing ts with every row's available_at the same time after its ts, the
-- files' ts ranges do not overlap and all its rows have one asset class: then every stored row is a bar of `bars` (no ts is held twice), no row is a duplicate, and
-- the per-file figures add up, the gaps between two files of one day joined at the files' edges. Any other
-- (symbol, interval) (two sources over the same time, a bar stored twice, a file out of order) is computed
-- the straightforward way, `bars`' rule row by row, over its own rows only. The equality of both ways with
-- the plain definitions is tested (tests/unit/test_quality_fast.py).
CREATE OR REPLACE VIEW bar_day_stats AS
WITH fd AS (
    SELECT * FROM bar_file_days
),
file_ranges AS (
    SELECT filename, any_value(symbol) AS symbol, any_value("interval") AS "interval",
           any_value(asset_classes) AS asset_classes,
           min(min_ts) AS min_ts, max(max_ts) AS max_ts, sum(order_stored) AS order_stored,
           min(min_span) = max(max_span) AS even_span
    FROM fd
    GROUP BY filename
),
pairs AS (
    SELECT symbol, "interval",
           bool_and(order_stored = 0 AND even_span AND coalesce(prev_max_ts < min_ts, true))
               AND max(len(asset_classes)) = 1 AND count(DISTINCT asset_classes[1]) = 1 AS simple
    FROM (
        SELECT *,
               lag(max_ts) OVER (PARTITION BY symbol, "interval" ORDER BY min_ts, max_ts) AS prev_max_ts
        FROM file_ranges
    )
    GROUP BY symbol, "interval"
),
simple_fd AS (
    SELECT fd.* FROM fd SEMI JOIN (SELECT symbol, "interval" FROM pairs WHERE simple) p USING (symbol, "interval")
),
edges AS (
    -- where a simple series' day spans two files: the gap from the last in-session bar of one file to the
    -- first of the next (the files' ranges do not overlap, so their pieces of the day follow each other)
    SELECT symbol, "interval", day,
           max(epoch(first_in_ts) - epoch(prev_end)) AS edge_gap
    FROM (
        SELECT symbol, "interval", day, first_in_ts,
               lag(last_in_end) OVER (PARTITION BY symbol, "interval", day ORDER BY first_in_ts) AS prev_end
        FROM simple_fd
        WHERE n_in > 0
    )
    GROUP BY ALL
),
simple_days AS (
    SELECT d.symbol, d."interval", d.day,
           sum(d.n_rows) AS n_shown, sum(d.n_in) AS n_bars,
           min(d.first_in_ts) AS first_ts, max(d.max_in_end) AS last_end,
           max(d.inner_gap) AS file_gap,
           min(d.min_ts) AS min_ts, max(d.max_ts) AS max_ts,
           list(DISTINCT d.source) AS sources,
           any_value(d.asset_classes[1]) AS asset_class,
           any_value(d.asset_classes) AS asset_classes,
           sum(d.ohlc_violations) AS ohlc_violations,
           0 AS dup_stored,
           sum(d.order_stored) AS order_stored
    FROM simple_fd d
    GROUP BY ALL
),
-- the other series, the straightforward way
other_rows AS (
    SELECT b.symbol, b."interval", b.source, b.asset_class, b.ts, b.available_at,
           CASE WHEN b.asset_class = 'crypto' THEN make_timestamp(epoch_us(b.ts))::DATE
                ELSE timezone('America/New_York', b.ts)::DATE END AS day,
           row_number() OVER (
               PARTITION BY b.symbol, b."interval", b.ts
               ORDER BY bar_source_rank(b.source), b.source, b.period DESC, b.source_file
           ) = 1 AS shown,
           row_number() OVER (PARTITION BY b.symbol, b."interval", b.ts, b.source) > 1 AS dup
    FROM lake_bars b
    SEMI JOIN (SELECT symbol, "interval" FROM pairs WHERE NOT simple) p USING (symbol, "interval")
),
other_placed AS (
    SELECT o.*,
           o.shown AND CASE WHEN o.asset_class = 'crypto' THEN true
                            ELSE coalesce(o.ts < w.end_at AND o.available_at > w.start_at, false) END
               AS in_session
    FROM other_rows o
    LEFT JOIN session_windows w ON w.day = CASE WHEN o.asset_class <> 'crypto' THEN o.day END
),
other_gaps AS (
    SELECT symbol, "interval", day, max(epoch(ts) - epoch(prev_end)) AS inner_gap
    FROM (
        SELECT symbol, "interval", day, ts,
               lag(available_at) OVER (PARTITION BY symbol, "interval", day ORDER BY ts) AS prev_end
        FROM other_placed
        WHERE in_session
    )
    GROUP BY ALL
),
other_days AS (
    SELECT o.symbol, o."interval", o.day,
           count(*) FILTER (WHERE o.shown) AS n_shown,
           count(*) FILTER (WHERE o.in_session) AS n_bars,
           min(o.ts) FILTER (WHERE o.in_session) AS first_ts,
           max(o.available_at) FILTER (WHERE o.in_session) AS last_end,
           min(o.ts) FILTER (WHERE o.shown) AS min_ts,
           max(o.ts) FILTER (WHERE o.shown) AS max_ts,
           list(DISTINCT o.source) FILTER (WHERE o.shown) AS sources,
           any_value(o.asset_class) FILTER (WHERE o.shown) AS asset_class,
           list(DISTINCT o.asset_class ORDER BY o.asset_class) AS asset_classes,
           count(*) FILTER (WHERE o.dup) AS dup_stored
    FROM other_placed o
    GROUP BY ALL
),
other_stored AS (
    SELECT symbol, "interval", day,
           sum(ohlc_violations) AS ohlc_violations, sum(order_stored) AS order_stored
    FROM fd
    SEMI JOIN (SELECT symbol, "interval" FROM pairs WHERE NOT simple) p USING (symbol, "interval")
    GROUP BY ALL
),
days AS (
    SELECT s.symbol, s."interval", s.day, s.n_shown, s.n_bars, s.first_ts, s.last_end,
           CASE WHEN e.edge_gap IS NULL THEN s.file_gap
                WHEN s.file_gap IS NULL THEN e.edge_gap
                ELSE greatest(s.file_gap, e.edge_gap) END AS inner_gap,
           s.min_ts, s.max_ts, s.sources, s.asset_class, s.asset_classes,
           s.ohlc_violations, s.dup_stored, s.order_stored
    FROM simple_days s
    LEFT JOIN edges e USING (symbol, "interval", day)
    UNION ALL
    SELECT o.symbol, o."interval", o.day, o.n_shown, o.n_bars, o.first_ts, o.last_end, g.inner_gap,
           o.min_ts, o.max_ts, o.sources, o.asset_class, o.asset_classes,
           coalesce(st.ohlc_violations, 0), o.dup_stored, coalesce(st.order_stored, 0)
    FROM other_days o
    LEFT JOIN other_gaps g USING (symbol, "interval", day)
    LEFT JOIN other_stored st USING (symbol, "interval", day)
)
SELECT symbol, "interval", day,
       n_shown::BIGINT AS n_shown, n_bars::BIGINT AS n_bars, first_ts, last_end, inner_gap::DOUBLE AS inner_gap,
       min_ts, max_ts, sources, asset_class,
       CASE WHEN asset_class = 'crypto' THEN '24/7' WHEN asset_class IS NOT NULL THEN 'XNYS' END AS calendar,
       TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
           * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                       WHEN 'w' THEN 10080 END AS interval_minutes,
       ohlc_violations::BIGINT AS ohlc_violations, dup_stored::BIGINT AS dup_stored,
       order_stored::BIGINT AS order_stored, asset_classes
FROM days;
