-- Model inputs per bar: bar_features (prices, volume, time), bar_news (as-of news) and market_context
-- (SPY/QQQ as of the bar), each computed only from what was known at the bar's available_at.
CREATE OR REPLACE VIEW features AS
SELECT f.*,
       n.* EXCLUDE (symbol, "interval", ts),
       m.* EXCLUDE (symbol, "interval", ts)
FROM bar_features f
LEFT JOIN bar_news n USING (symbol, "interval", ts)
LEFT JOIN market_context m USING (symbol, "interval", ts);
