-- Quality and eligibility of every (symbol, interval) over its whole range, with the reason in words.
-- eligible: n_bars >= lake_settings.min_bars_per_symbol and missing_ratio <= lake_settings.max_missing_ratio,
-- where n_bars counts bars inside the session and missing_ratio is the share of expected bars (trading time)
-- missing over every trading day from the first to the last bar.
CREATE OR REPLACE TEMP VIEW reference_symbol_quality AS
WITH q AS (
    SELECT symbol, "interval", any_value(calendar) AS calendar,
           min(day) AS first_day, max(day) AS last_day, count(*)::BIGINT AS trading_days,
           sum(n_bars)::BIGINT AS n_bars, sum(expected_bars)::BIGINT AS expected_bars,
           sum(missing_bars)::BIGINT AS missing_bars,
           max(max_gap_minutes) AS max_gap_minutes,
           sum(ohlc_violations)::BIGINT AS ohlc_violations,
           sum(duplicates)::BIGINT AS duplicates,
           sum(out_of_order)::BIGINT AS out_of_order
    FROM reference_bar_quality
    GROUP BY symbol, "interval"
),
b AS (
    SELECT symbol, "interval", any_value(asset_class) AS asset_class,
           string_agg(DISTINCT source, ',' ORDER BY source) AS sources,
           min(ts) AS first_ts, max(ts) AS last_ts, count(*)::BIGINT AS stored_bars,
           count(*) FILTER (WHERE NOT in_session)::BIGINT AS bars_not_in_session
    FROM bar_sessions
    GROUP BY symbol, "interval"
),
m AS (
    SELECT b.*, q.* EXCLUDE (symbol, "interval"),
           CASE WHEN q.expected_bars > 0 THEN q.missing_bars / q.expected_bars END::DOUBLE AS missing_ratio,
           st.min_bars_per_symbol, st.max_missing_ratio, st.session
    FROM b
    LEFT JOIN q USING (symbol, "interval")
    CROSS JOIN lake_settings st
)
SELECT symbol, "interval", asset_class, calendar, sources, first_ts, last_ts, first_day, last_day,
       coalesce(trading_days, 0) AS trading_days, coalesce(n_bars, 0) AS n_bars,
       coalesce(expected_bars, 0) AS expected_bars,
       coalesce(missing_bars, 0) AS missing_bars, missing_ratio, max_gap_minutes,
       coalesce(ohlc_violations, 0) AS ohlc_violations, coalesce(duplicates, 0) AS duplicates,
       coalesce(out_of_order, 0) AS out_of_order, stored_bars, bars_not_in_session,
       min_bars_per_symbol, max_missing_ratio, session,
       coalesce(n_bars >= min_bars_per_symbol AND missing_ratio <= max_missing_ratio, false) AS eligible,
       CASE
           WHEN expected_bars IS NULL AND trading_days > 0
               THEN printf('interval %s is not measured (only minute, hour and day intervals have expected bars)',
                           "interval")
           WHEN coalesce(expected_bars, 0) = 0 THEN 'no trading day in the range of its bars'
           WHEN n_bars >= min_bars_per_symbol AND missing_ratio <= max_missing_ratio
               THEN printf('%d bars >= %d and %.2f%% of trading time missing <= %.2f%%',
                           n_bars, min_bars_per_symbol, 100 * missing_ratio, 100 * max_missing_ratio)
           ELSE concat_ws('; ',
               CASE WHEN n_bars < min_bars_per_symbol
                    THEN printf('only %d bars in session (< min_bars_per_symbol %d)', n_bars, min_bars_per_symbol)
               END,
               CASE WHEN missing_ratio > max_missing_ratio
                    THEN printf('%.2f%% of trading time missing (> max_missing_ratio %.2f%%)',
                                100 * missing_ratio, 100 * max_missing_ratio)
               END)
       END AS reason
FROM m;
