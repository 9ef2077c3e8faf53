-- Train, validation and test periods over the lake's bar range [min(ts), max(available_at)), from the
-- [splits] settings; half-open [start_at, end_at), disjoint and in that order, with an embargo between
-- consecutive periods. Which bars belong to which period: bar_splits.
--   method 'fraction': the range less two nominal embargoes (below) is cut train_fraction /
--                      validation_fraction / rest, each length rounded down to a whole minute; on a lake
--                      of stocks alone the range and the lengths are session time (session_clock), so
--                      that every period holds its share of the trading and none falls overnight; on a
--                      lake that holds crypto, clock time.
--   method 'date':     train ends at the end of train_end (UTC), validation at the end of validation_end
--                      (or at the end of the embargo after train, when that is later), test runs to the
--                      end of the range.
-- The embargo: embargo_days whole days when set (> 0); else embargo_bars bars of the lake's shortest
-- interval counted in trading time, on the calendar of every asset class the lake holds, and it ends
-- when the last of them has had its bars (splits_embargo_end below):
--   crypto (24/7):     embargo_bars x the interval of clock time;
--   stocks and ETFs:   intraday intervals, embargo_bars x the interval of session time (session_clock:
--                      the `session` setting's hours; closed hours, weekends and holidays do not count);
--                      daily intervals, embargo_bars x the interval in whole sessions (five a week for
--                      weekly bars) starting at or after the boundary;
--   past the materialised calendar the embargo runs to the end of the range; a lake of stocks with no
--   calendar at all (made by hand, not by ingest) counts their bars on the clock.
-- The nominal embargo of the fraction cut: embargo_bars x the interval (or the days) of its clock; on the
-- session clock, daily bars' sessions (or the days) count as the longest session each.
-- Every boundary is clamped into the range, so a period can be empty (start_at = end_at) but never
-- overlaps another. features/splits.py computes the same periods in Python.
-- How: the boundaries are computed one after another (each embargo starts where the period before it ends)
-- in stages over the lake's single row, each stage one pass over the sessions (session_clock, read once):
-- the clock's reading at an instant (the session time of the sessions started at or before it, up to it),
-- then the first session whose clock reaches that reading plus the time asked for (as the macros
-- session_time_at, session_time_end and sessions_end of session_clock's file, without a correlated
-- subquery per boundary: half the time).
-- splits_embargo_end: the end of the embargo starting at t_us, given time_end (when need_us of session
-- time has passed since t_us; NULL past the calendar) and sessions_end (the end of the n-th session
-- starting at or after t_us; NULL past the calendar).
CREATE OR REPLACE MACRO splits_embargo_end(t_us, range_end_us, clock, sessions, bar_minutes, need_us, days,
                                           time_end, sessions_end) AS
    CASE WHEN days > 0 THEN t_us + days * 86400000000
         ELSE greatest(
             CASE WHEN clock THEN t_us + need_us ELSE t_us END,
             CASE WHEN NOT sessions THEN t_us
                  WHEN bar_minutes < 1440 THEN coalesce(time_end, range_end_us)
                  ELSE coalesce(sessions_end, range_end_us) END)
    END;

CREATE OR REPLACE VIEW splits AS
WITH sc AS MATERIALIZED (
    SELECT session_no, start_us, end_us, clock_us FROM session_clock
),
cal AS (
    SELECT count(*) > 0 AS has_calendar, coalesce(max(end_us - start_us), 0) AS longest_us FROM sc
),
r AS (
    -- (a lake of stocks with no calendar materialised at all, made by hand: their embargo on the clock)
    SELECT epoch_us(min(ts)) AS s, epoch_us(max(available_at)) AS e,
           bool_or(asset_class = 'crypto') OR (bool_or(asset_class <> 'crypto') AND NOT any_value(has_calendar))
               AS clock,
           bool_or(asset_class <> 'crypto') AND any_value(has_calendar) AS sessions,
           any_value(longest_us) AS longest_us
    FROM bars, cal HAVING count(*) > 0
),
iv AS (
    SELECT coalesce(min(TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
               * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                           WHEN 'w' THEN 10080 END), 1) AS bar_minutes
    FROM (SELECT DISTINCT "interval" FROM bars)
),
p AS (
    SELECT r.s, r.e, r.clock, r.sessions, r.longest_us, iv.bar_minutes, st.split_method, st.embargo_days,
           r.sessions AND NOT r.clock AS on_sessions,  -- the fraction cut runs on the session clock
           st.embargo_bars * iv.bar_minutes * 60000000 AS need_us,  -- the bars' time (clock or session)
           st.embargo_bars * CASE WHEN iv.bar_minutes >= 10080 THEN 5 * iv.bar_minutes // 10080
                                  ELSE iv.bar_minutes // 1440 END AS n_sessions,  -- daily bars' sessions
           st.train_fraction, st.validation_fraction,
           epoch_us(timezone('UTC', (st.train_end::DATE + 1)::TIMESTAMP)) AS train_end_us,
           epoch_us(timezone('UTC', (st.validation_end::DATE + 1)::TIMESTAMP)) AS validation_end_us
    FROM r, iv, lake_settings st
),
n AS (
    SELECT *,
           CASE WHEN on_sessions AND embargo_days > 0 THEN embargo_days * longest_us
                WHEN on_sessions AND bar_minutes >= 1440 THEN n_sessions * longest_us
                WHEN embargo_days > 0 THEN embargo_days * 86400000000
                ELSE need_us END AS nominal
    FROM p
),
-- the session clock's readings at the range's ends (the fraction cut's clock on a lake of stocks alone)
ends AS (
    SELECT n.*,
           coalesce(max(sc.clock_us - sc.end_us + least(n.s, sc.end_us)) FILTER (WHERE sc.start_us <= n.s), 0)
               AS at_s,
           coalesce(max(sc.clock_us - sc.end_us + least(n.e, sc.end_us)) FILTER (WHERE sc.start_us <= n.e), 0)
               AS at_e
    FROM n LEFT JOIN sc ON true GROUP BY ALL
),
lengths AS (
    SELECT *,
           (floor(train_fraction * greatest(span - 2 * nominal, 0) / 60000000.0) * 60000000)::BIGINT AS lt,
           (floor(validation_fraction * greatest(span - 2 * nominal, 0) / 60000000.0) * 60000000)::BIGINT AS lv
    FROM (SELECT *, CASE WHEN on_sessions THEN at_e - at_s ELSE e - s END AS span FROM ends)
),
-- (each stage: the aggregates over the sessions alone, GROUP BY ALL keeping the row; then the boundary)
b1raw AS (
    SELECT l.*, min(sc.end_us - sc.clock_us) FILTER (WHERE sc.clock_us >= l.at_s + l.lt) AS te1
    FROM lengths l LEFT JOIN sc ON true GROUP BY ALL
),
b1s AS (
    SELECT *,
           CASE WHEN split_method = 'date' THEN train_end_us
                WHEN on_sessions THEN coalesce(CASE WHEN lt <= 0 THEN s ELSE te1 + at_s + lt END, e)
                ELSE s + lt END AS b1
    FROM b1raw
),
-- the clock's reading at b1, and the first session starting at or after it
at1 AS (
    SELECT b.*,
           coalesce(max(sc.clock_us - sc.end_us + least(b.b1, sc.end_us)) FILTER (WHERE sc.start_us <= b.b1), 0)
               AS at_b1,
           min(sc.session_no) FILTER (WHERE sc.start_us >= b.b1) AS next_b1
    FROM b1s b LEFT JOIN sc ON true GROUP BY ALL
),
b2raw AS (
    SELECT a.*,
           min(sc.end_us - sc.clock_us) FILTER (WHERE sc.clock_us >= a.at_b1 + a.need_us) AS te2,
           min(sc.end_us) FILTER (WHERE sc.session_no >= a.next_b1 + a.n_sessions - 1) AS se2
    FROM at1 a LEFT JOIN sc ON true GROUP BY ALL
),
b2s AS (
    SELECT *,
           splits_embargo_end(b1, e, clock, sessions, bar_minutes, need_us, embargo_days, te2 + at_b1 + need_us,
                              se2) AS b2
    FROM b2raw
),
at2 AS (
    SELECT b.*,
           coalesce(max(sc.clock_us - sc.end_us + least(b.b2, sc.end_us)) FILTER (WHERE sc.start_us <= b.b2), 0)
               AS at_b2
    FROM b2s b LEFT JOIN sc ON true GROUP BY ALL
),
b3raw AS (
    SELECT a.*, min(sc.end_us - sc.clock_us) FILTER (WHERE sc.clock_us >= a.at_b2 + a.lv) AS te3
    FROM at2 a LEFT JOIN sc ON true GROUP BY ALL
),
b3s AS (
    SELECT *,
           CASE WHEN split_method = 'date' THEN greatest(b2, validation_end_us)
                WHEN on_sessions THEN coalesce(CASE WHEN lv <= 0 THEN b2 ELSE te3 + at_b2 + lv END, e)
                ELSE b2 + lv END AS b3
    FROM b3raw
),
at3 AS (
    SELECT b.*,
           coalesce(max(sc.clock_us - sc.end_us + least(b.b3, sc.end_us)) FILTER (WHERE sc.start_us <= b.b3), 0)
               AS at_b3,
           min(sc.session_no) FILTER (WHERE sc.start_us >= b.b3) AS next_b3
    FROM b3s b LEFT JOIN sc ON true GROUP BY ALL
),
b4raw AS (
    SELECT a.*,
           min(sc.end_us - sc.clock_us) FILTER (WHERE sc.clock_us >= a.at_b3 + a.need_us) AS te4,
           min(sc.end_us) FILTER (WHERE sc.session_no >= a.next_b3 + a.n_sessions - 1) AS se4
    FROM at3 a LEFT JOIN sc ON true GROUP BY ALL
),
chain AS (
    SELECT *,
           splits_embargo_end(b3, e, clock, sessions, bar_minutes, need_us, embargo_days, te4 + at_b3 + need_us,
                              se4) AS b4
    FROM b4raw
),
clamped AS (
    SELECT s, e,
           least(greatest(b1, s), e) AS c1,
           least(greatest(b2, s), e) AS c2,
           least(greatest(b3, s), e) AS c3,
           least(greatest(b4, s), e) AS c4
    FROM chain
)
SELECT split, split_no, timezone('UTC', make_timestamp(lo)) AS start_at, timezone('UTC', make_timestamp(hi)) AS end_at
FROM clamped,
     (VALUES ('train', 1), ('validation', 2), ('test', 3)) v(split, split_no),
     LATERAL (SELECT CASE split_no WHEN 1 THEN s WHEN 2 THEN c2 ELSE c4 END AS lo,
                     CASE split_no WHEN 1 THEN c1 WHEN 2 THEN c3 ELSE e END AS hi)
ORDER BY split_no;
