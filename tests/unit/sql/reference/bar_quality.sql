-- Data quality per symbol, interval and trading day, for every trading day from the symbol's first to its
-- last bar (days with no bar at all are rows with n_bars = 0). Holidays and weekends of XNYS have no row.
--   n_bars          bars of `bars` inside the session (regular or extended hours per lake_settings.session;
--                   every bar for crypto)
--   expected_bars   from the calendar: ceil(session minutes / interval minutes), one for daily bars, NULL
--                   (not measured) for intervals longer than a day (1w) or not understood:
--                   regular NYSE day 390 one-minute bars, early close 210, extended 960 (780 early close);
--                   crypto 1440 a day
--   missing_ratio   missing_bars / expected_bars, missing_bars = greatest(expected_bars - n_bars, 0)
--   max_gap_minutes longest stretch of session time with no bar, session edges included (0 when complete;
--                   the whole session when the day has no bar)
--   ohlc_violations stored rows (every source) with high < max(open, close), low > min(open, close),
--                   low <= 0 or volume < 0
--   duplicates      stored rows of one source with the same (symbol, interval, ts) beyond the first, plus
--                   rows the ingestors quarantined as duplicates (reason mentions 'duplicate')
--   out_of_order    stored rows not after their predecessor in the file's physical order (bar_file_order),
--                   plus rows quarantined as out of order by an ingestor (reason mentions 'order')
CREATE OR REPLACE TEMP VIEW reference_bar_quality AS
WITH series AS (
    SELECT symbol, "interval", any_value(calendar) AS calendar, any_value(interval_minutes) AS interval_minutes,
           min(day) AS first_day, max(day) AS last_day
    FROM bar_sessions
    GROUP BY symbol, "interval"
),
days AS (
    SELECT s.symbol, s."interval", s.calendar, s.interval_minutes, w.day, w.start_at, w.end_at,
           w.is_early_close
    FROM series s
    JOIN session_windows w ON s.calendar = 'XNYS' AND w.day BETWEEN s.first_day AND s.last_day
    UNION ALL
    SELECT symbol, "interval", calendar, interval_minutes, d::DATE AS day,
           timezone('UTC', d) AS start_at, timezone('UTC', d + INTERVAL 1 DAY) AS end_at,
           false AS is_early_close
    FROM (
        SELECT *, unnest(generate_series(first_day::TIMESTAMP, last_day::TIMESTAMP, INTERVAL 1 DAY)) AS d
        FROM series
        WHERE calendar = '24/7'
    )
),
in_session AS (
    SELECT symbol, "interval", day, ts, available_at,
           epoch(ts) - epoch(lag(available_at) OVER (PARTITION BY symbol, "interval", day ORDER BY ts)) AS gap_before
    FROM bar_sessions
    WHERE in_session
),
present AS (
    SELECT symbol, "interval", day, count(*) AS n_bars, min(ts) AS first_ts, max(available_at) AS last_end,
           max(gap_before) / 60.0 AS inner_gap
    FROM in_session
    GROUP BY ALL
),
stored AS (
    SELECT source, symbol, "interval", asset_class, ts, open, high, low, close, volume,
           CASE WHEN asset_class = 'crypto' THEN make_timestamp(epoch_us(ts))::DATE
                ELSE timezone('America/New_York', ts)::DATE END AS day
    FROM lake_bars
),
violations AS (
    SELECT symbol, "interval", day,
           count(*) FILTER (WHERE NOT (high >= greatest(open, close) AND low <= least(open, close)
                                       AND low > 0 AND volume >= 0)) AS ohlc_violations
    FROM stored
    GROUP BY ALL
),
asset AS (
    SELECT DISTINCT symbol, asset_class FROM lake_bars
),
rejected AS (
    SELECT r.symbol, r."interval",
           CASE WHEN a.asset_class = 'crypto' THEN make_timestamp(epoch_us(r.ts))::DATE
                ELSE timezone('America/New_York', r.ts)::DATE END AS day,
           count(*) FILTER (WHERE r.reason ILIKE '%duplicate%') AS dup_rejected,
           count(*) FILTER (WHERE r.reason ILIKE '%order%') AS order_rejected
    FROM lake_bars_rejected r
    JOIN asset a ON a.symbol = r.symbol
    WHERE r.ts IS NOT NULL
    GROUP BY ALL
),
dup_stored AS (
    SELECT symbol, "interval", day, sum(n - 1) AS dup_stored
    FROM (SELECT source, symbol, "interval", ts, any_value(day) AS day, count(*) AS n
          FROM stored GROUP BY source, symbol, "interval", ts HAVING count(*) > 1)
    GROUP BY ALL
),
order_stored AS (
    SELECT symbol, "interval",
           CASE WHEN asset_class = 'crypto' THEN make_timestamp(epoch_us(ts))::DATE
                ELSE timezone('America/New_York', ts)::DATE END AS day,
           count(*) AS order_stored
    FROM bar_file_order
    WHERE out_of_order
    GROUP BY ALL
),
joined AS (
    SELECT d.*,
           (epoch(d.end_at) - epoch(d.start_at)) / 60.0 AS session_minutes,
           coalesce(p.n_bars, 0) AS n_bars, p.first_ts, p.last_end, p.inner_gap,
           coalesce(v.ohlc_violations, 0) AS ohlc_violations,
           coalesce(ds.dup_stored, 0) + coalesce(rj.dup_rejected, 0) AS duplicates,
           coalesce(os.order_stored, 0) + coalesce(rj.order_rejected, 0) AS out_of_order
    FROM days d
    LEFT JOIN present p USING (symbol, "interval", day)
    LEFT JOIN violations v USING (symbol, "interval", day)
    LEFT JOIN rejected rj USING (symbol, "interval", day)
    LEFT JOIN dup_stored ds USING (symbol, "interval", day)
    LEFT JOIN order_stored os USING (symbol, "interval", day)
),
expected AS (
    SELECT *,
           CASE WHEN interval_minutes IS NULL OR interval_minutes > 1440 THEN NULL
                WHEN interval_minutes = 1440 THEN 1
                ELSE ceil(session_minutes / interval_minutes) END::BIGINT AS expected_bars
    FROM joined
)
SELECT symbol, "interval", day,
       n_bars::BIGINT AS n_bars,
       expected_bars,
       CASE WHEN expected_bars > 0 THEN greatest(expected_bars - n_bars, 0) / expected_bars END::DOUBLE
           AS missing_ratio,
       CASE WHEN n_bars = 0 THEN session_minutes
            WHEN interval_minutes >= 1440 THEN 0
            ELSE greatest(0, coalesce(inner_gap, 0), (epoch(first_ts) - epoch(start_at)) / 60.0,
                          (epoch(end_at) - epoch(last_end)) / 60.0) END::DOUBLE AS max_gap_minutes,
       ohlc_violations::BIGINT AS ohlc_violations,
       duplicates::BIGINT AS duplicates,
       out_of_order::BIGINT AS out_of_order,
       calendar, start_at, end_at, is_early_close,
       greatest(expected_bars - n_bars, 0)::BIGINT AS missing_bars
FROM expected;
