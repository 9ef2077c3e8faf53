-- Stored articles, one row per article and symbol, with their sentiment computed once at ingest.
CREATE OR REPLACE VIEW lake_news AS
SELECT id, symbol, published_at, ingested_at, title, summary, publisher, url, sentiment, source
FROM read_parquet(
    coalesce(getvariable('dataset_news'), lake_dataset('news')) || '/*/data.parquet',
    hive_partitioning = true,
    hive_types = {'symbol': VARCHAR}
);
