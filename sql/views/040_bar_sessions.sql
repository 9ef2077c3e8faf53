-- Every bar of `bars` placed on its calendar and trading day, and whether it lies in the session that
-- the `session` setting selects (session_windows).
--   calendar: 'XNYS' for stocks and ETFs, '24/7' for crypto.
--   day: the trading day (New York date for XNYS, UTC date for 24/7).
--   in_session: the bar overlaps the session window (ts < end_at and available_at > start_at); always true
--     for crypto; false on weekends and holidays, whose days have no XNYS session.
--   session_no: consecutive trading days differ by one (XNYS session ordinal; day number for 24/7).
--   interval_minutes: the interval's length from its name ('1m' 1, '1h' 60, '1d' 1440).
CREATE OR REPLACE VIEW bar_sessions AS
WITH b AS (
    SELECT *,
           CASE WHEN asset_class = 'crypto' THEN '24/7' ELSE 'XNYS' END AS calendar,
           -- the UTC date by arithmetic (make_timestamp of the epoch is the UTC wall clock): the same value
           -- as timezone('UTC', ts)::DATE, ten times cheaper
           CASE WHEN asset_class = 'crypto' THEN make_timestamp(epoch_us(ts))::DATE
                ELSE timezone('America/New_York', ts)::DATE END AS day,
           TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
               * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                           WHEN 'w' THEN 10080 END AS interval_minutes
    FROM bars
)
SELECT b.symbol, b.source, b.asset_class, b."interval", b.interval_minutes, b.ts, b.available_at,
       b.open, b.high, b.low, b.close, b.volume, b.trades,
       b.calendar, b.day,
       CASE WHEN b.calendar = '24/7' THEN date_diff('day', DATE '1970-01-01', b.day) ELSE w.session_no END
           AS session_no,
       -- UTC midnight as an instant (to_timestamp of the epoch: timezone('UTC', day::TIMESTAMP) without ICU)
       CASE WHEN b.calendar = '24/7' THEN to_timestamp(epoch(b.day::TIMESTAMP)) ELSE w.start_at END AS start_at,
       CASE WHEN b.calendar = '24/7' THEN to_timestamp(epoch(b.day::TIMESTAMP) + 86400) ELSE w.end_at END
           AS end_at,
       CASE WHEN b.calendar = '24/7' THEN true
            ELSE coalesce(b.ts < w.end_at AND b.available_at > w.start_at, false) END AS in_session
FROM b
-- (an equality on the day alone, NULL for crypto, so that DuckDB joins by hash, not by nested loop)
LEFT JOIN session_windows w ON w.day = CASE WHEN b.calendar = 'XNYS' THEN b.day END;
