"""Runs on one machine are isolated: two `mlfarm run` at once (real processes, one working folder, one DB) both
keep every job; a second `--resume` of a run in progress is refused; host-CPU launches of two processes never
overlap (the machine-wide lock)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.results import ResultsStore
from orchestrator.runner.host_lock import HostCpuLock
from tests.results.test_run_lock import hold


def _run(spec: Path, cwd: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(spec), "--devices", "host",
                             "--json", *extra], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_two_concurrent_runs_both_keep_all_their_jobs(run_settings, tmp_path):
    spec, _ = run_settings
    env = {**os.environ, "MLFARM_DB": str(tmp_path / "results.db")}
    procs = [_run(spec, tmp_path, env) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    run_ids = [json.loads(o[0])["run_id"] for o in outs]
    assert len(set(run_ids)) == 2
    with ResultsStore(tmp_path / "results.db") as store:
        for run_id in run_ids:
            jobs = store.jobs(run_id)
            assert len(jobs) == 3 and {j.status for j in jobs} == {"ok"}, [(j.status, j.error) for j in jobs]
            assert store.get_run(run_id).status == "finished"
    assert not (tmp_path / ".mlfarm" / "runs").exists() or not any((tmp_path / ".mlfarm" / "runs").iterdir())


def test_a_second_resume_of_a_run_in_progress_is_refused(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    db = tmp_path / "results.db"
    from orchestrator.spec import load_spec

    with ResultsStore(db) as store:
        run_id = store.create_run(spec_name="tiny-run", spec_digest=load_spec(spec).digest)
    holder = hold(db, run_id)  # another process is running it
    try:
        result = mlfarm("run", spec, "--resume", run_id)
        assert result.exit_code == 2 and f"run {run_id} is in progress (pid {holder.pid}" in result.err
        assert "fix:" in result.err and "Traceback" not in result.err
    finally:
        holder.kill()
        holder.wait(30)


LAUNCHES = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from orchestrator.runner.host_lock import HostCpuLock
    async def main():
        for _ in range(5):
            async with HostCpuLock(Path(sys.argv[1])):
                start = time.time_ns()
                await asyncio.sleep(0.02)
                print(start, time.time_ns(), flush=True)
    asyncio.run(main())
""")


def test_host_cpu_launches_of_two_processes_never_overlap(tmp_path):
    lock = tmp_path / "host-cpu.lock"
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHES, str(lock)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    spans = sorted(tuple(map(int, line.split())) for p in procs for line in p.communicate(timeout=120)[0].split("\n")
                   if line)
    assert len(spans) == 10
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_host_cpu_lock_waits_for_another_holder_and_reports_it(tmp_path):
    lock = tmp_path / "host-cpu.lock"
    other = HostCpuLock(lock)
    assert other.try_acquire()
    assert HostCpuLock(lock).try_acquire() is False

    async def main() -> float:
        waiter = HostCpuLock(lock)
        task = asyncio.create_task(waiter.__aenter__())
        await asyncio.sleep(0.1)
        assert not task.done()  # still waiting for the holder
        other.release()
        await asyncio.wait_for(task, 10)
        waiter.release()
        return waiter.waited_s

    assert asyncio.run(main()) > 0.0


def test_the_runner_lane_waits_for_another_process_but_real_devices_do_not(tmp_path, monkeypatch):
    from orchestrator.runner.engine import Runner

    monkeypatch.setenv("MLFARM_HOST_CPU_LOCK", str(tmp_path / "cpu.lock"))
    holder = HostCpuLock()  # another mlfarm process measuring on this CPU
    assert holder.try_acquire()
    lane = Runner(store=None, run_id="r", references=lambda c: None).lane  # type: ignore[arg-type]

    async def main() -> None:
        async with lane.measuring("usb-job", shares_host_cpu=False) as record:  # a real device never waits
            assert record.in_lane is False
        entered = asyncio.Event()

        async def host_launch() -> bool:
            async with lane.measuring("host-job", shares_host_cpu=True) as record:
                entered.set()
                return record.shared

        task = asyncio.create_task(host_launch())
        for _ in range(10):  # the lock is held: however long the loop runs, the launch cannot start
            await asyncio.sleep(0.02)
        assert not entered.is_set()
        holder.release()
        assert await asyncio.wait_for(task, 30) is False  # it waited, so it did not share the CPU

    asyncio.run(main())
