-- The period of each bar of `bars`: a bar belongs to a period only if its whole life lies in it,
-- ts >= start_at and available_at <= end_at. A bar straddling a boundary (e.g. a daily bar whose ts is in
-- train and whose close is known in the embargo or in validation) is in no period: split is NULL, as for
-- bars in an embargo. features/splits.py split_of applies the same rule in Python.
CREATE OR REPLACE VIEW bar_splits AS
SELECT b.symbol, b."interval", b.ts, b.available_at, s.split
FROM bars b
LEFT JOIN splits s
    ON s.start_at < s.end_at AND b.ts >= s.start_at AND b.available_at <= s.end_at;
