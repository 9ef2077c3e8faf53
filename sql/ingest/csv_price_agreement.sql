-- How an `ingest csv` file's closes compare with the bars the lake already holds of the same symbol and
-- interval from other files (other sources, and other files of the import's own source), per source: how
-- many bars both hold, the median ratio of the file's close to theirs, how many of those bars are off in
-- the median's direction by more than their tolerance (the larger of $tolerance and $ticks over their
-- close: two cents on a $1.50 stock is 1.3%), and the shared bar whose ratio is nearest that median (the
-- earliest of equally near ones) with both closes and the file that holds theirs. `incoming` is the file's
-- bars (ts, close), registered by ingest/csv_checks.py; $files the bars data files of this symbol and
-- interval. A split- or dividend-adjusted file reads a steady ratio away from 1 (0.25 before a 4:1 split).
WITH theirs AS (
    SELECT source, source_file, ts, close
    FROM read_parquet(
        $files,
        hive_partitioning = true,
        hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR}
    )
    WHERE symbol = $symbol AND "interval" = $interval AND source_file <> $source_file
      AND ts BETWEEN $first AND $last AND close > 0
),
pairs AS (
    SELECT t.source, t.source_file, i.ts, i.close AS mine, t.close AS theirs, i.close / t.close AS ratio,
           greatest($tolerance, $ticks / t.close) AS tol
    FROM incoming AS i
    JOIN theirs AS t USING (ts)
    WHERE i.close > 0
),
typical AS (
    SELECT source, count(*) AS n, median(ratio) AS ratio,
           count(*) FILTER (WHERE ratio > 1 + tol) AS above,
           count(*) FILTER (WHERE ratio < 1 - tol) AS below
    FROM pairs
    GROUP BY source
)
SELECT source, n, typical_ratio, off, ts, mine, theirs, source_file
FROM (
    SELECT p.source, t.n, t.ratio AS typical_ratio,
           CASE WHEN t.ratio >= 1 THEN t.above ELSE t.below END AS off,
           p.ts, p.mine, p.theirs, p.source_file,
           row_number() OVER (PARTITION BY p.source ORDER BY abs(p.ratio - t.ratio), p.ts, p.source_file) AS pick
    FROM pairs AS p
    JOIN typical AS t USING (source)
)
WHERE pick = 1
ORDER BY abs(ln(typical_ratio)) DESC, source;
