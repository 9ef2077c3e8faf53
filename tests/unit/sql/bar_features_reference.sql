-- The bar_features view as it was computed before (commit a4205a0): four window passes, the later two
-- partitioned by segment. Kept as the reference that tests/unit/test_bar_features_reference.py compares
-- the two-pass view with (same rows, same values to the last bits DuckDB's frame sums may move).
CREATE OR REPLACE VIEW bar_features_reference AS
WITH base AS (
    SELECT b.symbol, b."interval", b.ts, b.available_at, b.asset_class, b.calendar, b.day, b.session_no,
           b.start_at, b.end_at, b.interval_minutes, b.open, b.high, b.low, b.close, b.volume,
           lag(b.available_at) OVER w AS prev_available_at,
           lag(b.end_at) OVER w AS prev_end_at,
           lag(b.session_no) OVER w AS prev_session_no
    FROM bar_sessions b
    WHERE b.in_session
    WINDOW w AS (PARTITION BY b.symbol, b."interval" ORDER BY b.ts)
),
marked AS (
    SELECT base.*,
           CASE WHEN prev_available_at IS NULL THEN 1
                WHEN calendar = 'XNYS' AND session_no - prev_session_no > 1 THEN 1
                WHEN calendar = 'XNYS' AND interval_minutes >= 1440 THEN 0
                WHEN calendar = 'XNYS' AND session_no = prev_session_no + 1 THEN
                    CASE WHEN (greatest(epoch(prev_end_at) - epoch(prev_available_at), 0)
                               + greatest(epoch(ts) - epoch(start_at), 0)) / 60.0
                              > st.max_gap_minutes THEN 1 ELSE 0 END
                WHEN (epoch(ts) - epoch(prev_available_at)) / 60.0 > st.max_gap_minutes THEN 1
                ELSE 0 END AS seg_start
    FROM base, lake_settings st
),
segs AS (
    SELECT *,
           sum(seg_start) OVER (PARTITION BY symbol, "interval" ORDER BY ts ROWS UNBOUNDED PRECEDING)
               AS segment_no
    FROM marked
),
step AS (
    SELECT *,
           row_number() OVER s - 1 AS segment_pos,
           lag(close) OVER s AS close_1,
           lag(close, 5) OVER s AS close_5,
           lag(close, 15) OVER s AS close_15,
           lag(close, 60) OVER s AS close_60,
           CASE WHEN lag(close) OVER s > 0 AND close > 0 THEN ln(close / lag(close) OVER s) END AS r1,
           close - lag(close) OVER s AS chg,
           CASE WHEN high > 0 AND low > 0 THEN ln(high / low) END AS hl
    FROM segs
    WINDOW s AS (PARTITION BY symbol, "interval", segment_no ORDER BY ts)
),
win AS (
    SELECT *,
           stddev_samp(r1) OVER (s ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS sd15,
           stddev_samp(r1) OVER (s ROWS BETWEEN 59 PRECEDING AND CURRENT ROW) AS sd60,
           sum(greatest(chg, 0)) OVER (s ROWS BETWEEN 13 PRECEDING AND CURRENT ROW) AS gain14,
           sum(greatest(-chg, 0)) OVER (s ROWS BETWEEN 13 PRECEDING AND CURRENT ROW) AS loss14,
           avg(volume) OVER (s ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING) AS vmean60,
           stddev_samp(volume) OVER (s ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING) AS vsd60,
           avg(hl) OVER (s ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS hl15,
           CASE WHEN calendar = 'XNYS' THEN timezone('America/New_York', ts)
                ELSE make_timestamp(epoch_us(ts)) END AS local_ts  -- UTC wall clock by arithmetic
    FROM step
    WINDOW s AS (PARTITION BY symbol, "interval", segment_no ORDER BY ts)
)
SELECT symbol, "interval", ts, available_at,
       asset_class, calendar, day AS trading_day,
       segment_no::BIGINT AS segment_no, segment_pos::BIGINT AS segment_pos,
       segment_pos < 60 AS warmup,
       CASE WHEN close_1 > 0 AND close > 0 THEN ln(close / close_1) END AS ret_1,
       CASE WHEN close_5 > 0 AND close > 0 THEN ln(close / close_5) END AS ret_5,
       CASE WHEN close_15 > 0 AND close > 0 THEN ln(close / close_15) END AS ret_15,
       CASE WHEN close_60 > 0 AND close > 0 THEN ln(close / close_60) END AS ret_60,
       CASE WHEN segment_pos >= 15 THEN sd15 END AS vol_15,
       CASE WHEN segment_pos >= 60 THEN sd60 END AS vol_60,
       CASE WHEN segment_pos >= 14 THEN
           CASE WHEN gain14 + loss14 > 0 THEN 100 * gain14 / (gain14 + loss14) ELSE 50.0 END END AS rsi_14,
       CASE WHEN segment_pos >= 60 AND vsd60 > 0 THEN (volume - vmean60) / vsd60 END AS volume_z_60,
       hl AS range_hl,
       CASE WHEN segment_pos >= 14 THEN hl15 END AS range_mean_15,
       CASE WHEN open > 0 AND close > 0 THEN ln(close / open) END AS body,
       CASE WHEN close_1 > 0 AND open > 0 THEN ln(open / close_1) END AS gap_open,
       CASE WHEN segment_pos >= 1 THEN (epoch(ts) - epoch(prev_available_at)) / 60.0 END AS idle_minutes,
       (hour(local_ts) * 60 + minute(local_ts))::BIGINT AS minute_of_day,
       isodow(local_ts)::BIGINT AS day_of_week,
       sin(2 * pi() * (hour(local_ts) * 60 + minute(local_ts)) / 1440.0) AS tod_sin,
       cos(2 * pi() * (hour(local_ts) * 60 + minute(local_ts)) / 1440.0) AS tod_cos,
       (epoch(ts) - epoch(start_at)) / 60.0 AS minutes_since_open,
       (epoch(end_at) - epoch(available_at)) / 60.0 AS minutes_to_close,
       open, high, low, close
FROM win;
