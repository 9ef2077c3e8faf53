-- Start of one batch of the feature store (features/store.py), on a private connection whose lake_bars see
-- only the batch's own bars and lake_news the news of its symbols and of SPY and QQQ. news_running, read
-- by news_timeline.sql, is computed once by its view into a temporary table and shadowed by a temporary
-- view of the same name (DuckDB resolves temp before main). The bars and their bar_features_priced rows are
-- not materialised: features_chunk.sql reads them once, as they stream.
CREATE OR REPLACE TEMP TABLE chunk_news_running AS SELECT * FROM main.news_running;
CREATE OR REPLACE TEMP VIEW news_running AS SELECT * FROM chunk_news_running;
