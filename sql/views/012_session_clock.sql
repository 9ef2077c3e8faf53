-- session_clock: the XNYS sessions of session_windows (the hours the `session` setting selects) with the
-- trading time they add up to, so that "n bars of stock trading" can be turned into an instant.
--   start_us, end_us: the session's window in microseconds since the epoch (UTC).
--   clock_us: the session time from the first materialised session's start to this session's end (the
--             sum of end_us - start_us over this and every earlier session): a clock that runs only while
--             the market is open.
-- The `splits` view counts its embargo on it (in stages of its own); for analysts, three macros read it
-- (features/splits.py SessionClock is the same in Python; a test holds the two equal):
--   session_time_at(t_us): the clock's reading at t_us.
--   session_time_end(t_us, need_us): the instant (microseconds) at which need_us of session time has passed
--     since t_us (inside a session, from t_us to its end counts; closed hours, weekends and holidays do
--     not); NULL when the materialised calendar ends first.
--   sessions_end(t_us, n): the end of the n-th session that starts at or after t_us (a session under way at
--     t_us is not counted); NULL when the calendar ends first.
CREATE OR REPLACE VIEW session_clock AS
SELECT day, session_no, epoch_us(start_at) AS start_us, epoch_us(end_at) AS end_us,
       sum(epoch_us(end_at) - epoch_us(start_at))
           OVER (ORDER BY session_no ROWS UNBOUNDED PRECEDING)::BIGINT AS clock_us
FROM session_windows;

-- the session clock's reading at t_us: the session time of every session that started at or before t_us,
-- up to t_us
CREATE OR REPLACE MACRO session_time_at(t_us) AS (
    SELECT coalesce(max(clock_us - end_us + least(t_us, end_us)), 0)::BIGINT
    FROM session_clock WHERE start_us <= t_us
);

-- the first session whose clock reaches the target ends (end_us - clock_us) microseconds after the target
-- reading is reached in it; later sessions give later instants, so the least is the first's
CREATE OR REPLACE MACRO session_time_end(t_us, need_us) AS CASE WHEN need_us <= 0 THEN t_us ELSE
    (SELECT min(end_us - clock_us) FROM session_clock WHERE clock_us >= session_time_at(t_us) + need_us)
    + session_time_at(t_us) + need_us END;

CREATE OR REPLACE MACRO sessions_end(t_us, n) AS (
    SELECT min(end_us) FROM session_clock
    WHERE session_no >= (SELECT min(session_no) FROM session_clock WHERE start_us >= t_us) + n - 1
);
