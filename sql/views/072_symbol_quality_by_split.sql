-- Quality and eligibility of every (symbol, interval) in each period of `splits`, judged on that period's
-- bars only and against a threshold set by the settings alone: data outside a period never changes which
-- symbols it admits (the train period decides what trains). Under split_method = 'date' the periods end on
-- fixed days (once the lake's range reaches past them; `splits` clamps them into it), so data added after
-- the train period never changes its rows; under 'fraction' the periods themselves are fractions of the
-- lake's range and move as it grows (that is the method). symbol_quality / eligible_symbols keep judging
-- the whole history.
--   n_bars          bars of the period (bar_splits' rule: ts >= start_at and available_at <= end_at) inside
--                   the session (lake_settings.session; every bar for crypto)
--   expected_bars   per trading day from the symbol's first to its last bar in the period, the session's
--                   time clipped to the period, divided by the interval (one per day for daily bars)
--   missing_ratio   missing_bars / expected_bars
--   min_bars        the period's part of min_bars_per_symbol, from the settings only: under 'fraction' the
--                   period's fraction of the lake (train_fraction, validation_fraction, and the rest for
--                   test) times min_bars_per_symbol, rounded up; under 'date' min_bars_per_symbol itself;
--                   at least 1. Never the period's share of the lake's range: that grows with later data.
--   eligible        n_bars >= min_bars and missing_ratio <= max_missing_ratio
--   reason          why, in words; a symbol with no bar in a period has a row saying so
CREATE OR REPLACE VIEW symbol_quality_by_split AS
WITH sp AS (
    SELECT s.split, s.split_no, s.start_at, s.end_at,
           CASE WHEN st.split_method = 'date' THEN 1
                WHEN s.split = 'train' THEN st.train_fraction
                WHEN s.split = 'validation' THEN st.validation_fraction
                ELSE 1 - st.train_fraction - st.validation_fraction END::DOUBLE AS part,
           CASE WHEN st.split_method = 'date' THEN NULL
                WHEN s.split = 'train' THEN 'train_fraction'
                WHEN s.split = 'validation' THEN 'validation_fraction'
                ELSE 'the test period''s fraction' END AS part_name
    FROM splits s, lake_settings st
),
pairs AS (
    SELECT DISTINCT symbol, "interval", asset_class, calendar, interval_minutes FROM bar_sessions
),
pb AS (
    SELECT b.symbol, b."interval", b.day, b.ts, b.available_at, sp.split
    FROM bar_sessions b
    JOIN sp ON sp.start_at < sp.end_at AND b.ts >= sp.start_at AND b.available_at <= sp.end_at
    WHERE b.in_session
),
per_day AS (
    SELECT symbol, "interval", split, day, count(*) AS n_bars, min(ts) AS first_ts, max(ts) AS last_ts
    FROM pb
    GROUP BY ALL
),
series AS (
    SELECT symbol, "interval", split, min(day) AS first_day, max(day) AS last_day,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM per_day
    GROUP BY ALL
),
days AS (
    SELECT s.symbol, s."interval", s.split, w.day, w.start_at AS open_at, w.end_at AS close_at
    FROM series s
    JOIN pairs p USING (symbol, "interval")
    JOIN session_windows w ON p.calendar = 'XNYS' AND w.day BETWEEN s.first_day AND s.last_day
    UNION ALL
    SELECT s.symbol, s."interval", s.split, d::DATE AS day, timezone('UTC', d) AS open_at,
           timezone('UTC', d + INTERVAL 1 DAY) AS close_at
    FROM series s
    JOIN pairs p USING (symbol, "interval"),
         unnest(generate_series(s.first_day::TIMESTAMP, s.last_day::TIMESTAMP, INTERVAL 1 DAY)) AS g(d)
    WHERE p.calendar = '24/7'
),
expected AS (
    SELECT d.symbol, d."interval", d.split, d.day,
           coalesce(pd.n_bars, 0) AS n_bars,
           CASE WHEN p.interval_minutes IS NULL OR p.interval_minutes > 1440 THEN NULL
                WHEN p.interval_minutes = 1440 THEN 1
                ELSE ceil(greatest(epoch(least(d.close_at, sp.end_at)) - epoch(greatest(d.open_at, sp.start_at)), 0)
                          / 60.0 / p.interval_minutes) END::BIGINT AS expected_bars
    FROM days d
    JOIN pairs p USING (symbol, "interval")
    JOIN sp USING (split)
    LEFT JOIN per_day pd USING (symbol, "interval", split, day)
),
q AS (
    SELECT symbol, "interval", split,
           sum(n_bars)::BIGINT AS n_bars,
           sum(expected_bars)::BIGINT AS expected_bars,
           sum(greatest(expected_bars - n_bars, 0))::BIGINT AS missing_bars
    FROM expected
    GROUP BY ALL
),
m AS (
    SELECT p.symbol, p."interval", p.asset_class, sp.split, sp.split_no, sp.start_at, sp.end_at,
           coalesce(q.n_bars, 0) AS n_bars, coalesce(q.expected_bars, 0) AS expected_bars,
           coalesce(q.missing_bars, 0) AS missing_bars,
           CASE WHEN q.expected_bars > 0 THEN q.missing_bars / q.expected_bars END::DOUBLE AS missing_ratio,
           s.first_ts, s.last_ts,
           -- rounded to 1e-6 first: 1 - 0.7 - 0.15 is 0.15000000000000002 in binary, not a bar more
           greatest(ceil(round(st.min_bars_per_symbol * sp.part, 6)), 1)::BIGINT AS min_bars,
           st.min_bars_per_symbol, sp.part, sp.part_name,
           st.max_missing_ratio
    FROM pairs p
    CROSS JOIN sp
    CROSS JOIN lake_settings st
    LEFT JOIN q ON q.symbol = p.symbol AND q."interval" = p."interval" AND q.split = sp.split
    LEFT JOIN series s ON s.symbol = p.symbol AND s."interval" = p."interval" AND s.split = sp.split
)
SELECT split, split_no, symbol, "interval", asset_class, start_at, end_at, first_ts, last_ts,
       n_bars, expected_bars, missing_bars, missing_ratio, min_bars, max_missing_ratio,
       coalesce(n_bars >= min_bars AND missing_ratio <= max_missing_ratio, false) AS eligible,
       CASE
           WHEN start_at >= end_at THEN printf('the %s period is empty (the lake''s range is too short for it)', split)
           WHEN n_bars = 0 THEN printf('no bar in the %s period', split)
           WHEN expected_bars = 0 THEN printf('interval %s is not measured', "interval")
           WHEN n_bars >= min_bars AND missing_ratio <= max_missing_ratio
               THEN printf('%d bars >= %d and %.2f%% of trading time missing <= %.2f%% in the %s period',
                           n_bars, min_bars, 100 * missing_ratio, 100 * max_missing_ratio, split)
           ELSE concat_ws('; ',
               CASE WHEN n_bars < min_bars
                    THEN printf('only %d bars in session in the %s period (< %s)', n_bars, split,
                                CASE WHEN part_name IS NULL
                                     THEN printf('min_bars_per_symbol %d', min_bars_per_symbol)
                                     ELSE printf('%d: min_bars_per_symbol %d x %s %g', min_bars,
                                                 min_bars_per_symbol, part_name, round(part, 6)) END) END,
               CASE WHEN missing_ratio > max_missing_ratio
                    THEN printf('%.2f%% of trading time missing in the %s period (> max_missing_ratio %.2f%%)',
                                100 * missing_ratio, split, 100 * max_missing_ratio) END)
       END AS reason
FROM m;
