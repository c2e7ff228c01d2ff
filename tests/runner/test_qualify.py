"""`mlfarm qualify` exit codes: 0 when gates pass, 1 for a failed gate or a regression, 2 for a bad spec."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def respec(spec_path, tmp_path, **changes):
    data = yaml.safe_load(spec_path.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    out = tmp_path / f"{data['name']}.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def make_baseline_fast(db: Path, run_id: str, latency_ms: float) -> int:
    """Rewrite one run's stored latencies to ``latency_ms`` each: a baseline of known speed, so the next run is
    slower than it by construction (no real prediction of a tiny-sd model takes a microsecond), however busy
    the machine is. Returns the rows changed."""
    with sqlite3.connect(db) as conn:
        changed = conn.execute("UPDATE measurements SET value = ? WHERE metric = 'latency_ms' AND job_id IN "
                               "(SELECT id FROM jobs WHERE run_id = ?)", (latency_ms, run_id)).rowcount
    return changed


def test_qualify_passes_then_a_slowdown_is_a_regression(run_settings, mlfarm, tmp_path, isolated_env):
    # three launches a side: with fewer than regression.min_launches a change is at most "suspicious"
    spec = respec(run_settings[0], tmp_path, measure__launches=3)
    first = mlfarm("qualify", spec, "--devices", "host", "--format", "json,junit", "--json")
    assert first.exit_code == 0, first.err
    files = first.json()["files"]
    assert (tmp_path / "reports").is_dir() and files["junit"].endswith("junit.xml")
    assert make_baseline_fast(isolated_env / "results.db", first.json()["report"]["run"]["id"], 0.001) >= 2 * 5

    second = mlfarm("qualify", spec, "--devices", "host", "--format", "json", "--json")
    assert second.exit_code == 1
    report = second.json()["report"]
    assert report["baseline"]["runs"] == [first.json()["report"]["run"]["id"]]
    latency = [c for c in report["comparisons"] if c["metric"] == "latency"]
    assert {(c["component"], c["variant"]) for c in latency} == {
        (v["component"], v["variant"]) for v in report["verdicts"] if v["job_status"] == "ok"}
    assert latency and all(c["classification"] == "regression" for c in latency)


def test_a_failed_gate_exits_1(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    strict = respec(spec, tmp_path, gates__latency_budget_ms={"*": {"*": 0.001}}, baseline="none")
    result = mlfarm("qualify", strict, "--devices", "host", "--format", "json", "--json")
    assert result.exit_code == 1
    report = json.loads((tmp_path / "reports").joinpath(result.json()["report"]["run"]["id"],
                                                        "report.json").read_text())
    assert report["passed"] is False and report["exit_code"] == 1
    gates = [g for v in report["verdicts"] if v["gating"] for g in v["gates"]]
    latency = [g for g in gates if g["gate"] == "latency"]
    assert latency and all(g["status"] == "fail" and g["threshold"] == 0.001 for g in latency)
    assert all(g["status"] != "fail" for g in gates if g["gate"] != "latency")  # only the budget failed


def test_a_bad_spec_exits_2_before_anything_runs(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    bad = respec(spec, tmp_path, measure__iterations=0)
    result = mlfarm("qualify", bad)
    assert result.exit_code == 2 and "measure.iterations" in result.err
    assert not (tmp_path / "results.db").exists() or mlfarm("runs", "--json").json() == []
