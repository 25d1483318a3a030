-- nexus.db: the runtime database of the daemon: backfill jobs and the audit trail of runs.
-- Times are epoch milliseconds.

-- Backfill jobs (seed "Backfill Job Model"):
-- queued -> running -> completed | failed | cancelled.
CREATE TABLE import_jobs (
    id            TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    mode          TEXT NOT NULL DEFAULT 'backfill',
    status        TEXT NOT NULL
                  CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    requested_at  INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER,
    error_code    TEXT,
    error_message TEXT,
    stats_json    TEXT
);
CREATE INDEX idx_import_jobs_source_status ON import_jobs(source, status);
CREATE INDEX idx_import_jobs_requested ON import_jobs(requested_at DESC);

-- Audit trail: one row per worker run (tail or backfill).
CREATE TABLE import_runs (
    run_id     TEXT PRIMARY KEY,
    job_id     TEXT REFERENCES import_jobs(id),
    source     TEXT NOT NULL,
    mode       TEXT NOT NULL,
    worker_pid INTEGER,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    outcome    TEXT,
    error_code TEXT,
    stats_json TEXT
);
CREATE INDEX idx_import_runs_job ON import_runs(job_id);
CREATE INDEX idx_import_runs_started ON import_runs(started_at DESC);
