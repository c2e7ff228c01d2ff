"""A run belongs to one process: a second holder of its lock is refused, and a run whose process was killed is
found and marked interrupted (when and how) by the next store open. Real processes hold the locks here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import EXIT_INPUT
from orchestrator.results import ResultsStore
from orchestrator.results.run_lock import RunInProgressError, RunLock, lock_path

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from orchestrator.results.run_lock import RunLock
    lock = RunLock(Path(sys.argv[1]), sys.argv[2])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()          # hold until the test closes stdin (a clean end) or kills us
    lock.release()
""")


def hold(db: Path, run_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), run_id], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_with_exit_2_and_the_holder_named(tmp_path):
    db = tmp_path / "r.db"
    proc = hold(db, "run-a")
    try:
        with pytest.raises(RunInProgressError) as info:
            RunLock(db, "run-a").acquire()
        assert info.value.exit_code == EXIT_INPUT and f"pid {proc.pid}" in info.value.message
        assert info.value.fix
        with RunLock(db, "run-b"):  # another run is free
            pass
    finally:
        proc.kill()
        proc.wait(30)


def test_a_clean_end_removes_the_lock_and_the_run_stays_as_it_was(tmp_path):
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        run_id = store.create_run(spec_name="s", spec_digest="d")
    proc = hold(db, run_id)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)
    assert not lock_path(db, run_id).exists()
    with ResultsStore(db) as store:
        assert store.get_run(run_id).status == "running"  # no lock left: nothing says it died
        assert store.events(run_id) == []


def test_a_killed_run_is_marked_interrupted_by_the_next_store_open(tmp_path):
    db = tmp_path / "r.db"
    with ResultsStore(db, clock=lambda: 1000.0) as store:
        run_id = store.create_run(spec_name="s", spec_digest="d")
        live_id = store.create_run(spec_name="s", spec_digest="d", run_id="still-running")
    dead = hold(db, run_id)
    live = hold(db, live_id)
    try:
        with ResultsStore(db) as store:
            assert store.get_run(run_id).status == "running"  # its process is alive
        dead.kill()
        dead.wait(30)
        with ResultsStore(db, clock=lambda: 2000.0) as store:
            run = store.get_run(run_id)
            (event,) = store.events(run_id, kind="interrupted")
            assert run.status == "interrupted" and store.get_run(live_id).status == "running"
        assert event.at == 2000.0 and event.data["found_at"] == 2000.0
        assert event.data["holder"]["pid"] == dead.pid and "gone" in event.message
        assert not lock_path(db, run_id).exists()
        with ResultsStore(db) as store:  # found once, not again
            assert len(store.events(run_id, kind="interrupted")) == 1
    finally:
        live.kill()
        live.wait(30)
