"""``mlfarm report``: files written, exit codes 0 / 1 (gate failure, regression) / 2 (bad input)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.report.runs import RunWriter, jetsam_event, tiny_sd_jobs, with_job


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def test_a_passing_run_exits_0_and_writes_every_format(mlfarm, writer: RunWriter, rng, tmp_path):
    writer.run(tiny_sd_jobs(rng))
    run_id = writer.run(tiny_sd_jobs(rng))
    result = mlfarm("report", run_id, "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.err
    assert "PASS: all 36 gates passed, no regression" in result.out
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["junit.xml", "report.html", "report.json", "report.md"]
    assert ET.parse(tmp_path / "rep" / "junit.xml").getroot().get("failures") == "0"


def test_a_gate_failure_exits_1(mlfarm, writer: RunWriter, rng, tmp_path):
    jobs = with_job(tiny_sd_jobs(rng), "virtual:iphone-12", "unet", status="jetsam", peak_mb=2110.0, latencies=[],
                    events=[jetsam_event(2110.0, 2048.0)])
    run_id = writer.run(jobs)
    result = mlfarm("report", run_id, "--format", "terminal,junit", "--out", tmp_path / "rep")
    assert result.exit_code == 1
    assert "killed by emulated jetsam at 2,110 MB" in result.out
    assert [p.name for p in (tmp_path / "rep").iterdir()] == ["junit.xml"]


def test_a_regression_exits_1_and_none_baseline_exits_0(mlfarm, writer: RunWriter, rng, tmp_path):
    writer.run(tiny_sd_jobs(rng))
    run_id = writer.run(tiny_sd_jobs(rng, slow=1.15))  # every latency 15% slower; every gate still passes
    result = mlfarm("report", run_id, "--out", tmp_path / "a", "--format", "md")
    assert result.exit_code == 1
    assert "9 regressions" in result.out
    assert mlfarm("report", run_id, "--out", tmp_path / "b", "--format", "json", "--baseline", "none").exit_code == 0


def test_json_output_and_default_folder(mlfarm, writer: RunWriter, rng, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    writer.run(tiny_sd_jobs(rng))
    run_id = writer.run(tiny_sd_jobs(rng))
    result = mlfarm("report", "last", "--format", "json", "--json")
    assert result.exit_code == 0
    data = json.loads(result.out)
    assert data["exit_code"] == 0 and data["report"]["run"]["id"] == run_id
    assert data["files"] == {"json": str(tmp_path / "reports" / run_id / "report.json")}
    assert data["report"]["baseline"]["setting"] == "last"  # the spec's own `baseline: last`


def test_window_baseline_from_the_command_line(mlfarm, writer: RunWriter, rng, tmp_path):
    for _ in range(3):
        writer.run(tiny_sd_jobs(rng))
    run_id = writer.run(tiny_sd_jobs(rng))
    data = json.loads(mlfarm("report", run_id, "--baseline", "window:2", "--format", "json", "--json",
                             "--out", tmp_path).out)
    assert len(data["report"]["baseline"]["runs"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["nope-run"], "unknown run 'nope-run'"),
    (["{run}", "--baseline", "window:0"], "bad baseline 'window:0'"),
    (["{run}", "--baseline", "window:x"], "bad baseline 'window:x'"),
    (["{run}", "--baseline", "missing-run"], "unknown baseline run 'missing-run'"),
    (["{run}", "--format", "pdf"], "unknown report format(s): pdf"),
])
def test_bad_input_exits_2_with_a_message(mlfarm, writer: RunWriter, rng, tmp_path, args, message):
    run_id = writer.run(tiny_sd_jobs(rng))
    result = mlfarm("report", *[a.format(run=run_id) for a in args], "--out", tmp_path / "rep")
    assert result.exit_code == 2
    assert message in result.err and "fix:" in result.err and "Traceback" not in result.err


def test_last_on_an_empty_database_exits_2(mlfarm):
    result = mlfarm("report", "last")
    assert result.exit_code == 2 and "no runs in" in result.err


def test_a_run_that_measured_nothing_does_not_pass(mlfarm, writer: RunWriter, tmp_path):
    run_id = writer.run([])
    result = mlfarm("report", run_id, "--out", tmp_path / "rep")
    assert result.exit_code == 1
    assert "FAIL: nothing was measured (the run has no job)" in result.out
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["junit.xml", "report.html", "report.json",
                                                                     "report.md"]
