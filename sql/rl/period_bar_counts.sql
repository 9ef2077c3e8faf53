-- The bars of each symbol in one period that the features could be computed on, for rl/evaluate.py's gap
-- summary (what the features' warm-up after each gap took from the period): the in-session bars of
-- `bar_sessions` (those `bar_features` numbers into segments) whose whole life lies in the period (ts >=
-- start_at and available_at <= end_at, as period_rows.sql reads them). Parameters (bound, never formatted
-- in): $symbols (a list), $interval, $start_at, $end_at.
SELECT symbol, count(*) AS bars
FROM bar_sessions
WHERE "interval" = $interval
  AND list_contains($symbols, symbol)
  AND in_session
  AND ts >= $start_at
  AND available_at <= $end_at
GROUP BY symbol
ORDER BY symbol;
