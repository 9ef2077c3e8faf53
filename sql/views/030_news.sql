-- Articles per symbol, one row per (symbol, id): the first-seen version of each article (title, score
-- and ingested_at never rewritten), with its VADER compound sentiment in [-1, 1] computed once at ingest.
-- source: 'yahoo' (ingest news) or 'file' (ingest news-file).
CREATE OR REPLACE VIEW news AS
SELECT id, symbol, published_at, ingested_at, title, summary, publisher, url, sentiment, source
FROM lake_news;
