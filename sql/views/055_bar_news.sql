-- News as of each bar of `bars`: one row per (symbol, interval, ts).
--
-- The as-of rule (DESIGN.md): an article counts for a bar only if its time is strictly before the bar's
-- available_at; an article stamped exactly at the close instant belongs to the next bar. Its time
-- (news_at, per the news_time setting) comes from news_running.
-- Trailing windows are [available_at - 1 hour, available_at) and [available_at - 24 hours, available_at).
--
-- Columns: last_news_at (the time, per news_time, of the latest article that counts; NULL if none),
-- sentiment_last (its VADER compound; among articles at one instant, the one with the greatest id),
-- news_count_1h / news_count_1d (0 if none), sentiment_mean_1h / sentiment_mean_1d (NULL if none).
--
-- How: an ASOF join finds news_running's totals just before available_at and just before each window's
-- start; a window's count and sum are the differences.
CREATE OR REPLACE VIEW bar_news AS
WITH joined AS (
    SELECT b.symbol, b."interval", b.ts,
           cur.news_at AS last_news_at,
           cur.last_sentiment::DOUBLE AS sentiment_last,
           (coalesce(cur.cum_n, 0) - coalesce(h1.cum_n, 0))::BIGINT AS news_count_1h,
           (coalesce(cur.cum_n, 0) - coalesce(d1.cum_n, 0))::BIGINT AS news_count_1d,
           coalesce(cur.cum_s, 0) - coalesce(h1.cum_s, 0) AS sum_1h,
           coalesce(cur.cum_s, 0) - coalesce(d1.cum_s, 0) AS sum_1d
    FROM bars b
    ASOF LEFT JOIN news_running cur
        ON cur.symbol = b.symbol AND cur.news_at < b.available_at
    ASOF LEFT JOIN news_running h1
        ON h1.symbol = b.symbol AND h1.news_at < b.available_at - INTERVAL 1 HOUR
    ASOF LEFT JOIN news_running d1
        ON d1.symbol = b.symbol AND d1.news_at < b.available_at - INTERVAL 24 HOUR
)
SELECT symbol, "interval", ts,
       last_news_at,
       sentiment_last,
       news_count_1h,
       news_count_1d,
       CASE WHEN news_count_1h > 0 THEN sum_1h::DOUBLE / news_count_1h END AS sentiment_mean_1h,
       CASE WHEN news_count_1d > 0 THEN sum_1d::DOUBLE / news_count_1d END AS sentiment_mean_1d
FROM joined;
