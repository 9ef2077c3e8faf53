-- Data quality per symbol, interval and trading day (first version; the feature-store issue refines it).
CREATE OR REPLACE VIEW bar_quality AS
WITH stored AS (
    SELECT symbol, "interval", asset_class, ts, open, high, low, close,
           CASE WHEN asset_class = 'crypto' THEN ts::DATE
                ELSE timezone('America/New_York', ts)::DATE END AS day
    FROM lake_bars
),
per_day AS (
    SELECT symbol, "interval", asset_class, day,
           count(DISTINCT ts)::BIGINT AS n_bars,
           count(*) FILTER (WHERE NOT (high >= greatest(open, close) AND low <= least(open, close) AND low > 0))::BIGINT
               AS ohlc_violations,
           (count(*) - count(DISTINCT ts))::BIGINT AS duplicates
    FROM stored
    GROUP BY ALL
)
SELECT p.symbol, p."interval", p.day, p.n_bars,
       NULL::BIGINT AS expected_bars,
       NULL::DOUBLE AS missing_ratio,
       NULL::DOUBLE AS max_gap_minutes,
       p.ohlc_violations, p.duplicates,
       0::BIGINT AS out_of_order
FROM per_day p;
