-- Start of one chunk of the feature store (features/store.py), on a private connection whose lake_bars and
-- lake_news see only the chunk's inputs. The views that the features chain reads more than once are
-- computed once, into temporary tables, and shadowed by temporary views of the same name (DuckDB resolves
-- temp before main): the same rows, computed by the same view definitions, read three times for free.
CREATE OR REPLACE TEMP TABLE chunk_bars AS SELECT * FROM main.bars;
CREATE OR REPLACE TEMP VIEW bars AS SELECT * FROM chunk_bars;
CREATE OR REPLACE TEMP TABLE chunk_news_running AS SELECT * FROM main.news_running;
CREATE OR REPLACE TEMP VIEW news_running AS SELECT * FROM chunk_news_running;
CREATE OR REPLACE TEMP TABLE chunk_bar_features AS SELECT * FROM main.bar_features_priced;
CREATE OR REPLACE TEMP VIEW bar_features_priced AS SELECT * FROM chunk_bar_features;
CREATE OR REPLACE TEMP VIEW bar_features AS SELECT * EXCLUDE (open, high, low, close) FROM chunk_bar_features;
