-- The bounds [start_at, end_at) of every period of the `splits` view, for rl/runlog.period_bounds (the
-- data snapshot of a run covers its periods' files and bounds).
SELECT split, start_at, end_at FROM splits;
