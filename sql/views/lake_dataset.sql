-- lake_dataset(name): the absolute folder of the lake's dataset `name` (.../datasets/<name>), where a view
-- reads it unless the session variable dataset_<name> says otherwise (lake.connect sets it: a dataset
-- without files reads a private empty lake; the feature store points it at a chunk's files).
-- Not a view file (no NNN_ prefix): lake.connect.register_views creates this macro before the views, with
-- DATASETS_FOLDER (below) the lake's datasets folder as a DuckDB string literal (DuckDB takes no parameter in a macro's
-- body). It is stored in the shell's catalog file with the views, so that catalog.duckdb reads its own lake
-- from any working folder, never a folder relative to where it is opened; moving the lake needs a new
-- catalog (`make shell` writes it each time).
CREATE OR REPLACE MACRO lake_dataset(name) AS {datasets_folder} || '/' || name;
