-- Articles per symbol, with VADER compound sentiment in [-1, 1].
CREATE OR REPLACE VIEW news AS
SELECT id, symbol, published_at, ingested_at, title, summary, publisher, url, sentiment, source
FROM lake_news;
