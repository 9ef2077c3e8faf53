-- Symbols with enough bars to train on (first version; the feature-store issue adds missing time).
CREATE OR REPLACE VIEW eligible_symbols AS
SELECT symbol, "interval", sum(n_bars)::BIGINT AS n_bars
FROM bar_quality
GROUP BY ALL
HAVING sum(n_bars) >= (SELECT min_bars_per_symbol FROM lake_settings);
