-- bar_features: the per-bar model inputs, computed from past rows only: bar_features_priced (sql/views/
-- 049_bar_features_priced.sql says how each column is computed) without the bar's prices.
CREATE OR REPLACE VIEW bar_features AS
SELECT * EXCLUDE (open, high, low, close) FROM bar_features_priced;
