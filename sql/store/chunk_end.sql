-- End of one chunk of the feature store: the shadowing views and their tables go, the lake's views are
-- visible again.
DROP VIEW IF EXISTS temp.bar_features;
DROP VIEW IF EXISTS temp.bar_features_priced;
DROP TABLE IF EXISTS chunk_bar_features;
DROP VIEW IF EXISTS temp.news_running;
DROP TABLE IF EXISTS chunk_news_running;
DROP VIEW IF EXISTS temp.bars;
DROP TABLE IF EXISTS chunk_bars;
