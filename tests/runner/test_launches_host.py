"""Launches and the host-CPU lane end to end: real harness processes on ``host`` and ``host:iphone-12``."""

from __future__ import annotations

import itertools

import pytest
import yaml

from orchestrator.results import ResultsStore

pytestmark = pytest.mark.slow


def test_two_host_devices_measure_in_launches_one_at_a_time(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    data = yaml.safe_load(spec.read_text())
    data["measure"] = {**data["measure"], "launches": 2, "iterations": 3}
    two = tmp_path / "two-launches.yaml"
    two.write_text(yaml.safe_dump(data))
    result = mlfarm("run", two, "--devices", "host,host:iphone-12", "--json")
    assert result.exit_code == 0, result.err
    run_id = result.json()["run_id"]
    spans = []
    with ResultsStore(tmp_path / "results.db") as store:
        jobs = store.jobs(run_id)
        assert {j.device_key for j in jobs} == {"host", "host:iphone-12"} and {j.status for j in jobs} == {"ok"}
        for job in jobs:
            per_launch = store.launch_samples(job.id, "latency_ms")
            assert [len(x) for x in per_launch] == [3, 3]
            assert all(v > 0 for x in per_launch for v in x)
            cold = [m for m in store.measurements(job.id) if m.metric == "load_cold_ms"]
            assert sorted(m.launch for m in cold) == [0, 1] and all(m.value > 0 for m in cold)
            launches = job.result["launches"]
            assert [x["lane"] for x in launches] == ["host-cpu", "host-cpu"]
            assert all(x["shared"] is False and x["concurrent_jobs"] == [] for x in launches)
            assert all(len(x["loadavg_before"]) == 3 and len(x["loadavg_after"]) == 3 for x in launches)
            spans += [(x["start_s"], x["end_s"], job.id) for x in launches]
    spans.sort()
    assert len(spans) == 2 * len(jobs)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))  # no two launches overlapped
