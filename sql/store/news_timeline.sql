-- The news timeline of one batch of the feature store (features/store.py), for the symbols of the
-- variable chunk_symbols: per
-- symbol, one row per instant e at which some as-of lookup of bar_news (sql/views/055_bar_news.sql) changes
-- its answer (an article's news_at, news_at + 1 hour, news_at + 24 hours), holding bar_news' columns as they
-- are for every lookup time after e up to the next such instant. A bar takes the row of its symbol with the
-- greatest e strictly before its available_at A (features/store.py, a binary search of e): the articles with
-- news_at <= e are then exactly those with news_at < A (an article with e < news_at < A would be an instant
-- between e and A), and those with news_at + 1 hour <= e exactly those with news_at < A - 1 hour (likewise
-- 24 hours): bar_news' three lookups (cur, h1, d1), computed once per instant by the same expressions. A bar
-- with no row before A has no article: counts 0, the rest NULL (bar_news' coalesce(NULL, 0) - coalesce(NULL,
-- 0)). Run after chunk_begin.sql (news_running of the batch); rows in order of symbol, then e.
WITH news_events AS (
    SELECT DISTINCT symbol, e
    FROM (
        SELECT symbol, news_at AS e FROM news_running
        UNION ALL
        SELECT symbol, news_at + INTERVAL 1 HOUR FROM news_running
        UNION ALL
        SELECT symbol, news_at + INTERVAL 24 HOUR FROM news_running
    )
    WHERE list_contains(getvariable('chunk_symbols'), symbol)
),
timeline AS (
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
)
SELECT symbol, e, last_news_at, sentiment_last, news_count_1h, news_count_1d,
       CASE WHEN news_count_1h > 0 THEN sum_1h::DOUBLE / news_count_1h END AS sentiment_mean_1h,
       CASE WHEN news_count_1d > 0 THEN sum_1d::DOUBLE / news_count_1d END AS sentiment_mean_1d
FROM timeline
ORDER BY symbol, e;
