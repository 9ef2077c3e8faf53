-- The SPY and QQQ rows of bar_features of one interval ($1) that market_context reads (available_at and
-- ret_1), computed once per interval by the view on a connection whose lake_bars see only SPY's and QQQ's
-- bars of that interval (their features depend on nothing else), and kept for every batch of the interval
-- (market_timeline.sql reads this table instead of bar_features).
CREATE OR REPLACE TEMP TABLE chunk_market_features AS
SELECT "interval", symbol, available_at, ret_1
FROM main.bar_features
WHERE "interval" = $1 AND symbol IN ('SPY', 'QQQ');
