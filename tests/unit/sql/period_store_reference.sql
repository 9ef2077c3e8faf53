-- The SQL reference of rl.episodes._read_store (tests/unit/test_store_reader.py): the rows of every chosen (symbol, interval) in one period, for rl/episodes.py, in ONE query straight from
-- the feature store's files (features/store.py; used only when the store is up to date for every chosen
-- symbol): the stored features after warm-up with the bar's prices, which the store keeps beside them.
-- Parameters (bound, never formatted in): $files, the store's year partitions of the chosen symbols that can
-- hold a row of the period (rl/episodes.py lists them from the partition names: a partition's year is the
-- UTC year of ts, and start_at <= ts < available_at <= end_at), in the order of $symbols, each file's rows
-- ordered by ts; $symbols, the chosen symbols (a row's index in it is `sym`); the period's bounds $start_at,
-- $end_at, with bar_splits' rule: ts >= start_at and available_at <= end_at.
-- No ORDER BY: the rows come in the files' order (DuckDB keeps the scan's order), so the result streams in
-- bounded memory, symbol after symbol; rl/episodes.py checks the (sym, ts) order and sorts if it ever is not.
-- The columns are period_rows.sql's, in the same order (the two must agree).
SELECT (list_position($symbols, symbol) - 1)::INTEGER AS sym,
       epoch_us(ts) AS ts_us,
       epoch_us(available_at) AS available_at_us,
       segment_no,
       segment_pos,
       date_diff('day', DATE '1970-01-01', trading_day)::BIGINT AS day_no,
       open, high, low, close,
       ret_1, ret_5, ret_15, ret_60,
       vol_15, vol_60, rsi_14,
       coalesce(volume_z_60, 0.0) AS volume_z_60,
       range_hl, range_mean_15, body, gap_open,
       idle_minutes, tod_sin, tod_cos, day_of_week::DOUBLE AS day_of_week,
       minutes_since_open, minutes_to_close,
       news_count_1h::DOUBLE AS news_count_1h,
       news_count_1d::DOUBLE AS news_count_1d,
       coalesce(sentiment_mean_1h, 0.0) AS sentiment_mean_1h,
       coalesce(sentiment_mean_1d, 0.0) AS sentiment_mean_1d,
       coalesce(sentiment_last, 0.0) AS sentiment_last,
       (sentiment_last IS NOT NULL)::DOUBLE AS has_news,
       coalesce(spy_log_ret_1, 0.0) AS spy_log_ret_1,
       (spy_log_ret_1 IS NOT NULL)::DOUBLE AS has_spy,
       coalesce(qqq_log_ret_1, 0.0) AS qqq_log_ret_1,
       (qqq_log_ret_1 IS NOT NULL)::DOUBLE AS has_qqq
FROM read_parquet($files, hive_partitioning = true,
                  hive_types = {'interval': VARCHAR, 'symbol': VARCHAR, 'year': VARCHAR})
WHERE ts >= $start_at
  AND available_at <= $end_at
  AND NOT warmup;
