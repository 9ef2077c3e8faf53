-- market_context: every bar of `bars` with the SPY and QQQ context of its instant (interval, available_at),
-- as market_context_instants computes it (sql/views/056_market_context_instants.sql says how).
CREATE OR REPLACE VIEW market_context AS
SELECT b.symbol, b."interval", b.ts, m.* EXCLUDE ("interval", available_at)
FROM bars b
JOIN market_context_instants m ON m."interval" = b."interval" AND m.available_at = b.available_at;
