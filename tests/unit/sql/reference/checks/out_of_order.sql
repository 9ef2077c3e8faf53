-- Stored rows whose ts is not after the previous row's in the file's physical order (the writer sorts every
-- partition, so this finds files written around it), and rows an ingestor quarantined as out of order.
SELECT source, symbol, "interval", ts, prev_ts, filename AS source_file, 'stored file order' AS what
FROM bar_file_order
WHERE out_of_order
UNION ALL
SELECT source, symbol, "interval", ts, NULL, source_file, reason
FROM lake_bars_rejected
WHERE reason ILIKE '%order%'
ORDER BY symbol, "interval", ts;
