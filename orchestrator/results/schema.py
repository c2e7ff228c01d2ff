"""Results database schema, versioned with ``PRAGMA user_version``.

MIGRATIONS[i] takes a database from version i to i+1. ``migrate`` applies what is missing, each step in
its own transaction, so a database is always at exactly one version. Add a migration by appending to the
list; never edit a shipped one.

Tables (v1):
    runs          one execution of a spec over a device pool (status: running|finished|interrupted|failed)
    devices       the devices of a run, with the profile they were matched to
    artifacts     built artifacts (manifest as JSON), shared across runs
    jobs          one (device, component, variant, compute units) measurement; unique per run
    measurements  every figure of a finished job: one row per value (latency per iteration, peaks, PSNR, ...)
    events        jetsam, crash, invalid result, retry, disconnect, thermal wait, ...

v2: ``measurements.launch``: the launch (fresh process, model loaded again) a figure was taken in, 0-based.
Launches are the statistical unit: figures of one launch share its state (clock, contention, thermal).
"""

from __future__ import annotations

import sqlite3

SCHEMA_V1 = """
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    spec_name    TEXT NOT NULL,
    spec_digest  TEXT NOT NULL,
    spec_path    TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
    started_at   REAL NOT NULL,
    finished_at  REAL,
    git_rev      TEXT,
    environment  TEXT NOT NULL DEFAULT '{}',
    plan         TEXT NOT NULL DEFAULT '{}',
    options      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_by_spec ON runs (spec_name, started_at);

CREATE TABLE devices (
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    backend      TEXT NOT NULL,
    profile_id   TEXT NOT NULL,
    udid         TEXT,
    name         TEXT,
    product_type TEXT,
    os_version   TEXT,
    info         TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, key)
);

CREATE TABLE artifacts (
    id           TEXT PRIMARY KEY,
    component    TEXT NOT NULL,
    variant      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    created_at   REAL NOT NULL
);

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    device_key    TEXT NOT NULL,
    component     TEXT NOT NULL,
    variant       TEXT NOT NULL,
    compute_units TEXT NOT NULL,
    artifact_id   TEXT,
    seq           INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'running', 'ok', 'jetsam', 'error', 'timeout', 'skipped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    predicted_peak_mb REAL,
    limit_mb      REAL,
    started_at    REAL,
    finished_at   REAL,
    result        TEXT,
    error         TEXT,
    UNIQUE (run_id, device_key, component, variant, compute_units)
);
CREATE INDEX jobs_by_run ON jobs (run_id, device_key, seq);

CREATE TABLE measurements (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    metric  TEXT NOT NULL,
    idx     INTEGER NOT NULL DEFAULT 0,
    value   REAL NOT NULL,
    unit    TEXT NOT NULL,
    PRIMARY KEY (job_id, metric, idx)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id      TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    device_key  TEXT,
    kind        TEXT NOT NULL,
    at          REAL NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_run ON events (run_id, kind);
"""

MIGRATION_V2 = """
ALTER TABLE measurements ADD COLUMN launch INTEGER NOT NULL DEFAULT 0;
"""

MIGRATIONS: list[str] = [SCHEMA_V1, MIGRATION_V2]
LATEST = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the latest schema; return the version it was at before."""
    before = user_version(conn)
    if before > LATEST:
        from orchestrator.errors import StoreError

        raise StoreError(f"the results database has schema v{before}, newer than this mlfarm (v{LATEST})",
                         fix="upgrade mlfarm, or point --db at another file")
    for version in range(before, LATEST):
        # One transaction per step: the DDL and the version bump commit together or not at all.
        try:
            bump = f"PRAGMA user_version = {version + 1};"
            conn.executescript("BEGIN IMMEDIATE;" + MIGRATIONS[version] + bump + "COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return before
