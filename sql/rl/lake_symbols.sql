-- Every (interval, symbol) the lake stores bars of, from the partitions of the bars files (valid or not, of any
-- source), for rl/train.py's check that a run's interval and symbols exist before a run is recorded.
SELECT DISTINCT "interval", symbol
FROM lake_bars
ORDER BY "interval", symbol;
