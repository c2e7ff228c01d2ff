"""`mlfarm qualify` exit codes: 0 when gates pass, 1 for a failed gate or a regression, 2 for a bad spec."""

from __future__ import annotations

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


def test_qualify_passes_then_a_slowdown_is_a_regression(run_settings, mlfarm, tmp_path, monkeypatch):
    # 15 samples a side, not the module's 5: with 5, two slow outliers in the baseline (another job on a shared
    # 2-core CI machine) let bootstrap resamples reach a baseline median as slow as the 2x candidate, and the
    # interval then only supports "suspicious" (seen on CI)
    spec = respec(run_settings[0], tmp_path, measure__iterations=15)
    first = mlfarm("qualify", spec, "--devices", "host", "--format", "json,junit", "--json")
    assert first.exit_code == 0, first.err
    files = first.json()["files"]
    assert (tmp_path / "reports").is_dir() and files["junit"].endswith("junit.xml")

    monkeypatch.setenv("MLFARM_HARNESS_DELAY_FACTOR", "2.0")  # every prediction twice as slow
    second = mlfarm("qualify", spec, "--devices", "host", "--format", "json", "--json")
    assert second.exit_code == 1
    comparisons = second.json()["report"]["comparisons"]
    latency = [c for c in comparisons if c["metric"] == "latency"]
    assert latency and all(c["classification"] == "regression" for c in latency)


def test_a_failed_gate_exits_1(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    strict = respec(spec, tmp_path, gates__latency_budget_ms={"*": {"*": 0.001}}, baseline="none")
    result = mlfarm("qualify", strict, "--devices", "host", "--format", "json", "--json")
    assert result.exit_code == 1
    assert "latency" in (tmp_path / "reports").joinpath(result.json()["report"]["run"]["id"],
                                                         "report.json").read_text()


def test_a_bad_spec_exits_2_before_anything_runs(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    bad = respec(spec, tmp_path, measure__iterations=0)
    result = mlfarm("qualify", bad)
    assert result.exit_code == 2 and "measure.iterations" in result.err
    assert not (tmp_path / "results.db").exists() or mlfarm("runs", "--json").json() == []
