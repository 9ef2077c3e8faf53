-- Valid bars, one per (symbol, interval, ts). Where several sources hold the same bar, ONE rule picks it:
-- the lowest source rank wins (polygon and binance 1, yahoo 2, csv 3, any other source 9 -- e.g. a CSV
-- imported with `ingest csv --source NAME`; ties by source name). Yahoo therefore fills the vendors' gaps
-- and never overwrites, and a user's CSV file fills what no vendor has and never hides a vendor's bar.
-- Daily bars of every US source (CSV imports included) carry the same ts (the XNYS session's open,
-- ingest/stamping.py), so they meet on this key as minute bars do.
-- Where one source stores the same bar twice (two period partitions), the later period wins, then the
-- smaller source_file: the choice never depends on the order files are read.
-- Every stored bar stays in lake_bars; this view only chooses. The rank is the macro bar_source_rank, so
-- that the quality views (bar_day_stats) apply the very same rule.
CREATE OR REPLACE MACRO bar_source_rank(src) AS
    CASE src WHEN 'polygon' THEN 1 WHEN 'binance' THEN 1 WHEN 'yahoo' THEN 2 WHEN 'csv' THEN 3 ELSE 9 END;
CREATE OR REPLACE VIEW bars AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades
FROM lake_bars
QUALIFY row_number() OVER (
    PARTITION BY symbol, "interval", ts
    ORDER BY bar_source_rank(source), source, period DESC, source_file
) = 1;
