-- The market timeline of one interval ($1) of the feature store (features/store.py), computed once per
-- interval after market_begin.sql (SPY's and QQQ's bar_features rows) on the connection that sees SPY's and
-- QQQ's news: one row per instant e at which some lookup of market_context (sql/views/057_market_context.sql)
-- changes its answer: SPY's and QQQ's bar_features available_at (their lookups are <= A), and news_at + 1
-- microsecond, news_at + 24 hours + 1 microsecond of their news (lookups strict, news_at < A: on microsecond
-- instants, news_at < A exactly when news_at + 1 microsecond <= A). A bar takes the row with the greatest
-- e <= A (features/store.py, a binary search of e); the rules that depend on the bar's own A (staleness of
-- the SPY/QQQ bar, freshness of their news) are applied per bar by market_context_bars.sql, with the view's
-- expressions. Rows in order of e.
WITH spy_bars AS (SELECT "interval", available_at, ret_1 FROM chunk_market_features WHERE symbol = 'SPY'),
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
timeline AS (
    SELECT m.e,
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
)
SELECT e, spy_at, spy_ret, qqq_at, qqq_ret,
       spy_news_at, spy_last, spy_n_1d,
       CASE WHEN spy_n_1d > 0 THEN spy_sum_1d::DOUBLE / spy_n_1d END AS spy_mean_1d,
       qqq_news_at, qqq_last, qqq_n_1d,
       CASE WHEN qqq_n_1d > 0 THEN qqq_sum_1d::DOUBLE / qqq_n_1d END AS qqq_mean_1d
FROM timeline
ORDER BY e;
