-- bar_features_priced: bar_features with the bar's open, high, low and close; how every column is computed.
-- Per-bar model inputs from window functions over past rows only (each frame ends at the current row).
-- bar_features_priced: the same rows with the bar's open, high, low and close as four more columns.
--
-- Which bars: stocks and ETFs only inside the session chosen by lake_settings.session (regular or
-- extended hours); every crypto bar.
-- Segments: a bar starts a new segment (segment_pos = 0) when it is the symbol's first bar, or
--   crypto: the idle time since the previous bar's available_at exceeds lake_settings.max_gap_minutes
--     (midnight is no boundary);
--   stocks and ETFs: the previous bar lies in an earlier session than the one before this bar's (a skipped
--     trading session, e.g. a day with no data; weekends and holidays are not gaps), or the session time
--     with no bar exceeds max_gap_minutes: inside one session the idle time since the previous bar's
--     available_at; from one session to the next, the time from the previous bar's available_at to its
--     session's end plus the time from this session's start to this bar's ts (the night between two
--     consecutive sessions is no gap, so windows and gap_open look back over the previous session's bars;
--     daily bars break only on a skipped session).
-- Bars outside the selected session are not in this view at all. Every window is confined to its segment:
-- a value is computed only from past rows of the segment, nothing is filled in.
-- Warm-up: a feature is NULL until its window is full inside the segment; `warmup` is true while any
-- feature still lacks history (segment_pos < 60).
--
--   ret_k            ln(close / close k bars earlier), k = 1, 5, 15, 60 bars
--   vol_15, vol_60   sample standard deviation of the last 15 / 60 one-bar log returns
--   rsi_14           Cutler's RSI over the last 14 close-to-close changes: 100 * gains / (gains + losses);
--                    50 when nothing moved
--   volume_z_60      (volume - mean) / sd over the 60 bars before this one; NULL when that sd is 0
--   range_hl         ln(high / low);  range_mean_15: its mean over the last 15 bars
--   body             ln(close / open)
--   gap_open         ln(open / previous close) in the segment (the overnight gap at a session's first bar)
--   idle_minutes     minutes between the previous bar's available_at and this bar's ts
--   minute_of_day, day_of_week (ISO, 1 = Monday), tod_sin, tod_cos: exchange time (New York for XNYS,
--                    UTC for crypto) of the bar's open
--   minutes_since_open, minutes_to_close: from the session start to ts, from available_at to the
--                    session end (UTC day for crypto)
-- How: two window passes over each (symbol, interval) in ts order. The first takes the previous rows' values
-- (lags) and each row's number; the second numbers the segments (a running count of segment starts), finds
-- each row's segment start and computes the trailing frames. A frame is used only where the row's
-- segment_pos says it lies wholly inside the segment (e.g. vol_15 from segment_pos 15 on, over the returns
-- of positions segment_pos - 14 .. segment_pos, each a return between two rows of the segment), and a lag
-- of k rows only where segment_pos >= k: so no value ever comes from an earlier segment, exactly as if
-- every window were partitioned by segment.
CREATE OR REPLACE VIEW bar_features_priced AS
WITH base AS (
    SELECT b.symbol, b."interval", b.ts, b.available_at, b.asset_class, b.calendar, b.day, b.session_no,
           b.start_at, b.end_at, b.interval_minutes, b.open, b.high, b.low, b.close, b.volume,
           lag(b.available_at) OVER w AS prev_available_at,
           lag(b.end_at) OVER w AS prev_end_at,
           lag(b.session_no) OVER w AS prev_session_no,
           lag(b.close) OVER w AS prev_close_1,
           lag(b.close, 5) OVER w AS prev_close_5,
           lag(b.close, 15) OVER w AS prev_close_15,
           lag(b.close, 60) OVER w AS prev_close_60,
           row_number() OVER w AS rn
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
                ELSE 0 END AS seg_start,
           -- the one-bar log return and change from the previous row (used only inside a segment)
           CASE WHEN prev_close_1 > 0 AND close > 0 THEN ln(close / prev_close_1) END AS r1,
           close - prev_close_1 AS chg,
           CASE WHEN high > 0 AND low > 0 THEN ln(high / low) END AS hl
    FROM base, lake_settings st
),
win AS (
    SELECT *,
           sum(seg_start) OVER (w ROWS UNBOUNDED PRECEDING) AS segment_no,
           max(CASE WHEN seg_start = 1 THEN rn END) OVER (w ROWS UNBOUNDED PRECEDING) AS seg_first_rn,
           stddev_samp(r1) OVER (w ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS sd15,
           stddev_samp(r1) OVER (w ROWS BETWEEN 59 PRECEDING AND CURRENT ROW) AS sd60,
           sum(greatest(chg, 0)) OVER (w ROWS BETWEEN 13 PRECEDING AND CURRENT ROW) AS gain14,
           sum(greatest(-chg, 0)) OVER (w ROWS BETWEEN 13 PRECEDING AND CURRENT ROW) AS loss14,
           avg(volume) OVER (w ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING) AS vmean60,
           stddev_samp(volume) OVER (w ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING) AS vsd60,
           avg(hl) OVER (w ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS hl15
    FROM marked
    WINDOW w AS (PARTITION BY symbol, "interval" ORDER BY ts)
),
step AS (
    SELECT *,
           rn - seg_first_rn AS segment_pos,
           CASE WHEN rn - seg_first_rn >= 1 THEN prev_close_1 END AS close_1,
           CASE WHEN rn - seg_first_rn >= 5 THEN prev_close_5 END AS close_5,
           CASE WHEN rn - seg_first_rn >= 15 THEN prev_close_15 END AS close_15,
           CASE WHEN rn - seg_first_rn >= 60 THEN prev_close_60 END AS close_60,
           CASE WHEN calendar = 'XNYS' THEN timezone('America/New_York', ts)
                ELSE make_timestamp(epoch_us(ts)) END AS local_ts  -- UTC wall clock by arithmetic
    FROM win
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
FROM step;
