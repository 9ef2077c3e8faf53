-- Model inputs per bar: bar_features (prices, volume, time), bar_news (as-of news) and market_context
-- (SPY/QQQ as of the bar), each computed only from what was known at the bar's available_at.
-- features_priced: the same rows with the bar's open, high, low and close after bar_features' columns (what
-- the feature store writes, and what the episode source reads when the store is stale).
CREATE OR REPLACE VIEW features_priced AS
SELECT f.*,
       n.* EXCLUDE (symbol, "interval", ts),
       m.* EXCLUDE (symbol, "interval", ts)
FROM bar_features_priced f
LEFT JOIN bar_news n USING (symbol, "interval", ts)
LEFT JOIN market_context m USING (symbol, "interval", ts);

CREATE OR REPLACE VIEW features AS
SELECT * EXCLUDE (open, high, low, close) FROM features_priced;
