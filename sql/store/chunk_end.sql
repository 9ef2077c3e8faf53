-- End of one batch of the feature store: the shadowing views and their table go, the lake's views are
-- visible again.
DROP VIEW IF EXISTS temp.news_running;
DROP TABLE IF EXISTS chunk_news_running;
DROP VIEW IF EXISTS temp.bars;
