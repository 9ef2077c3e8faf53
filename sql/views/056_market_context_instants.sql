-- market_context_instants: the SPY/QQQ context once per (interval, available_at); market_context gives it per bar.
-- Market context as of each bar of `bars`: one row per (symbol, interval, ts) with the latest SPY and
-- QQQ state known at the bar's available_at. NULL where SPY or QQQ is not in the lake.
--
-- spy_available_at / spy_log_ret_1: the SPY row of bar_features of the same interval with the latest
-- available_at <= the bar's available_at (a bar is known at its available_at), and its ret_1. So SPY's
-- return follows bar_features' rules: only SPY bars inside the selected session (lake_settings.session)
-- count, and the return is within SPY's segment (NULL after a gap or skipped session).
-- Staleness rule: both are NULL when the bar's available_at - spy_available_at exceeds one bar of the
-- interval plus lake_settings.max_gap_minutes (the latest SPY bar known is at most one bar old, give or
-- take the gap allowed: an hourly crypto bar at :00 takes SPY's bar known at :30; a daily crypto bar, known
-- at midnight UTC, takes SPY's latest daily bar known then: that New York day's in summer, known at 00:00
-- UTC exactly, the day before's in winter, known at 01:00 UTC); nothing is carried over a night of intraday
-- bars, a weekend or out of the session for long (a crypto 1m bar at 04:00 New York in regular mode, or on
-- a Sunday, has no SPY state).
-- spy_sentiment_last / spy_news_count_1d / spy_sentiment_mean_1d: SPY's own news as of the bar's
-- available_at, by the same rule as bar_news (article time < available_at, per news_time; window
-- [available_at - 24 hours, available_at)). News staleness rule: all three are NULL when SPY's latest
-- article known at the bar is older than lake_settings.max_news_age_minutes (default one day), or when
-- there is none: no sentiment is carried from an article of last year. The same columns with qqq_ for QQQ.
-- market_context_instants: the same context once per distinct (interval, available_at) of `bars` (every bar
-- known at one instant shares it); `features` joins it on (interval, available_at).
CREATE OR REPLACE VIEW market_context_instants AS
WITH spy_bars AS (
    SELECT "interval", available_at, ret_1 FROM bar_features WHERE symbol = 'SPY'
),
qqq_bars AS (
    SELECT "interval", available_at, ret_1 FROM bar_features WHERE symbol = 'QQQ'
),
spy_news AS (SELECT news_at, last_sentiment, cum_n, cum_s FROM news_running WHERE symbol = 'SPY'),
qqq_news AS (SELECT news_at, last_sentiment, cum_n, cum_s FROM news_running WHERE symbol = 'QQQ'),
-- The context depends on the bar only through its interval and available_at: it is computed once per
-- distinct (interval, available_at) (every symbol at one instant shares it) and joined back to the bars.
instants AS (
    SELECT "interval", available_at,
           -- how old SPY's / QQQ's latest bar may be: one bar of the interval plus the gap allowed
           st.max_gap_minutes
               + coalesce(TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
                          * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                                      WHEN 'w' THEN 10080 END, 0) AS fresh_minutes
    FROM (SELECT DISTINCT "interval", available_at FROM bars), lake_settings st
),
joined AS (
    SELECT b."interval", b.available_at,
           sn.news_at IS NOT NULL
               AND (epoch(b.available_at) - epoch(sn.news_at)) / 60.0 <= st.max_news_age_minutes AS spy_news_fresh,
           qn.news_at IS NOT NULL
               AND (epoch(b.available_at) - epoch(qn.news_at)) / 60.0 <= st.max_news_age_minutes AS qqq_news_fresh,
           CASE WHEN (epoch(b.available_at) - epoch(sb.available_at)) / 60.0 <= b.fresh_minutes THEN sb.available_at END AS spy_available_at,
           CASE WHEN (epoch(b.available_at) - epoch(sb.available_at)) / 60.0 <= b.fresh_minutes THEN sb.ret_1 END AS spy_log_ret_1,
           sn.last_sentiment::DOUBLE AS spy_sentiment_last,
           (coalesce(sn.cum_n, 0) - coalesce(sd.cum_n, 0))::BIGINT AS spy_news_count_1d,
           coalesce(sn.cum_s, 0) - coalesce(sd.cum_s, 0) AS spy_sum_1d,
           CASE WHEN (epoch(b.available_at) - epoch(qb.available_at)) / 60.0 <= b.fresh_minutes THEN qb.available_at END AS qqq_available_at,
           CASE WHEN (epoch(b.available_at) - epoch(qb.available_at)) / 60.0 <= b.fresh_minutes THEN qb.ret_1 END AS qqq_log_ret_1,
           qn.last_sentiment::DOUBLE AS qqq_sentiment_last,
           (coalesce(qn.cum_n, 0) - coalesce(qd.cum_n, 0))::BIGINT AS qqq_news_count_1d,
           coalesce(qn.cum_s, 0) - coalesce(qd.cum_s, 0) AS qqq_sum_1d
    FROM instants b
    CROSS JOIN lake_settings st
    ASOF LEFT JOIN spy_bars sb
        ON sb."interval" = b."interval" AND sb.available_at <= b.available_at
    ASOF LEFT JOIN qqq_bars qb
        ON qb."interval" = b."interval" AND qb.available_at <= b.available_at
    ASOF LEFT JOIN spy_news sn ON sn.news_at < b.available_at
    ASOF LEFT JOIN spy_news sd ON sd.news_at < b.available_at - INTERVAL 24 HOUR
    ASOF LEFT JOIN qqq_news qn ON qn.news_at < b.available_at
    ASOF LEFT JOIN qqq_news qd ON qd.news_at < b.available_at - INTERVAL 24 HOUR
)
SELECT j."interval", j.available_at,
       j.spy_available_at, j.spy_log_ret_1,
       CASE WHEN j.spy_news_fresh THEN j.spy_sentiment_last END AS spy_sentiment_last,
       CASE WHEN j.spy_news_fresh THEN j.spy_news_count_1d END AS spy_news_count_1d,
       CASE WHEN j.spy_news_fresh AND j.spy_news_count_1d > 0 THEN j.spy_sum_1d::DOUBLE / j.spy_news_count_1d END
           AS spy_sentiment_mean_1d,
       j.qqq_available_at, j.qqq_log_ret_1,
       CASE WHEN j.qqq_news_fresh THEN j.qqq_sentiment_last END AS qqq_sentiment_last,
       CASE WHEN j.qqq_news_fresh THEN j.qqq_news_count_1d END AS qqq_news_count_1d,
       CASE WHEN j.qqq_news_fresh AND j.qqq_news_count_1d > 0 THEN j.qqq_sum_1d::DOUBLE / j.qqq_news_count_1d END
           AS qqq_sentiment_mean_1d
FROM joined j;
