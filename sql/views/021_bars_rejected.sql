-- Quarantined bars: the raw fields, the reason and the source file.
CREATE OR REPLACE VIEW bars_rejected AS
SELECT source, symbol, "interval", source_file, line_number, raw, ts,
       open, high, low, close, volume, reason
FROM lake_bars_rejected;
