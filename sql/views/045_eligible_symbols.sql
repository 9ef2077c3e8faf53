-- (symbol, interval) pairs fit to train on: at least min_bars_per_symbol bars in session and at most
-- max_missing_ratio of trading time missing (lake_settings). Why any pair passes or not: symbol_quality.
CREATE OR REPLACE VIEW eligible_symbols AS
SELECT symbol, "interval", asset_class, n_bars, missing_ratio, first_ts, last_ts
FROM symbol_quality
WHERE eligible;
