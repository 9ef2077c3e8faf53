-- period_bar_counts.sql over the feature store's rows (the same rows as `bar_features`'), for a period read
-- from the store while it was fresh: a scan of the symbols' own files instead of the live windows.
-- The bars of each symbol in one period that the features could be computed on, for rl/evaluate.py's gap
-- summary (what the features' warm-up after each gap took from the period): the in-session bars of
-- `bar_features` (the in-session bars of `bar_sessions`, numbered into segments) whose whole life lies in
-- the period (ts >= start_at and available_at <= end_at, as period_rows.sql reads them), and the segments
-- they fall in: a segment lost whole to the warm-up after its gap (fewer bars than the warm-up) is counted,
-- though none of its rows is read. Parameters (bound, never formatted in): $symbols (a list), $interval,
-- $start_at, $end_at.
SELECT symbol, count(*) AS bars, count(DISTINCT segment_no) AS segments
FROM features_store
WHERE "interval" = $interval
  AND list_contains($symbols, symbol)
  AND ts >= $start_at
  AND available_at <= $end_at
GROUP BY symbol
ORDER BY symbol;
