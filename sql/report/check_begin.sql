-- Before `marketlake check` (features/check.py) reads symbol_quality and the checks: the views they read
-- more than once are computed once, into temporary tables, and shadowed by temporary views of the same
-- name (DuckDB resolves temp before main). The same rows, computed by the same view definitions.
CREATE OR REPLACE TEMP TABLE check_bars AS SELECT * FROM main.bars;
CREATE OR REPLACE TEMP VIEW bars AS SELECT * FROM check_bars;
CREATE OR REPLACE TEMP TABLE check_bar_sessions AS SELECT * FROM main.bar_sessions;
CREATE OR REPLACE TEMP VIEW bar_sessions AS SELECT * FROM check_bar_sessions;
CREATE OR REPLACE TEMP TABLE check_bar_file_order AS SELECT * FROM main.bar_file_order;
CREATE OR REPLACE TEMP VIEW bar_file_order AS SELECT * FROM check_bar_file_order;
