-- News as of each bar: an article counts for a bar only if published_at < available_at.
-- (first version; the news issue adds trailing windows and the news_time setting)
CREATE OR REPLACE VIEW bar_news AS
SELECT b.symbol, b."interval", b.ts,
       n.published_at AS last_news_at,
       n.sentiment AS sentiment_last
FROM bars b
ASOF LEFT JOIN (SELECT symbol, published_at, sentiment FROM news) n
    ON n.symbol = b.symbol AND n.published_at < b.available_at;
