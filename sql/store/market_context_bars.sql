-- The market columns of the feature store's bars (features/store.py): `chunk_market_rows` (an Arrow table the
-- store registers) holds, per bar, its row number `pos`, its available_at and the row of the interval's
-- market timeline (market_timeline.sql) that it takes; here the rules of market_context
-- (sql/views/056_market_context_instants.sql) that depend on the bar's own available_at, by the view's
-- expressions: a SPY/QQQ bar older than one bar of the interval plus max_gap_minutes is stale, their news older than
-- max_news_age_minutes is not fresh.
WITH r AS (
    SELECT r.*,
           r.spy_news_at IS NOT NULL
               AND (epoch(r.available_at) - epoch(r.spy_news_at)) / 60.0 <= st.max_news_age_minutes AS spy_fresh,
           r.qqq_news_at IS NOT NULL
               AND (epoch(r.available_at) - epoch(r.qqq_news_at)) / 60.0 <= st.max_news_age_minutes AS qqq_fresh,
           -- one bar of the batch's interval (the variable chunk_interval) plus the gap allowed, as the view
           st.max_gap_minutes
               + coalesce(TRY_CAST(regexp_extract(getvariable('chunk_interval'), '^([0-9]+)[mhdw]$', 1) AS BIGINT)
                          * CASE right(getvariable('chunk_interval'), 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60
                                 WHEN 'd' THEN 1440 WHEN 'w' THEN 10080 END, 0) AS fresh_minutes
    FROM chunk_market_rows r, lake_settings st
)
SELECT pos,
       CASE WHEN (epoch(available_at) - epoch(spy_at)) / 60.0 <= fresh_minutes THEN spy_at END
           AS spy_available_at,
       CASE WHEN (epoch(available_at) - epoch(spy_at)) / 60.0 <= fresh_minutes THEN spy_ret END
           AS spy_log_ret_1,
       CASE WHEN spy_fresh THEN spy_last END AS spy_sentiment_last,
       CASE WHEN spy_fresh THEN spy_n_1d END AS spy_news_count_1d,
       CASE WHEN spy_fresh THEN spy_mean_1d END AS spy_sentiment_mean_1d,
       CASE WHEN (epoch(available_at) - epoch(qqq_at)) / 60.0 <= fresh_minutes THEN qqq_at END
           AS qqq_available_at,
       CASE WHEN (epoch(available_at) - epoch(qqq_at)) / 60.0 <= fresh_minutes THEN qqq_ret END
           AS qqq_log_ret_1,
       CASE WHEN qqq_fresh THEN qqq_last END AS qqq_sentiment_last,
       CASE WHEN qqq_fresh THEN qqq_n_1d END AS qqq_news_count_1d,
       CASE WHEN qqq_fresh THEN qqq_mean_1d END AS qqq_sentiment_mean_1d
FROM r;
