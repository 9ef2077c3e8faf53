-- Market context as of each bar of `bars`: one row per (symbol, interval, ts) with the latest SPY and
-- QQQ state known at the bar's available_at. NULL where SPY or QQQ is not in the lake.
--
-- spy_available_at / spy_log_ret_1: the SPY bar of the same interval with the latest available_at that
-- is <= the bar's available_at (a bar is known at its available_at), and its log return against the
-- previous SPY bar of that interval. spy_available_at shows how stale it is (weekends, holidays).
-- spy_sentiment_last / spy_news_count_1d / spy_sentiment_mean_1d: SPY's own news as of the bar's
-- available_at, by the same rule as bar_news (article time < available_at, per news_time; window
-- [available_at - 24 hours, available_at)). The same columns with qqq_ for QQQ.
CREATE OR REPLACE VIEW market_context AS
WITH index_bars AS (
    SELECT symbol, "interval", available_at,
           ln(close / lag(close) OVER (PARTITION BY symbol, "interval" ORDER BY ts)) AS log_ret_1
    FROM bars
    WHERE symbol IN ('SPY', 'QQQ')
),
spy_bars AS (SELECT "interval", available_at, log_ret_1 FROM index_bars WHERE symbol = 'SPY'),
qqq_bars AS (SELECT "interval", available_at, log_ret_1 FROM index_bars WHERE symbol = 'QQQ'),
articles AS (
    SELECT symbol,
           CASE WHEN (SELECT news_time FROM lake_settings) = 'ingested' THEN ingested_at
                ELSE published_at END AS news_at,
           id,
           sentiment::DECIMAL(18, 4) AS sentiment
    FROM news
    WHERE symbol IN ('SPY', 'QQQ')
),
per_instant AS (
    SELECT symbol, news_at,
           count(*) AS n,
           sum(sentiment) AS s,
           arg_max(sentiment, id) AS last_sentiment
    FROM articles
    GROUP BY symbol, news_at
),
running AS (
    SELECT symbol, news_at, last_sentiment,
           sum(n) OVER w AS cum_n,
           sum(s) OVER w AS cum_s
    FROM per_instant
    WINDOW w AS (PARTITION BY symbol ORDER BY news_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
spy_news AS (SELECT news_at, last_sentiment, cum_n, cum_s FROM running WHERE symbol = 'SPY'),
qqq_news AS (SELECT news_at, last_sentiment, cum_n, cum_s FROM running WHERE symbol = 'QQQ'),
joined AS (
    SELECT b.symbol, b."interval", b.ts,
           sb.available_at AS spy_available_at,
           sb.log_ret_1 AS spy_log_ret_1,
           sn.last_sentiment::DOUBLE AS spy_sentiment_last,
           (coalesce(sn.cum_n, 0) - coalesce(sd.cum_n, 0))::BIGINT AS spy_news_count_1d,
           coalesce(sn.cum_s, 0) - coalesce(sd.cum_s, 0) AS spy_sum_1d,
           qb.available_at AS qqq_available_at,
           qb.log_ret_1 AS qqq_log_ret_1,
           qn.last_sentiment::DOUBLE AS qqq_sentiment_last,
           (coalesce(qn.cum_n, 0) - coalesce(qd.cum_n, 0))::BIGINT AS qqq_news_count_1d,
           coalesce(qn.cum_s, 0) - coalesce(qd.cum_s, 0) AS qqq_sum_1d
    FROM bars b
    ASOF LEFT JOIN spy_bars sb
        ON sb."interval" = b."interval" AND sb.available_at <= b.available_at
    ASOF LEFT JOIN qqq_bars qb
        ON qb."interval" = b."interval" AND qb.available_at <= b.available_at
    ASOF LEFT JOIN spy_news sn ON sn.news_at < b.available_at
    ASOF LEFT JOIN spy_news sd ON sd.news_at < b.available_at - INTERVAL 24 HOUR
    ASOF LEFT JOIN qqq_news qn ON qn.news_at < b.available_at
    ASOF LEFT JOIN qqq_news qd ON qd.news_at < b.available_at - INTERVAL 24 HOUR
)
SELECT symbol, "interval", ts,
       spy_available_at, spy_log_ret_1, spy_sentiment_last, spy_news_count_1d,
       CASE WHEN spy_news_count_1d > 0 THEN spy_sum_1d::DOUBLE / spy_news_count_1d END
           AS spy_sentiment_mean_1d,
       qqq_available_at, qqq_log_ret_1, qqq_sentiment_last, qqq_news_count_1d,
       CASE WHEN qqq_news_count_1d > 0 THEN qqq_sum_1d::DOUBLE / qqq_news_count_1d END
           AS qqq_sentiment_mean_1d
FROM joined;
