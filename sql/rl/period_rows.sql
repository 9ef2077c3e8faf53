-- The rows of one (symbol, interval) in one period, for rl/episodes.py, when the feature store is not up to
-- date for it: the live `features_priced` view (the `features` rows with the bar's prices), features after
-- warm-up, ordered by ts. Parameters (bound, never formatted in): $symbol, its index $sym in the symbol
-- list, $interval, and the period's bounds $start_at, $end_at. A bar is in the period when its whole life is
-- (bar_splits' rule): ts >= start_at and available_at <= end_at. Nothing after the period is read into a
-- row: every feature is computed from the bar and earlier bars only (bar_features, bar_news,
-- market_context).
-- rl.episodes._read_store gives the same columns, in the same order, from the feature store's files:
-- NULL news and market-context fields (no article, no SPY/QQQ bar) become 0 with an indicator column;
-- volume_z_60 is NULL when the volume did not vary over its window, and becomes 0 (the volume equals its
-- mean). Core price features are never NULL after warm-up; rl/episodes.py drops any row that still has one.
SELECT $sym::INTEGER AS sym,
       epoch_us(f.ts) AS ts_us,
       epoch_us(f.available_at) AS available_at_us,
       f.segment_no,
       f.segment_pos,
       date_diff('day', DATE '1970-01-01', f.trading_day)::BIGINT AS day_no,
       f.open, f.high, f.low, f.close,
       f.ret_1, f.ret_5, f.ret_15, f.ret_60,
       f.vol_15, f.vol_60, f.rsi_14,
       coalesce(f.volume_z_60, 0.0) AS volume_z_60,
       f.range_hl, f.range_mean_15, f.body, f.gap_open,
       f.idle_minutes, f.tod_sin, f.tod_cos, f.day_of_week::DOUBLE AS day_of_week,
       f.minutes_since_open, f.minutes_to_close,
       f.news_count_1h::DOUBLE AS news_count_1h,
       f.news_count_1d::DOUBLE AS news_count_1d,
       coalesce(f.sentiment_mean_1h, 0.0) AS sentiment_mean_1h,
       coalesce(f.sentiment_mean_1d, 0.0) AS sentiment_mean_1d,
       coalesce(f.sentiment_last, 0.0) AS sentiment_last,
       (f.sentiment_last IS NOT NULL)::DOUBLE AS has_news,
       coalesce(f.spy_log_ret_1, 0.0) AS spy_log_ret_1,
       (f.spy_log_ret_1 IS NOT NULL)::DOUBLE AS has_spy,
       coalesce(f.qqq_log_ret_1, 0.0) AS qqq_log_ret_1,
       (f.qqq_log_ret_1 IS NOT NULL)::DOUBLE AS has_qqq
FROM features_priced f
WHERE f.symbol = $symbol
  AND f."interval" = $interval
  AND f.ts >= $start_at
  AND f.available_at <= $end_at
  AND NOT f.warmup
ORDER BY f.ts;
