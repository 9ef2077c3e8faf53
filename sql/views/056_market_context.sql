-- Market context as of each bar: the latest SPY and QQQ state known at the bar's available_at.
-- (placeholder with the join keys only; the news issue fills it in)
CREATE OR REPLACE VIEW market_context AS
SELECT symbol, "interval", ts
FROM bars
WHERE false;
