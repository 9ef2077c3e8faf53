-- The Supabase mirror of the lake's `runs` (rl/mirror.py writes it with the service role key).
-- Apply once in the project's SQL editor (or psql); safe to re-run.
-- Row-level security is on and no policy admits anon or authenticated: with the anon (public) key nobody
-- reads or writes a row. The service role writes; the insert is idempotent on run_id (the client upserts
-- with `on conflict (run_id) do nothing`).
CREATE TABLE IF NOT EXISTS public.training_runs (
    run_id        text PRIMARY KEY CHECK (run_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    kind          text NOT NULL CHECK (kind IN ('train', 'evaluate')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    status        text NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
    config        jsonb NOT NULL,
    data_snapshot text NOT NULL,
    metrics       jsonb,
    code_version  text,
    run_dir       text,
    parent_run_id text,
    data_files    jsonb,
    received_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE public.training_runs ENABLE ROW LEVEL SECURITY;

-- Supabase grants every new public table to anon and authenticated by default: take that back.
REVOKE ALL ON TABLE public.training_runs FROM PUBLIC;
REVOKE ALL ON TABLE public.training_runs FROM anon, authenticated;
GRANT SELECT, INSERT ON TABLE public.training_runs TO service_role;

DROP POLICY IF EXISTS training_runs_service_role ON public.training_runs;
CREATE POLICY training_runs_service_role ON public.training_runs
    FOR ALL TO service_role USING (true) WITH CHECK (true);
