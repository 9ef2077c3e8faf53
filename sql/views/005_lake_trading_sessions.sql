-- Exchange sessions materialised from exchange_calendars (XNYS), regular and extended hours.
CREATE OR REPLACE VIEW lake_trading_sessions AS
SELECT calendar, day, open_at, close_at, is_early_close, ext_open_at, ext_close_at
FROM read_parquet(
    coalesce(getvariable('dataset_trading_sessions'), lake_dataset('trading_sessions')) || '/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'calendar': VARCHAR, 'period': VARCHAR}
);
