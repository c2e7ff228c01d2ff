"""`mlfarm run` end to end on this machine: every figure stored, jetsam as a result, and a SIGKILLed run resumed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from orchestrator.results import ResultsStore

pytestmark = pytest.mark.slow

FIGURES = {"load_cold_ms", "load_warm_ms", "first_predict_ms", "latency_ms", "peak_footprint_mb",
           "raw_peak_footprint_mb", "baseline_footprint_mb", "predicted_peak_mb", "limit_mb", "psnr_db"}


def test_run_on_host_stores_every_figure(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    result = mlfarm("run", spec, "--devices", "host", "--json")
    assert result.exit_code == 0, result.err
    run_id = result.json()["run_id"]
    assert result.json()["jobs"] == {"ok": 3}
    with ResultsStore(tmp_path / "results.db") as store:
        run = store.get_run(run_id)
        assert run.status == "finished"
        assert run.plan["devices"][0]["key"] == "host"
        assert run.options["spec"]["name"] == "tiny-run"
        assert {d.key for d in store.devices(run_id)} == {"host"}
        for job in store.jobs(run_id):
            rows = store.measurements(job.id)
            assert {m.metric for m in rows} >= FIGURES, job.component
            latencies = [m for m in rows if m.metric == "latency_ms"]
            assert [m.idx for m in latencies] == list(range(5)) and all(m.value > 0 for m in latencies)
            by = {m.metric: m.value for m in rows if m.metric != "latency_ms"}
            assert by["psnr_db"] > 30 and by["peak_footprint_mb"] > 0
            assert by["predicted_peak_mb"] == job.predicted_peak_mb
            assert job.result["harness"]["runtime"] == "mil-executor"
    runs = mlfarm("runs", "--json").json()
    assert runs[0]["id"] == run_id and runs[0]["jobs"] == {"ok": 3}


def test_limit_below_the_model_is_a_jetsam_and_the_run_goes_on(run_settings, mlfarm, tmp_path):
    spec, profiles = run_settings
    result = mlfarm("--profiles", profiles, "run", spec, "--devices", "host:tiny-phone,host", "--all-variants",
                    "--json")
    assert result.exit_code == 0, result.err
    run_id = result.json()["run_id"]
    with ResultsStore(tmp_path / "results.db") as store:
        tiny = store.jobs(run_id, device_key="host:tiny-phone")
        normal = store.jobs(run_id, device_key="host")
        assert len(tiny) == len(normal) == 6  # 3 components x 2 variants each, memory-rejected ones included
        assert {j.status for j in tiny} == {"jetsam"} and all(j.attempts == 1 for j in tiny)
        assert {j.status for j in normal} == {"ok"}
        events = store.events(run_id, kind="jetsam")
        assert len(events) == 6
        for e in events:
            assert e.data["reason"] == "per-process-limit" and e.data["emulated"] is True
            assert e.data["footprint_mb"] > e.data["limit_mb"] == 30
        assert not store.events(run_id, kind="transport-retry")
    report = mlfarm("report", run_id, "--format", "json", "--out", tmp_path / "rep", "--json")
    assert report.exit_code == 1  # the jetsams fail the memory gate
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    by_device = {key: [v for v in doc["verdicts"] if v["device_key"] == key and v["job_id"]]
                 for key in ("host:tiny-phone", "host")}
    assert len(by_device["host:tiny-phone"]) == len(by_device["host"]) == 6
    for v in by_device["host:tiny-phone"]:
        memory = next(g for g in v["gates"] if g["gate"] == "memory")
        assert v["job_status"] == "jetsam" and memory["status"] == "fail", v
    assert all(v["job_status"] == "ok" for v in by_device["host"])


def _wait_for(predicate, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _done_jobs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        return conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'ok'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    db = tmp_path / "results.db"
    env = {**os.environ, "MLFARM_DB": str(db)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(spec), "--devices", "host",
                             "--json"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: _done_jobs(db) >= 1, 300)
    _wait_for(lambda: any("orchestrator.harness" in " ".join(c.cmdline())
                          for c in psutil.Process(proc.pid).children(recursive=True)), 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with ResultsStore(db) as store:
        (run,) = store.list_runs()
        before = {j.id: j.status for j in store.jobs(run.id)}
    # the killed run left its lock unheld: opening the store marked it interrupted (issue 13)
    assert run.status == "interrupted" and "running" in before.values() and "ok" in before.values()
    _wait_for(lambda: not [p for p in psutil.process_iter(["cmdline"])
                           if "orchestrator.harness" in " ".join(p.info["cmdline"] or []) and str(tmp_path) in
                           " ".join(p.info["cmdline"] or [])], 30)  # the orphaned harness died with its parent

    result = mlfarm("run", spec, "--resume", run.id, "--json")
    assert result.exit_code == 0, result.err
    with ResultsStore(db) as store:
        jobs = store.jobs(run.id)
        assert [j.id for j in jobs] == list(before)  # none lost, none added
        assert {j.status for j in jobs} == {"ok"}
        assert store.get_run(run.id).status == "finished"
        for j in jobs:
            latencies = [m for m in store.measurements(j.id) if m.metric == "latency_ms"]
            assert len(latencies) == 5  # no duplicated figures
            if before[j.id] == "ok":
                assert j.attempts == 1  # finished jobs were not redone


def test_resume_refuses_a_changed_spec(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    with ResultsStore(tmp_path / "results.db") as store:
        run_id = store.create_run(spec_name="tiny-run", spec_digest="not-this-one")
    result = mlfarm("run", spec, "--resume", run_id)
    assert result.exit_code == 2 and "changed since run" in result.err
