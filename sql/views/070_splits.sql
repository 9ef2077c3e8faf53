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
CREATE OR REPLACE MACRO splits_embargo_end(t_us, range_end_us, clock, sessions, bar_minutes, bars, days) AS
    CASE WHEN days > 0 THEN t_us + days * 86400000000
         ELSE greatest(
             CASE WHEN clock THEN t_us + bars * bar_minutes * 60000000 ELSE t_us END,
             CASE WHEN NOT sessions THEN t_us
                  WHEN bar_minutes < 1440
                      THEN coalesce(session_time_end(t_us, bars * bar_minutes * 60000000), range_end_us)
                  ELSE coalesce(
                      sessions_end(t_us, bars * CASE WHEN bar_minutes >= 10080 THEN 5 * bar_minutes // 10080
                                                     ELSE bar_minutes // 1440 END),
                      range_end_us) END)
    END;

CREATE OR REPLACE VIEW splits AS
WITH cal AS (
    SELECT count(*) > 0 AS has_calendar FROM session_clock
),
r AS (
    -- (a lake of stocks with no calendar materialised at all, made by hand: their embargo on the clock)
    SELECT epoch_us(min(ts)) AS s, epoch_us(max(available_at)) AS e,
           bool_or(asset_class = 'crypto') OR (bool_or(asset_class <> 'crypto') AND NOT any_value(has_calendar))
               AS clock,
           bool_or(asset_class <> 'crypto') AND any_value(has_calendar) AS sessions
    FROM bars, cal HAVING count(*) > 0
),
iv AS (
    SELECT coalesce(min(TRY_CAST(regexp_extract("interval", '^([0-9]+)[mhdw]$', 1) AS BIGINT)
               * CASE right("interval", 1) WHEN 'm' THEN 1 WHEN 'h' THEN 60 WHEN 'd' THEN 1440
                                           WHEN 'w' THEN 10080 END), 1) AS bar_minutes
    FROM (SELECT DISTINCT "interval" FROM bars)
),
p AS (
    SELECT r.s, r.e, r.clock, r.sessions, iv.bar_minutes, st.split_method, st.embargo_bars, st.embargo_days,
           r.sessions AND NOT r.clock AS on_sessions,  -- the fraction cut runs on the session clock
           st.train_fraction, st.validation_fraction,
           epoch_us(timezone('UTC', (st.train_end::DATE + 1)::TIMESTAMP)) AS train_end_us,
           epoch_us(timezone('UTC', (st.validation_end::DATE + 1)::TIMESTAMP)) AS validation_end_us
    FROM r, iv, lake_settings st
),
n AS (
    SELECT *,
           CASE WHEN on_sessions AND (embargo_days > 0 OR bar_minutes >= 1440)
                    THEN (SELECT coalesce(max(end_us - start_us), 0) FROM session_clock)
                         * CASE WHEN embargo_days > 0 THEN embargo_days
                                ELSE embargo_bars * CASE WHEN bar_minutes >= 10080 THEN 5 * bar_minutes // 10080
                                                         ELSE bar_minutes // 1440 END END
                WHEN embargo_days > 0 THEN embargo_days * 86400000000
                ELSE embargo_bars * bar_minutes * 60000000 END AS nominal,
           CASE WHEN on_sessions THEN session_time_at(e) - session_time_at(s) ELSE e - s END AS span
    FROM p
),
b AS (
    SELECT *,
           (floor(train_fraction * greatest(span - 2 * nominal, 0) / 60000000.0) * 60000000)::BIGINT AS lt,
           (floor(validation_fraction * greatest(span - 2 * nominal, 0) / 60000000.0) * 60000000)::BIGINT AS lv
    FROM n
),
b1 AS (
    SELECT *,
           CASE WHEN split_method = 'date' THEN train_end_us
                WHEN on_sessions THEN coalesce(session_time_end(s, lt), e)
                ELSE s + lt END AS b1
    FROM b
),
b12 AS (
    SELECT *, splits_embargo_end(b1, e, clock, sessions, bar_minutes, embargo_bars, embargo_days) AS b2
    FROM b1
),
b123 AS (
    SELECT *,
           CASE WHEN split_method = 'date' THEN greatest(b2, validation_end_us)
                WHEN on_sessions THEN coalesce(session_time_end(b2, lv), e)
                ELSE b2 + lv END AS b3
    FROM b12
),
chain AS (
    SELECT *, splits_embargo_end(b3, e, clock, sessions, bar_minutes, embargo_bars, embargo_days) AS b4
    FROM b123
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
