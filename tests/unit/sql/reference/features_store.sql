-- The former features_store (sql/views/061_features_store.sql until it read the store's files itself):
-- the stored features through lake_features. tests/unit/test_features_store.py checks the view equal to it.
CREATE OR REPLACE TEMP VIEW reference_features_store AS
SELECT symbol, "interval", ts, available_at, asset_class, calendar, trading_day, segment_no, segment_pos,
       warmup, ret_1, ret_5, ret_15, ret_60, vol_15, vol_60, rsi_14, volume_z_60, range_hl, range_mean_15,
       body, gap_open, idle_minutes, minute_of_day, day_of_week, tod_sin, tod_cos, minutes_since_open,
       minutes_to_close, last_news_at, sentiment_last, news_count_1h, news_count_1d, sentiment_mean_1h,
       sentiment_mean_1d, spy_available_at, spy_log_ret_1, spy_sentiment_last, spy_news_count_1d,
       spy_sentiment_mean_1d, qqq_available_at, qqq_log_ret_1, qqq_sentiment_last, qqq_news_count_1d,
       qqq_sentiment_mean_1d
FROM read_parquet(
    coalesce(getvariable('dataset_features'), 'datasets/features') || '/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'interval': VARCHAR, 'symbol': VARCHAR, 'year': VARCHAR}
);
