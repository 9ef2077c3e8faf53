-- Stock and ETF bars in a year whose XNYS calendar is not in the lake (the writer materialises it after
-- every bar write; a lake filled by other means may lack it). One row per symbol, interval and year.
WITH years AS (
    SELECT DISTINCT year(day) AS year FROM lake_trading_sessions WHERE calendar = 'XNYS'
),
b AS (
    SELECT symbol, "interval", ts, year(timezone('America/New_York', ts)) AS year
    FROM lake_bars
    WHERE asset_class <> 'crypto'
)
SELECT b.symbol, b."interval", b.year, min(b.ts) AS first_ts, max(b.ts) AS last_ts, count(*) AS bars
FROM b
LEFT JOIN years y ON y.year = b.year
WHERE y.year IS NULL
GROUP BY ALL
ORDER BY ALL;
