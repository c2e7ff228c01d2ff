"""The results store: schema versioning, transactional job writes, and surviving SIGKILL mid-write."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import StoreError
from orchestrator.results import Event, Measurement, NewJob, ResultsStore
from orchestrator.results.schema import LATEST


def test_new_database_is_at_latest_schema_in_wal_mode(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        assert store.schema_version() == LATEST
    conn = sqlite3.connect(tmp_path / "r.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db")
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this mlfarm"):
        ResultsStore(tmp_path / "r.db")


def test_not_a_database_is_a_clear_error(tmp_path, mlfarm):
    bad = tmp_path / "r.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    result = mlfarm("--db", bad, "runs")
    assert result.exit_code == 3 and "cannot open the results database" in result.err
    assert bad.read_bytes().startswith(b"this is not sqlite")  # nothing overwritten


def test_job_lifecycle_and_idempotent_add(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        run = store.create_run(spec_name="s", spec_digest="d")
        jobs = [NewJob("host", "unet", "fp16-none-original", "cpu_only"),
                NewJob("host", "vae_decoder", "fp16-none-original", "cpu_only")]
        ids = store.add_jobs(run, jobs)
        assert store.add_jobs(run, jobs) == ids  # resume adds nothing twice
        assert [j.status for j in store.jobs(run)] == ["pending", "pending"]
        assert store.start_job(ids[0]) == 1
        store.finish_job(ids[0], "jetsam", events=[Event("jetsam", "per-process-limit", {"emulated": True})],
                         measurements=[Measurement("peak_footprint_mb", 2100.0, "MB")])
        job = store.get_job(ids[0])
        assert job.status == "jetsam" and job.attempts == 1
        assert store.events(run, kind="jetsam")[0].data == {"emulated": True}
        store.start_job(ids[1])
        assert store.requeue_interrupted(run) == 1
        assert store.get_job(ids[1]).status == "pending"


def test_failed_transaction_leaves_nothing(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        run = store.create_run(spec_name="s", spec_digest="d")
        (job,) = store.add_jobs(run, [NewJob("host", "unet", "v", "cpu_only")])
        store.start_job(job)
        bad = [Measurement("latency_ms", 1.0, "ms", 0), Measurement("latency_ms", 2.0, "ms", 0)]  # duplicate key
        with pytest.raises(sqlite3.IntegrityError):
            store.finish_job(job, "ok", measurements=bad, events=[Event("x")])
        assert store.get_job(job).status == "running"
        assert store.measurements(job) == [] and store.events(run) == []


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from orchestrator.results import Event, Measurement, NewJob, ResultsStore
    store = ResultsStore(Path(sys.argv[1]))
    run = store.create_run(spec_name="kill", spec_digest="d", run_id="run-kill")
    n = 0
    while True:
        (job,) = store.add_jobs(run, [NewJob("host", "unet", f"v{n}", "cpu_only")])
        store.start_job(job)
        store.finish_job(job, "ok", result={"n": n},
                         measurements=[Measurement("latency_ms", float(i), "ms", i) for i in range(300)],
                         events=[Event("note", f"job {n}")])
        n += 1
        if n == 20:  # 20 committed, and it goes on writing: killed in the middle of the stream
            print("ready", flush=True)
""")


def test_store_survives_sigkill_mid_write(tmp_path):
    db = tmp_path / "r.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    assert ready and proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    with ResultsStore(db) as store:
        assert store.integrity_ok()
        jobs = store.jobs("run-kill")
        assert len(jobs) >= 20 and sum(j.status == "ok" for j in jobs) >= 20  # every commit before "ready" kept
        for job in jobs:
            ms = store.measurements(job.id)
            ev = store.events("run-kill", job_id=job.id)
            if job.status == "ok":
                assert len(ms) == 300 and len(ev) == 1 and job.result == {"n": int(job.variant[1:])}
            else:  # killed before its final transaction committed: nothing half-written
                assert job.status in ("pending", "running") and ms == [] and ev == []
        assert sum(j.status != "ok" for j in jobs) <= 1
        store.requeue_interrupted("run-kill")  # and the file still takes writes
        assert all(j.status in ("ok", "pending") for j in store.jobs("run-kill"))


def test_a_v1_database_gains_launches_and_keeps_its_figures(tmp_path):
    from orchestrator.results.schema import SCHEMA_V1

    conn = sqlite3.connect(tmp_path / "r.db")
    conn.executescript(SCHEMA_V1 + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO runs (id, spec_name, spec_digest, status, started_at)"
                 " VALUES ('r1', 's', 'd', 'finished', 0)")
    conn.execute("INSERT INTO jobs (id, run_id, device_key, component, variant, compute_units, seq, status)"
                 " VALUES ('j1', 'r1', 'host', 'unet', 'v', 'cpu_only', 0, 'ok')")
    conn.executemany("INSERT INTO measurements (job_id, metric, idx, value, unit)"
                     " VALUES ('j1', 'latency_ms', ?, ?, 'ms')",
                     [(0, 5.0), (1, 7.0)])
    conn.commit()
    conn.close()
    with ResultsStore(tmp_path / "r.db") as store:
        assert store.schema_version() == LATEST
        assert store.launch_samples("j1", "latency_ms") == [[5.0, 7.0]]  # v1 figures are one launch


def test_figures_are_grouped_by_launch_in_order(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        run = store.create_run(spec_name="s", spec_digest="d")
        (job,) = store.add_jobs(run, [NewJob("host", "unet", "v", "cpu_only")])
        store.start_job(job)
        values = [3.0, 1.0, 9.0, 8.0, 2.0]
        rows = [Measurement("latency_ms", v, "ms", idx=i, launch=i // 2) for i, v in enumerate(values)]
        store.finish_job(job, "ok", measurements=[*reversed(rows), Measurement("peak_footprint_mb", 10.0, "MB")])
        assert store.launch_samples(job, "latency_ms") == [[3.0, 1.0], [9.0, 8.0], [2.0]]
        assert [m.launch for m in store.measurements(job) if m.metric == "latency_ms"] == [0, 0, 1, 1, 2]
        assert store.launch_samples(job, "missing") == []
