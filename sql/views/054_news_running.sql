-- Running news totals per symbol and instant: the one place where an article's as-of time is decided.
--
-- news_at is published_at, or with the setting news_time = 'ingested' greatest(published_at, ingested_at):
-- when the lake first saw the article, and never before it was published (defence in depth: an
-- ingested_at stamped before the article existed would otherwise let a bar see news published after it
-- closed). Articles are collapsed to one row per (symbol, news_at) with running counts and sentiment sums,
-- so that a trailing window's count and sum are the difference of two as-of lookups. Sentiment is summed
-- as DECIMAL(18, 4) (VADER rounds to 4 decimals) so the differences are exact. last_sentiment: among
-- articles at one instant, the one with the greatest id.
CREATE OR REPLACE VIEW news_running AS
WITH articles AS (
    SELECT symbol,
           CASE WHEN (SELECT news_time FROM lake_settings) = 'ingested' THEN greatest(published_at, ingested_at)
                ELSE published_at END AS news_at,
           id,
           sentiment::DECIMAL(18, 4) AS sentiment
    FROM news
),
per_instant AS (
    SELECT symbol, news_at,
           count(*) AS n,
           sum(sentiment) AS s,
           arg_max(sentiment, id) AS last_sentiment
    FROM articles
    GROUP BY symbol, news_at
)
SELECT symbol, news_at, last_sentiment,
       sum(n) OVER w AS cum_n,
       sum(s) OVER w AS cum_s
FROM per_instant
WINDOW w AS (PARTITION BY symbol ORDER BY news_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
