-- One period's bounds from the splits view, for rl/episodes.py. Parameter: $split.
SELECT start_at, end_at FROM splits WHERE split = $split;
