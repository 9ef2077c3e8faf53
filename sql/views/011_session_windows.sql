-- The XNYS sessions as the `session` setting (lake_settings.session) sees them: start_at/end_at are
-- regular hours (09:30-16:00 New York, 13:00 on an early close) with session = 'regular', extended hours
-- (04:00-20:00, 17:00 on an early close) with session = 'extended'. session_no numbers the sessions in
-- order, so that consecutive trading days differ by one whatever weekends and holidays lie between.
-- ext_open_at/ext_close_at: the extended hours whatever the setting.
-- Every materialised session is here (whole years), not only the bar range: bar_quality and features
-- join on it.
CREATE OR REPLACE VIEW session_windows AS
SELECT s.calendar, s.day,
       CASE WHEN st.session = 'extended' THEN s.ext_open_at ELSE s.open_at END AS start_at,
       CASE WHEN st.session = 'extended' THEN s.ext_close_at ELSE s.close_at END AS end_at,
       s.open_at, s.close_at, s.is_early_close, s.ext_open_at, s.ext_close_at,
       row_number() OVER (PARTITION BY s.calendar ORDER BY s.day) AS session_no
FROM lake_trading_sessions s, lake_settings st
WHERE s.calendar = 'XNYS';
