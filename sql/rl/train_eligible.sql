-- Every (symbol) of one interval with its eligibility in the TRAIN period and the reason in words, for
-- rl/episodes.py (training symbols are chosen on the train period's bars only). Parameter: $interval.
SELECT symbol, asset_class, eligible, reason
FROM symbol_quality_by_split
WHERE split = 'train' AND "interval" = $interval
ORDER BY symbol;
