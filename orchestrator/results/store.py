"""The results store: one SQLite file (WAL) holding every run, job, figure and event.

Lifecycle: ``ResultsStore(path)`` opens (creating and migrating as needed) and is closed with ``close()`` or
a ``with`` block. One store object belongs to one thread; other processes may open the same file at the
same time (WAL + busy timeout). Every write that belongs together is one transaction: a job's final
status, its measurements and its events commit at once or not at all, so a process killed mid-write
leaves the job exactly as it was before (``running``), and ``--resume`` redoes it.

    with ResultsStore(settings.db_path) as store:
        run_id = store.create_run(spec_name="tiny-sd", spec_digest="...", plan={...})
        store.add_jobs(run_id, [NewJob(device_key="host", component="unet", variant="fp16-none-original",
                                       compute_units="cpu_only")])
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, StoreError
from orchestrator.results import run_lock
from orchestrator.results.schema import migrate


class ForeignDatabaseError(InputError):
    pass


JOB_FINAL = ("ok", "jetsam", "error", "timeout", "skipped")


def new_run_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunRow:
    id: str
    spec_name: str
    spec_digest: str
    spec_path: str | None
    status: str
    started_at: float
    finished_at: float | None
    git_rev: str | None
    environment: dict[str, Any]
    plan: dict[str, Any]
    options: dict[str, Any]


@dataclass(frozen=True)
class DeviceRow:
    key: str
    backend: str
    profile_id: str
    udid: str | None = None
    name: str | None = None
    product_type: str | None = None
    os_version: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewJob:
    device_key: str
    component: str
    variant: str
    compute_units: str
    artifact_id: str | None = None
    predicted_peak_mb: float | None = None
    limit_mb: float | None = None

    @property
    def natural_key(self) -> tuple[str, str, str, str]:
        return (self.device_key, self.component, self.variant, self.compute_units)


@dataclass(frozen=True)
class JobRow:
    id: str
    run_id: str
    device_key: str
    component: str
    variant: str
    compute_units: str
    artifact_id: str | None
    seq: int
    status: str
    attempts: int
    predicted_peak_mb: float | None
    limit_mb: float | None
    started_at: float | None
    finished_at: float | None
    result: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float
    unit: str
    idx: int = 0
    launch: int = 0  # the launch (fresh process) the figure was taken in; idx stays unique per job and metric


@dataclass(frozen=True)
class Event:
    kind: str
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    at: float | None = None


@dataclass(frozen=True)
class EventRow:
    id: int
    run_id: str
    job_id: str | None
    device_key: str | None
    kind: str
    at: float
    message: str
    data: dict[str, Any]


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _refuse_foreign(path: Path) -> None:
    """Refuse an SQLite file that holds another program's tables, looking at it read-only: opening it for
    writing would switch it to WAL (and migrate it) before we could tell it is not ours."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=30.0)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    if tables and "runs" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ForeignDatabaseError(f"{path} is an SQLite database of another program (tables: {shown}); "
                                   "it was left untouched",
                                   fix="point --db (or MLFARM_DB) at an mlfarm results database or a new file")


