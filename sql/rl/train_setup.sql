-- The train period's set-up in one statement, for rl/episodes.py and rl/train.py's train_eligibility: every
-- symbol of one interval with its asset class and its eligibility in the TRAIN period (the rows of
-- train_eligible.sql) and the train period's bounds (those of period_bounds.sql for 'train', the same on
-- every row): the views under them (splits, bars) are computed once instead of once per statement.
-- Parameter: $interval.
SELECT symbol, asset_class, eligible, reason, start_at, end_at
FROM symbol_quality_by_split
WHERE split = 'train' AND "interval" = $interval
ORDER BY symbol;
