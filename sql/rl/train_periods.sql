-- The train and validation periods' bounds (from the splits view) and how many stored bars of $interval of
-- the training $symbols (a list) each holds, for rl/train.py's warnings before a run: a period with no bar
-- (fraction splits on a lake of stocks and crypto can fall overnight for the stocks); the embargoes' bars are
-- counted by embargo_gaps.sql.
-- The test period is not counted here
-- (training never reads it). A bar is in a period when its whole life is, as period_rows.sql reads them.
SELECT s.split,
       s.start_at,
       s.end_at,
       (SELECT count(*)
        FROM lake_bars b
        WHERE b."interval" = $interval
          AND list_contains($symbols, b.symbol)
          AND b.ts >= s.start_at
          AND b.available_at <= s.end_at) AS n_bars
FROM splits s
WHERE s.split IN ('train', 'validation')
ORDER BY s.split_no;