class ResultsStore:
    def __init__(self, path: Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _refuse_foreign(self.path)
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the results database {self.path}: {exc}",
                             fix="point --db (or MLFARM_DB) at a valid mlfarm database or a new file") from exc
        self.mark_abandoned_runs()

    def mark_abandoned_runs(self) -> list[str]:
        """Runs still ``running`` whose process died without cleanup (its run lock file is left, unheld) become
        ``interrupted``, with an event saying when and how that was found; returns their ids."""
        found = []
        running = [r["id"] for r in self._conn.execute("SELECT id FROM runs WHERE status = 'running'")]
        for run_id in running:
            holder = run_lock.abandoned(self.path, run_id)
            if holder is None:
                continue
            now = self._clock()
            how = (f"its process (pid {holder.get('pid')} on {holder.get('host', '?')}) is gone: the run lock "
                   "was left with no one holding it")
            with self.transaction() as c:
                c.execute("UPDATE runs SET status = 'interrupted' WHERE id = ? AND status = 'running'", (run_id,))
                c.execute("INSERT INTO events (run_id, kind, at, message, data) VALUES (?, 'interrupted', ?, ?, ?)",
                          (run_id, now, f"run found interrupted: {how}",
                           _dumps({"found_at": now, "how": "run lock left unheld", "holder": holder})))
            run_lock.forget(self.path, run_id)
            found.append(run_id)
        return found

    # ---- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # ---- runs -----------------------------------------------------------------------------------
    def create_run(self, *, spec_name: str, spec_digest: str, spec_path: str | None = None,
                   plan: dict[str, Any] | None = None, environment: dict[str, Any] | None = None,
                   options: dict[str, Any] | None = None, git_rev: str | None = None,
                   run_id: str | None = None) -> str:
        now = self._clock()
        run_id = run_id or new_run_id(now)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO runs (id, spec_name, spec_digest, spec_path, status, started_at, git_rev, environment,"
                " plan, options) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (run_id, spec_name, spec_digest, spec_path, now, git_rev, _dumps(environment or {}),
                 _dumps(plan or {}), _dumps(options or {})),
            )
        return run_id

    def set_run_status(self, run_id: str, status: str) -> None:
        finished = self._clock() if status in ("finished", "failed") else None
        with self.transaction() as c:
            c.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, finished, run_id))

    def _run(self, row: sqlite3.Row) -> RunRow:
        return RunRow(row["id"], row["spec_name"], row["spec_digest"], row["spec_path"], row["status"],
                      row["started_at"], row["finished_at"], row["git_rev"], _loads(row["environment"]) or {},
                      _loads(row["plan"]) or {}, _loads(row["options"]) or {})

    def get_run(self, run_id: str) -> RunRow | None:
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def list_runs(self, *, spec_name: str | None = None, limit: int = 50,
                  status: Sequence[str] | None = None) -> list[RunRow]:
        sql, args = "SELECT * FROM runs WHERE 1=1", list[object]()
        if spec_name:
            sql += " AND spec_name = ?"
            args.append(spec_name)
        if status:
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args += list(status)
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        args.append(limit)
        return [self._run(r) for r in self._conn.execute(sql, args)]

    def previous_runs(self, run_id: str, *, limit: int = 1) -> list[RunRow]:
        """Finished runs of the same spec that started before ``run_id``, newest first."""
        run = self.get_run(run_id)
        if run is None:
            return []
        rows = self._conn.execute(
            "SELECT * FROM runs WHERE spec_name = ? AND status = 'finished' AND id != ? "
            "AND (started_at < ? OR (started_at = ? AND id < ?)) ORDER BY started_at DESC, id DESC LIMIT ?",
            (run.spec_name, run_id, run.started_at, run.started_at, run_id, limit))
        return [self._run(r) for r in rows]

    # ---- devices and artifacts --------------------------------------------------------------------
    def add_device(self, run_id: str, device: DeviceRow) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO devices (run_id, key, backend, profile_id, udid, name, product_type,"
                " os_version, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, device.key, device.backend, device.profile_id, device.udid, device.name,
                 device.product_type, device.os_version, _dumps(device.info)),
            )

    def devices(self, run_id: str) -> list[DeviceRow]:
        rows = self._conn.execute("SELECT * FROM devices WHERE run_id = ? ORDER BY key", (run_id,))
        return [DeviceRow(r["key"], r["backend"], r["profile_id"], r["udid"], r["name"], r["product_type"],
                          r["os_version"], _loads(r["info"]) or {}) for r in rows]

    def upsert_artifact(self, artifact_id: str, *, component: str, variant: str, sha256: str,
                        manifest: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO artifacts (id, component, variant, sha256, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET manifest = excluded.manifest, sha256 = excluded.sha256",
                (artifact_id, component, variant, sha256, _dumps(manifest), self._clock()),
            )

    def artifact_manifest(self, artifact_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT manifest FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return _loads(row["manifest"]) if row else None

    # ---- jobs -----------------------------------------------------------------------------------
    def add_jobs(self, run_id: str, jobs: Sequence[NewJob]) -> list[str]:
        """Insert jobs not already in the run (idempotent: a resumed run adds nothing twice)."""
        ids = []
        with self.transaction() as c:
            seq = c.execute("SELECT COALESCE(MAX(seq), -1) FROM jobs WHERE run_id = ?", (run_id,)).fetchone()[0]
            for job in jobs:
                existing = c.execute(
                    "SELECT id FROM jobs WHERE run_id = ? AND device_key = ? AND component = ? AND variant = ?"
                    " AND compute_units = ?", (run_id, *job.natural_key)).fetchone()
                if existing:
                    ids.append(existing[0])
                    continue
                seq += 1
                job_id = f"{run_id}/{seq:04d}"
                c.execute(
                    "INSERT INTO jobs (id, run_id, device_key, component, variant, compute_units, artifact_id, seq,"
                    " status, predicted_peak_mb, limit_mb) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (job_id, run_id, *job.natural_key, job.artifact_id, seq, job.predicted_peak_mb, job.limit_mb),
                )
                ids.append(job_id)
        return ids

    def _job(self, r: sqlite3.Row) -> JobRow:
        return JobRow(r["id"], r["run_id"], r["device_key"], r["component"], r["variant"], r["compute_units"],
                      r["artifact_id"], r["seq"], r["status"], r["attempts"], r["predicted_peak_mb"], r["limit_mb"],
                      r["started_at"], r["finished_at"], _loads(r["result"]), r["error"])

    def jobs(self, run_id: str, *, device_key: str | None = None,
             status: Sequence[str] | None = None) -> list[JobRow]:
        sql, args = "SELECT * FROM jobs WHERE run_id = ?", [run_id]
        if device_key is not None:
            sql += " AND device_key = ?"
            args.append(device_key)
        if status:
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args += list(status)
        return [self._job(r) for r in self._conn.execute(sql + " ORDER BY seq", args)]

    def get_job(self, job_id: str) -> JobRow | None:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def start_job(self, job_id: str) -> int:
        """Mark a job running and count the attempt; returns the attempt number (1-based)."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? WHERE id = ?",
                      (self._clock(), job_id))
            return int(c.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])

    def finish_job(self, job_id: str, status: str, *, result: dict[str, Any] | None = None,
                   error: str | None = None, measurements: Sequence[Measurement] = (),
                   events: Sequence[Event] = ()) -> None:
        """Record a job's outcome, its figures and its events in one transaction."""
        if status not in (*JOB_FINAL, "pending"):
            raise ValueError(f"not a final job status: {status}")
        now = self._clock()
        with self.transaction() as c:
            row = c.execute("SELECT run_id, device_key FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise StoreError(f"no job {job_id!r} in {self.path}")
            c.execute("DELETE FROM measurements WHERE job_id = ?", (job_id,))
            c.executemany("INSERT INTO measurements (job_id, metric, idx, value, unit, launch)"
                          " VALUES (?, ?, ?, ?, ?, ?)",
                          [(job_id, m.metric, m.idx, float(m.value), m.unit, m.launch) for m in measurements])
            for e in events:
                c.execute("INSERT INTO events (run_id, job_id, device_key, kind, at, message, data)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (row["run_id"], job_id, row["device_key"], e.kind, e.at or now, e.message, _dumps(e.data)))
            c.execute("UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ? WHERE id = ?",
                      (status, now if status != "pending" else None, _dumps(result) if result is not None else None,
                       error, job_id))

    def requeue_interrupted(self, run_id: str) -> int:
        """Jobs left ``running`` by a dead orchestrator go back to ``pending``; returns how many."""
        with self.transaction() as c:
            return c.execute("UPDATE jobs SET status = 'pending' WHERE run_id = ? AND status = 'running'",
                             (run_id,)).rowcount

    # ---- figures and events -----------------------------------------------------------------------
    def measurements(self, job_id: str) -> list[Measurement]:
        rows = self._conn.execute("SELECT metric, idx, value, unit, launch FROM measurements WHERE job_id = ?"
                                  " ORDER BY metric, idx", (job_id,))
        return [Measurement(r["metric"], r["value"], r["unit"], r["idx"], r["launch"]) for r in rows]

    def launch_samples(self, job_id: str, metric: str) -> list[list[float]]:
        """One list of values per launch (in launch order, values in idx order): the unit of regression statistics."""
        rows = self._conn.execute("SELECT launch, value FROM measurements WHERE job_id = ? AND metric = ?"
                                  " ORDER BY launch, idx", (job_id, metric))
        launches: dict[int, list[float]] = {}
        for r in rows:
            launches.setdefault(int(r["launch"]), []).append(float(r["value"]))
        return [launches[k] for k in sorted(launches)]

    def run_measurements(self, run_id: str) -> list[tuple[JobRow, list[Measurement]]]:
        return [(j, self.measurements(j.id)) for j in self.jobs(run_id)]

    def add_event(self, run_id: str, event: Event, *, job_id: str | None = None,
                  device_key: str | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO events (run_id, job_id, device_key, kind, at, message, data)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (run_id, job_id, device_key, event.kind, event.at or self._clock(), event.message,
                       _dumps(event.data)))

    def events(self, run_id: str, *, kind: str | None = None, job_id: str | None = None) -> list[EventRow]:
        sql, args = "SELECT * FROM events WHERE run_id = ?", [run_id]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if job_id:
            sql += " AND job_id = ?"
            args.append(job_id)
        return [EventRow(r["id"], r["run_id"], r["job_id"], r["device_key"], r["kind"], r["at"], r["message"],
                         _loads(r["data"]) or {}) for r in self._conn.execute(sql + " ORDER BY id", args)]
