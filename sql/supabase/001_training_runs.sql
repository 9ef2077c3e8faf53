-- The Supabase mirror of the lake's `runs` (rl/mirror.py writes it with the service role key).
-- Apply once in the project's SQL editor (or psql); safe to re-run (and to re-run over an older version of
-- this file: it adds the UPDATE grant, the trigger and training_runs_schema_version below).
-- Row-level security is on and no policy admits anon or authenticated: with the anon (public) key nobody
-- reads or writes a row. The service role writes: the client upserts on run_id with
-- `Prefer: resolution=merge-duplicates`, so a later row of a run updates the one here, as the trigger
-- below allows (only once training_runs_schema_version says the trigger is there).
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
GRANT SELECT, INSERT, UPDATE ON TABLE public.training_runs TO service_role;

DROP POLICY IF EXISTS training_runs_service_role ON public.training_runs;
CREATE POLICY training_runs_service_role ON public.training_runs
    FOR ALL TO service_role USING (true) WITH CHECK (true);

-- Which row of a run the table keeps, whoever writes it (every writer, every client):
--   * a row of another run under the same run_id (another started_at or kind: a run id collision, two
--     machines) is refused with unique_violation (23505, HTTP 409), naming both: nothing is overwritten;
--   * a weaker record never replaces a stronger one: running < interrupted < finished = failed (a killed
--     run's repair, `interrupted`, made in a copy of the lake, never replaces the `finished` row of the
--     run that went on elsewhere);
--   * of two records as strong, the one with the later finished_at stays (a row without one is older);
--     the same finished_at: the one sent later (a resend of the same row changes nothing).
-- A row not taken leaves the stored one as it was; the client compares what it gets back and says so.
CREATE OR REPLACE FUNCTION public.training_runs_status_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE SET search_path = ''
    AS $$ SELECT CASE status WHEN 'running' THEN 0 WHEN 'interrupted' THEN 1 ELSE 2 END $$;

CREATE OR REPLACE FUNCTION public.training_runs_keep_stronger() RETURNS trigger
    LANGUAGE plpgsql SET search_path = ''
    AS $$
DECLARE
    old_rank integer := public.training_runs_status_rank(OLD.status);
    new_rank integer := public.training_runs_status_rank(NEW.status);
BEGIN
    IF NEW.run_id = OLD.run_id AND (NEW.started_at <> OLD.started_at OR NEW.kind <> OLD.kind) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'unique_violation',
            MESSAGE = format(
                'run id collision: %s already holds a %s run started at %s, not this %s run started at %s',
                OLD.run_id, OLD.kind, OLD.started_at, NEW.kind, NEW.started_at),
            HINT = 'the stored row is kept; give one of the runs another id';
    END IF;
    IF new_rank < old_rank
        OR (new_rank = old_rank AND OLD.finished_at IS NOT NULL
            AND (NEW.finished_at IS NULL OR NEW.finished_at < OLD.finished_at)) THEN
        RETURN OLD;  -- the stored row stays as it is
    END IF;
    NEW.received_at := now();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS training_runs_keep_stronger ON public.training_runs;
CREATE TRIGGER training_runs_keep_stronger BEFORE UPDATE ON public.training_runs
    FOR EACH ROW EXECUTE FUNCTION public.training_runs_keep_stronger();

-- The client asks this before it lets a later row of a run update the stored one (merge-duplicates): 2
-- while the trigger above is in place. A table without it (set up by an older version of this file) is only
-- inserted into (ignore-duplicates: the first row of a run stays), with a warning to re-apply this file.
CREATE OR REPLACE FUNCTION public.training_runs_schema_version() RETURNS TABLE (version integer)
    LANGUAGE sql STABLE SET search_path = ''
    AS $$
SELECT CASE WHEN EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger
    WHERE tgname = 'training_runs_keep_stronger'
        AND tgrelid = 'public.training_runs'::pg_catalog.regclass
        AND tgenabled <> 'D'
) THEN 2 ELSE 0 END
$$;

-- No function of this file is for the anon or authenticated roles (PostgREST exposes every function of the
-- public schema as /rpc/<name>): PostgreSQL grants EXECUTE to PUBLIC, Supabase to anon and authenticated.
-- The service role calls the schema check and, through the trigger, the rank (a trigger function itself
-- needs no EXECUTE to fire).
REVOKE ALL ON FUNCTION public.training_runs_status_rank(text) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION public.training_runs_keep_stronger() FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION public.training_runs_schema_version() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.training_runs_status_rank(text) TO service_role;
GRANT EXECUTE ON FUNCTION public.training_runs_schema_version() TO service_role;
