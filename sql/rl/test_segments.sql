-- Each of the training $symbols (a list) with bars of $interval in the test period after the features'
-- warm-up (the rows period_rows.sql reads: ts >= start_at, available_at <= end_at, NOT warmup), how many,
-- and how many its longest segment holds, for rl/train.py's check before a run that is to be evaluated: a
-- decision needs `window` rows of history in its segment and a next bar to fill at, so a run whose window
-- no test segment is longer than would train in full and then have nothing to be scored on. Counts bars;
-- reads none of their prices.
WITH t AS (SELECT start_at, end_at FROM splits WHERE split = 'test'),
seg AS (
    SELECT f.symbol, f.segment_no, count(*) AS n
    FROM bar_features f, t
    WHERE f."interval" = $interval
      AND list_contains($symbols, f.symbol)
      AND f.ts >= t.start_at
      AND f.available_at <= t.end_at
      AND NOT f.warmup
    GROUP BY f.symbol, f.segment_no
)
SELECT symbol, sum(n)::BIGINT AS bars, max(n)::BIGINT AS longest
FROM seg
GROUP BY symbol
ORDER BY symbol;
