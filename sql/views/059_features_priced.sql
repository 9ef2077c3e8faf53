-- features_priced: the features of every bar with its prices (the feature store writes these rows).
-- Model inputs per bar: bar_features (prices, volume, time), bar_news (as-of news) and market_context
-- (SPY/QQQ as of the bar), each computed only from what was known at the bar's available_at.
-- features_priced: the same rows with the bar's open, high, low and close after bar_features' columns (what
-- the feature store writes, and what the episode source reads when the store is stale).
-- market_context depends on a bar only through its interval and available_at (a bar of bar_features has
-- the available_at of its `bars` row), so its per-instant rows are joined on those: the same values as
-- market_context's row of the bar, without a join of every bar to every bar.
CREATE OR REPLACE VIEW features_priced AS
SELECT f.*,
       n.* EXCLUDE (symbol, "interval", ts),
       m.* EXCLUDE ("interval", available_at)
FROM bar_features_priced f
LEFT JOIN bar_news n USING (symbol, "interval", ts)
LEFT JOIN market_context_instants m ON m."interval" = f."interval" AND m.available_at = f.available_at;
