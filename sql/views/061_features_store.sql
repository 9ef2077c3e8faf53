-- The `features` view as materialised in the lake's feature store (features/store.py): the same columns
-- in the same order, the same rows and values for every (symbol, interval) whose partitions are fresh.
-- Reading it costs a Parquet scan of the symbol's own files (a filter on symbol or interval prunes the
-- others), where `features` recomputes windows and as-of joins. The store is brought up to date at the
-- end of every ingest and before training (features.store.refresh); a (symbol, interval) whose inputs
-- changed since (a setting the views read, an interrupted ingest, a file changed by hand) is stale, its
-- rows those of its last refresh, until the next `marketlake features refresh`: `marketlake features
-- status` (or store.stale()) tells which pairs are stale.
-- It reads the files itself, as lake_features does, rather than through lake_features: one view less to
-- bind on every query (about a tenth of a millisecond, a tenth of reading one symbol's file).
CREATE OR REPLACE VIEW features_store AS
SELECT symbol, "interval", ts, available_at, asset_class, calendar, trading_day, segment_no, segment_pos,
       warmup, ret_1, ret_5, ret_15, ret_60, vol_15, vol_60, rsi_14, volume_z_60, range_hl, range_mean_15,
       body, gap_open, idle_minutes, minute_of_day, day_of_week, tod_sin, tod_cos, minutes_since_open,
       minutes_to_close, last_news_at, sentiment_last, news_count_1h, news_count_1d, sentiment_mean_1h,
       sentiment_mean_1d, spy_available_at, spy_log_ret_1, spy_sentiment_last, spy_news_count_1d,
       spy_sentiment_mean_1d, qqq_available_at, qqq_log_ret_1, qqq_sentiment_last, qqq_news_count_1d,
       qqq_sentiment_mean_1d
FROM read_parquet(
    coalesce(getvariable('dataset_features'), lake_dataset('features')) || '/*/*/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'interval': VARCHAR, 'symbol': VARCHAR, 'year': VARCHAR}
);
