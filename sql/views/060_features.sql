-- Model inputs per bar, using only rows at or before the bar (first version; the feature-store issue
-- adds the full set of window features).
CREATE OR REPLACE VIEW features AS
SELECT b.symbol, b."interval", b.ts, b.available_at,
       ln(b.close / lag(b.close) OVER w) AS log_ret_1,
       n.* EXCLUDE (symbol, "interval", ts)
FROM bars b
LEFT JOIN bar_news n USING (symbol, "interval", ts)
WINDOW w AS (PARTITION BY b.symbol, b."interval" ORDER BY b.ts);
