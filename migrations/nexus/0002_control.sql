-- At most one active (queued or running) backfill job per source scope (seed "Backfill Job
-- Model", rule 1), enforced by the database as well as by the control plane.
CREATE UNIQUE INDEX idx_import_jobs_one_active ON import_jobs(source)
    WHERE status IN ('queued', 'running');
