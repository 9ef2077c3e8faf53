-- The test period's bounds and how many stored bars of $interval it holds (of the symbols in $symbols, or of
-- every symbol when $symbols is NULL), for rl/train.py's check before a run that is to be evaluated: a run
-- whose test period holds no bar would train in full and then have nothing to be judged on (date splits set
-- beyond the data). No row: the lake has no test period. A bar is in the period when its whole life is.
SELECT s.start_at,
       s.end_at,
       (SELECT count(*)
        FROM lake_bars b
        WHERE b."interval" = $interval
          AND ($symbols IS NULL OR list_contains($symbols, b.symbol))
          AND b.ts >= s.start_at
          AND b.available_at <= s.end_at) AS n_bars
FROM splits s
WHERE s.split = 'test';
