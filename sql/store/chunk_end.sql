-- End of one batch of the feature store: the shadowing view and its table go, the lake's views are visible
-- again.
DROP VIEW IF EXISTS temp.news_running;
DROP TABLE IF EXISTS chunk_news_running;
