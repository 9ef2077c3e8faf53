-- The embargo between each two consecutive periods (train -> validation, validation -> test) of the splits
-- view and, for each of the training $symbols (a list) with stored bars of $interval on BOTH sides of it,
-- how many of those bars lie in it (distinct ts: a bar stored by two sources counts once), for rl/train.py's
-- warning before a run: `embargo_bars` is turned into trading time (that many bars of the lake's shortest
-- interval, on each calendar of the lake), which holds fewer bars of a symbol that has none there, or of an
-- interval longer than the lake's shortest (60 minutes for a daily model). A bar is in the gap when it is in neither period and lies
-- between them: its close is known after the earlier period's end (available_at > its end_at) and it opens
-- before the later period's start (ts < its start_at). Counts bars; reads none of their prices.
WITH s AS (SELECT split, split_no, start_at, end_at FROM splits),
g AS (
    SELECT a.split AS before, b.split AS after, a.start_at AS before_start, a.end_at AS gap_start,
           b.start_at AS gap_end, b.end_at AS after_end, a.split_no
    FROM s a JOIN s b ON b.split_no = a.split_no + 1
)
SELECT g.before, g.after, g.gap_start, g.gap_end, b.symbol, any_value(b.asset_class) AS asset_class,
       count(DISTINCT b.ts) FILTER (WHERE b.available_at > g.gap_start AND b.ts < g.gap_end) AS in_gap
FROM g
JOIN lake_bars b
  ON b."interval" = $interval
 AND list_contains($symbols, b.symbol)
 AND b.ts >= g.before_start
 AND b.available_at <= g.after_end
GROUP BY g.split_no, g.before, g.after, g.gap_start, g.gap_end, b.symbol
HAVING bool_or(b.available_at <= g.gap_start) AND bool_or(b.ts >= g.gap_end)
ORDER BY g.split_no, b.symbol;
