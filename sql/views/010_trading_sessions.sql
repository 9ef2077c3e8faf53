-- One row per calendar and trading day, over every day from the earliest to the latest bar in the lake.
-- XNYS: from the calendar materialised in the lake by features/calendars.py (exchange_calendars):
--   holidays have no row, early closes end at 13:00 New York; open_at/close_at are regular hours,
--   ext_open_at/ext_close_at extended hours (04:00-20:00 New York, 17:00 on an early close).
-- '24/7' (crypto): every UTC day, 00:00 to 00:00.
CREATE OR REPLACE VIEW trading_sessions AS
WITH bar_range AS (
    SELECT min(ts) AS lo, max(ts) AS hi FROM lake_bars
)
SELECT s.calendar, s.day, s.open_at, s.close_at, s.is_early_close, s.ext_open_at, s.ext_close_at
FROM lake_trading_sessions s, bar_range r
WHERE s.calendar = 'XNYS'
  AND s.day BETWEEN timezone('America/New_York', r.lo)::DATE AND timezone('America/New_York', r.hi)::DATE
UNION ALL
SELECT '24/7' AS calendar,
       d::DATE AS day,
       timezone('UTC', d) AS open_at,
       timezone('UTC', d + INTERVAL 1 DAY) AS close_at,
       false AS is_early_close,
       timezone('UTC', d) AS ext_open_at,
       timezone('UTC', d + INTERVAL 1 DAY) AS ext_close_at
FROM (
    -- d: a plain TIMESTAMP at UTC midnight; nothing here depends on the connection's TimeZone
    SELECT unnest(generate_series(
        timezone('UTC', min(ts))::DATE::TIMESTAMP, timezone('UTC', max(ts))::DATE::TIMESTAMP,
        INTERVAL 1 DAY)) AS d
    FROM lake_bars
    HAVING count(*) > 0
);
