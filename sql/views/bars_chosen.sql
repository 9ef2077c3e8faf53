-- `bars` read from the writer's mirror of the rows it keeps (lake/chosen.py): datasets/bars_chosen holds, in
-- the layout of datasets/bars, each bars file whose every row the precedence rule of 020_bars.sql keeps (a
-- hard link to it), the kept rows of a file that loses some, and nothing of a file that loses all: the same
-- rows as 020_bars.sql's window, as a plain scan (a query of one symbol reads that symbol's files only).
-- Not a view file (no NNN_ prefix): lake.connect.register_views runs it after the view files, in place of
-- 020_bars.sql's definition, only while the mirror is whole (its file _current; the writer removes it
-- before it changes bars and writes it when the mirror is up to date again).
CREATE OR REPLACE VIEW bars AS
SELECT symbol, source, asset_class, "interval", ts, available_at,
       open, high, low, close, volume, trades
FROM read_parquet(
    coalesce(getvariable('dataset_bars_chosen'), lake_dataset('bars_chosen')) || '/*/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'interval': VARCHAR, 'symbol': VARCHAR, 'period': VARCHAR}
);
