-- (split, symbol, interval) triples fit to use: eligibility judged on each period's own bars
-- (symbol_quality_by_split, which says why any triple passes or not). Training uses split = 'train'.
CREATE OR REPLACE VIEW eligible_symbols_by_split AS
SELECT split, symbol, "interval", asset_class, n_bars, missing_ratio, first_ts, last_ts
FROM symbol_quality_by_split
WHERE eligible;
