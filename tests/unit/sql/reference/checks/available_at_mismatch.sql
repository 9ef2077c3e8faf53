-- Bars whose available_at is not when the bar is known: ts + interval for intraday bars and crypto days;
-- for stock and ETF daily bars, ts must be the session's open and available_at the end of that day's
-- after-hours trading, the close plus four hours (20:00 New York, 17:00 on an early close: ext_close_at).
WITH b AS (
    SELECT *,
           TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
               * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                           WHEN 'w' THEN 10080 END AS interval_minutes
    FROM lake_bars
)
SELECT b.source, b.symbol, b."interval", b.ts, b.available_at, s.open_at AS session_open_at,
       s.ext_close_at AS session_ext_close_at, b.source_file
FROM b
LEFT JOIN lake_trading_sessions s
    ON s.calendar = 'XNYS' AND s.day = timezone('America/New_York', b.ts)::DATE
WHERE CASE WHEN b.asset_class <> 'crypto' AND b.interval_minutes = 1440
               THEN s.day IS NULL OR b.ts <> s.open_at OR b.available_at <> s.ext_close_at
           WHEN b.interval_minutes IS NULL THEN b.available_at <= b.ts
           ELSE b.available_at <> b.ts + to_minutes(b.interval_minutes)
      END
ORDER BY b.symbol, b."interval", b.ts;
