-- One row per calendar and trading day, regular hours: XNYS from the materialised calendar, and a
-- 00:00-00:00 UTC day for '24/7' over every day from the earliest to the latest crypto bar.
CREATE OR REPLACE VIEW trading_sessions AS
SELECT calendar, day, open_at, close_at, is_early_close
FROM lake_trading_sessions
UNION ALL
SELECT '24/7' AS calendar,
       d::DATE AS day,
       d AS open_at,
       d + INTERVAL 1 DAY AS close_at,
       false AS is_early_close
FROM (
    SELECT unnest(generate_series(
        date_trunc('day', min(ts)), date_trunc('day', max(ts)), INTERVAL 1 DAY)) AS d
    FROM lake_bars
    WHERE asset_class = 'crypto'
    HAVING count(*) > 0
);
