-- Stock and ETF bars that overlap no XNYS session even with extended hours (04:00-20:00 New York):
-- weekends, holidays, overnight, or a year whose calendar is not materialised. Bars outside regular hours
-- but inside extended hours are not failures: with session = 'regular' they are only left out of
-- bar_quality counts and features.
-- Rows of `bars` only: such a bar is a stored stock or ETF row outside every session that wins its
-- (symbol, interval, ts) by `bars`' rule, so the rule is applied to the rows sharing those keys alone.
-- `marketlake check` sets check_files_outside_session to the files (source|interval|symbol|period) with a
-- stock or ETF row outside every session (bar_file_days, the same rule) and check_series_outside_session to
-- their symbol|interval; unset, every file is read.
WITH outside AS (
    SELECT b.symbol, b."interval", b.ts
    FROM lake_bars b
    LEFT JOIN lake_trading_sessions s
        ON s.calendar = 'XNYS' AND s.day = timezone('America/New_York', b.ts)::DATE
    WHERE b.asset_class <> 'crypto'
      AND NOT coalesce(b.ts < s.ext_close_at AND b.available_at > s.ext_open_at, false)
      AND (getvariable('check_files_outside_session') IS NULL
           OR list_contains(getvariable('check_files_outside_session'),
                            concat_ws('|', b.source, b."interval", b.symbol, b.period)))
),
shown AS (
    SELECT l.source, l.symbol, l."interval", l.ts, l.available_at, l.asset_class
    FROM lake_bars l
    SEMI JOIN outside o USING (symbol, "interval", ts)
    WHERE getvariable('check_series_outside_session') IS NULL
       OR list_contains(getvariable('check_series_outside_session'), concat_ws('|', l.symbol, l."interval"))
    QUALIFY row_number() OVER (
        PARTITION BY l.symbol, l."interval", l.ts
        ORDER BY bar_source_rank(l.source), l.source, l.period DESC, l.source_file
    ) = 1
)
SELECT b.source, b.symbol, b."interval", b.ts, b.available_at,
       timezone('America/New_York', b.ts) AS ts_new_york
FROM shown b
LEFT JOIN lake_trading_sessions s
    ON s.calendar = 'XNYS' AND s.day = timezone('America/New_York', b.ts)::DATE
WHERE b.asset_class <> 'crypto'
  AND NOT coalesce(b.ts < s.ext_close_at AND b.available_at > s.ext_open_at, false)
ORDER BY b.symbol, b."interval", b.ts;
