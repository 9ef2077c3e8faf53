-- Days with stock or ETF bars in a year whose XNYS calendar is not in the lake (the writer materialises
-- it after every bar write; a lake filled by other means may lack it).
SELECT symbol, "interval", min(ts) AS first_ts, max(ts) AS last_ts,
       year(timezone('America/New_York', ts)) AS year
FROM lake_bars b
WHERE asset_class <> 'crypto'
  AND NOT EXISTS (
      SELECT 1 FROM lake_trading_sessions s
      WHERE s.calendar = 'XNYS' AND year(s.day) = year(timezone('America/New_York', b.ts))
  )
GROUP BY ALL
ORDER BY ALL;
