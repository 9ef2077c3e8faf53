-- features: the model inputs per bar, features_priced (sql/views/059_features_priced.sql) without the bar's
-- prices: bar_features, bar_news and market_context, each computed only from what was known at the bar's
-- available_at.
CREATE OR REPLACE VIEW features AS
SELECT * EXCLUDE (open, high, low, close) FROM features_priced;
