-- Valid bars, one per (symbol, interval, ts). Where several sources hold the same bar, the better
-- source wins by one rule: the lowest source_rank (polygon and binance 1, yahoo 2, anything else 9).
-- Yahoo therefore fills gaps and never overwrites.
CREATE OR REPLACE VIEW bars AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades
FROM lake_bars
QUALIFY row_number() OVER (
    PARTITION BY symbol, "interval", ts
    ORDER BY CASE source WHEN 'polygon' THEN 1 WHEN 'binance' THEN 1 WHEN 'yahoo' THEN 2 ELSE 9 END, source
) = 1;
