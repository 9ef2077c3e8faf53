-- One batch of the feature store (features/store.py): the `features_priced` rows of one interval ($1) and a
-- list of symbols ($2), with the UTC year of ts that names the partition. Run on a connection whose
-- lake_bars see only the batch's own bars, after market_begin.sql (SPY's and QQQ's bar_features rows of the
-- interval) and chunk_begin.sql (news_running); bar_features_priced is the view's, computed as it streams.
--
-- The same rows and values as `features_priced` (sql/views/059_features_priced.sql; a test checks the store
-- against the view), with its as-of joins made cheaper: the view joins every bar to news_running three
-- times (bar_news), then to bar_news by (symbol, interval, ts), and to market_context_instants, itself six
-- as-of joins, by (interval, available_at); each as-of join and each hash join sorts or builds the batch's
-- rows once more. Here the as-of joins are made once per distinct (symbol, available_at) of the batch's
-- stored bars (`instants`: two narrow columns, a superset of the bars' instants), against two small
-- timelines, and each bar takes its instant's row by one hash join:
--
-- news_timeline: per symbol, one row per instant e at which some as-of lookup of bar_news changes its answer
--   (an article's news_at, news_at + 1 hour, news_at + 24 hours), holding bar_news' columns as they are for
--   every lookup time after e up to the next such instant. A bar takes the row with the greatest e strictly
--   before its available_at A: the articles with news_at <= e are then exactly those with news_at < A (an
--   article with e < news_at < A would be an instant between e and A), and those with news_at + 1 hour <= e
--   exactly those with news_at < A - 1 hour (likewise 24 hours): bar_news' three lookups (cur, h1, d1),
--   computed once per instant by the same expressions.
-- market_timeline: per interval, one row per instant e at which some lookup of market_context changes its
--   answer: SPY's and QQQ's bar_features available_at (their lookups are <= A), and news_at + 1 microsecond,
--   news_at + 24 hours + 1 microsecond of their news (lookups strict, news_at < A: on microsecond instants,
--   news_at < A exactly when news_at + 1 microsecond <= A). A bar takes the row with the greatest e <= A.
--   The rules that depend on the bar's own A (staleness of the SPY/QQQ bar, freshness of their news) are
--   applied per bar, by the view's expressions. (The batch is one interval, $1: the timeline is that
--   interval's.)
-- No ORDER BY: features/store.py orders each partition's rows by ts as it takes them (a sort of the row
-- numbers, not of the wide rows).
WITH news_events AS (
    SELECT DISTINCT symbol, e
    FROM (
        SELECT symbol, news_at AS e FROM news_running
        UNION ALL
        SELECT symbol, news_at + INTERVAL 1 HOUR FROM news_running
        UNION ALL
        SELECT symbol, news_at + INTERVAL 24 HOUR FROM news_running
    )
),
news_timeline AS (
    SELECT e.symbol, e.e,
           cur.news_at AS last_news_at,
           cur.last_sentiment::DOUBLE AS sentiment_last,
           (coalesce(cur.cum_n, 0) - coalesce(h1.cum_n, 0))::BIGINT AS news_count_1h,
           (coalesce(cur.cum_n, 0) - coalesce(d1.cum_n, 0))::BIGINT AS news_count_1d,
           coalesce(cur.cum_s, 0) - coalesce(h1.cum_s, 0) AS sum_1h,
           coalesce(cur.cum_s, 0) - coalesce(d1.cum_s, 0) AS sum_1d
    FROM news_events e
    ASOF LEFT JOIN news_running cur ON cur.symbol = e.symbol AND cur.news_at <= e.e
    ASOF LEFT JOIN news_running h1 ON h1.symbol = e.symbol AND h1.news_at <= e.e - INTERVAL 1 HOUR
    ASOF LEFT JOIN news_running d1 ON d1.symbol = e.symbol AND d1.news_at <= e.e - INTERVAL 24 HOUR
),
spy_bars AS (SELECT "interval", available_at, ret_1 FROM chunk_market_features WHERE symbol = 'SPY'),
qqq_bars AS (SELECT "interval", available_at, ret_1 FROM chunk_market_features WHERE symbol = 'QQQ'),
spy_news AS (SELECT news_at, last_sentiment, cum_n, cum_s FROM news_running WHERE symbol = 'SPY'),
qqq_news AS (SELECT news_at, last_sentiment, cum_n, cum_s FROM news_running WHERE symbol = 'QQQ'),
market_events AS (
    SELECT "interval", available_at AS e FROM spy_bars
    UNION
    SELECT "interval", available_at FROM qqq_bars
    UNION
    SELECT i."interval", x.e
    FROM (SELECT $1 AS "interval") i,
         (SELECT news_at + INTERVAL 1 MICROSECOND AS e FROM spy_news
          UNION ALL
          SELECT news_at + INTERVAL 24 HOUR + INTERVAL 1 MICROSECOND FROM spy_news
          UNION ALL
          SELECT news_at + INTERVAL 1 MICROSECOND FROM qqq_news
          UNION ALL
          SELECT news_at + INTERVAL 24 HOUR + INTERVAL 1 MICROSECOND FROM qqq_news) x
),
market_timeline AS (
    SELECT m."interval", m.e,
           sb.available_at AS spy_at, sb.ret_1 AS spy_ret,
           qb.available_at AS qqq_at, qb.ret_1 AS qqq_ret,
           sn.news_at AS spy_news_at,
           sn.last_sentiment::DOUBLE AS spy_last,
           (coalesce(sn.cum_n, 0) - coalesce(sd.cum_n, 0))::BIGINT AS spy_n_1d,
           coalesce(sn.cum_s, 0) - coalesce(sd.cum_s, 0) AS spy_sum_1d,
           qn.news_at AS qqq_news_at,
           qn.last_sentiment::DOUBLE AS qqq_last,
           (coalesce(qn.cum_n, 0) - coalesce(qd.cum_n, 0))::BIGINT AS qqq_n_1d,
           coalesce(qn.cum_s, 0) - coalesce(qd.cum_s, 0) AS qqq_sum_1d
    FROM market_events m
    ASOF LEFT JOIN spy_bars sb ON sb."interval" = m."interval" AND sb.available_at <= m.e
    ASOF LEFT JOIN qqq_bars qb ON qb."interval" = m."interval" AND qb.available_at <= m.e
    ASOF LEFT JOIN spy_news sn ON sn.news_at < m.e
    ASOF LEFT JOIN spy_news sd ON sd.news_at < m.e - INTERVAL 24 HOUR
    ASOF LEFT JOIN qqq_news qn ON qn.news_at < m.e
    ASOF LEFT JOIN qqq_news qd ON qd.news_at < m.e - INTERVAL 24 HOUR
),
instants AS (
    SELECT i.symbol, i.available_at, n.* EXCLUDE (symbol, e), m.* EXCLUDE ("interval", e)
    FROM (SELECT DISTINCT symbol, available_at FROM lake_bars WHERE "interval" = $1) i
    ASOF LEFT JOIN news_timeline n ON n.symbol = i.symbol AND n.e < i.available_at
    ASOF LEFT JOIN market_timeline m ON m.e <= i.available_at
),
joined AS (
    SELECT f.*,
           c.last_news_at, c.sentiment_last,
           -- no timeline row before A: no article counts (bar_news' coalesce(NULL, 0) - coalesce(NULL, 0))
           coalesce(c.news_count_1h, 0) AS news_count_1h,
           coalesce(c.news_count_1d, 0) AS news_count_1d,
           c.sum_1h, c.sum_1d,
           c.* EXCLUDE (symbol, available_at, last_news_at, sentiment_last, news_count_1h, news_count_1d, sum_1h,
                        sum_1d),
           c.spy_news_at IS NOT NULL
               AND (epoch(f.available_at) - epoch(c.spy_news_at)) / 60.0 <= st.max_news_age_minutes AS spy_fresh,
           c.qqq_news_at IS NOT NULL
               AND (epoch(f.available_at) - epoch(c.qqq_news_at)) / 60.0 <= st.max_news_age_minutes AS qqq_fresh,
           st.max_gap_minutes
    FROM bar_features_priced f
    CROSS JOIN lake_settings st
    LEFT JOIN instants c ON c.symbol = f.symbol AND c.available_at = f.available_at
    WHERE f."interval" = $1 AND list_contains($2, f.symbol)
)
SELECT symbol, ts, available_at, asset_class, calendar, trading_day, segment_no, segment_pos, warmup,
       ret_1, ret_5, ret_15, ret_60, vol_15, vol_60, rsi_14, volume_z_60, range_hl, range_mean_15, body,
       gap_open, idle_minutes, minute_of_day, day_of_week, tod_sin, tod_cos, minutes_since_open,
       minutes_to_close, open, high, low, close,
       last_news_at, sentiment_last, news_count_1h, news_count_1d,
       CASE WHEN news_count_1h > 0 THEN sum_1h::DOUBLE / news_count_1h END AS sentiment_mean_1h,
       CASE WHEN news_count_1d > 0 THEN sum_1d::DOUBLE / news_count_1d END AS sentiment_mean_1d,
       CASE WHEN (epoch(available_at) - epoch(spy_at)) / 60.0 <= max_gap_minutes THEN spy_at END
           AS spy_available_at,
       CASE WHEN (epoch(available_at) - epoch(spy_at)) / 60.0 <= max_gap_minutes THEN spy_ret END
           AS spy_log_ret_1,
       CASE WHEN spy_fresh THEN spy_last END AS spy_sentiment_last,
       CASE WHEN spy_fresh THEN spy_n_1d END AS spy_news_count_1d,
       CASE WHEN spy_fresh AND spy_n_1d > 0 THEN spy_sum_1d::DOUBLE / spy_n_1d END AS spy_sentiment_mean_1d,
       CASE WHEN (epoch(available_at) - epoch(qqq_at)) / 60.0 <= max_gap_minutes THEN qqq_at END
           AS qqq_available_at,
       CASE WHEN (epoch(available_at) - epoch(qqq_at)) / 60.0 <= max_gap_minutes THEN qqq_ret END
           AS qqq_log_ret_1,
       CASE WHEN qqq_fresh THEN qqq_last END AS qqq_sentiment_last,
       CASE WHEN qqq_fresh THEN qqq_n_1d END AS qqq_news_count_1d,
       CASE WHEN qqq_fresh AND qqq_n_1d > 0 THEN qqq_sum_1d::DOUBLE / qqq_n_1d END AS qqq_sentiment_mean_1d,
       year(ts) AS year
FROM joined;
