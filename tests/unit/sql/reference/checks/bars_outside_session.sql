-- Stock and ETF bars that overlap no XNYS session even with extended hours (04:00-20:00 New York):
-- weekends, holidays, overnight, or a year whose calendar is not materialised. Bars outside regular hours
-- but inside extended hours are not failures: with session = 'regular' they are only left out of
-- bar_quality counts and features.
SELECT b.source, b.symbol, b."interval", b.ts, b.available_at,
       timezone('America/New_York', b.ts) AS ts_new_york
FROM bars b
LEFT JOIN lake_trading_sessions s
    ON s.calendar = 'XNYS' AND s.day = timezone('America/New_York', b.ts)::DATE
WHERE b.asset_class <> 'crypto'
  AND NOT coalesce(b.ts < s.ext_close_at AND b.available_at > s.ext_open_at, false)
ORDER BY b.symbol, b."interval", b.ts;
