-- Per-bar model inputs from window functions over past rows only (first version; the feature-store
-- issue adds the full set).
CREATE OR REPLACE VIEW bar_features AS
SELECT symbol, "interval", ts, available_at,
       ln(close / lag(close) OVER w) AS log_ret_1
FROM bars
WINDOW w AS (PARTITION BY symbol, "interval" ORDER BY ts);
