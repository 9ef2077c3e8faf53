-- The bars of other files of the import's own source (same symbol and interval) that an `ingest csv` file
-- holds too, with other values: the lake keeps one bar per time in a source's partition, the last file
-- landed wins (lake/writer.py, keep = last), so this file's bars replace them. Per other file: how many,
-- and the earliest with both closes. `incoming` is the file's bars, registered by ingest/csv_checks.py.
WITH theirs AS (
    SELECT source_file, ts, open, high, low, close, volume, trades
    FROM read_parquet(
        $files,
        hive_partitioning = true,
        hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR}
    )
    WHERE source = $source AND symbol = $symbol AND "interval" = $interval AND source_file <> $source_file
      AND ts BETWEEN $first AND $last
),
differ AS (
    SELECT t.source_file, i.ts, i.close AS mine, t.close AS theirs
    FROM incoming AS i
    JOIN theirs AS t USING (ts)
    WHERE i.open IS DISTINCT FROM t.open OR i.high IS DISTINCT FROM t.high OR i.low IS DISTINCT FROM t.low
       OR i.close IS DISTINCT FROM t.close OR i.volume IS DISTINCT FROM t.volume
       OR i.trades IS DISTINCT FROM t.trades
)
SELECT source_file, count(*) AS n, min(ts) AS ts, arg_min(mine, ts) AS mine, arg_min(theirs, ts) AS theirs
FROM differ
GROUP BY source_file
ORDER BY source_file;
