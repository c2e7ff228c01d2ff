"""An emulated iPhone has two memory predictions: the real device's (Core ML, which decides the plan) and the
emulation's (mlfarm's MIL executor, which its measured peak is compared with). `mlfarm plan`, the run's job line
and every report format show the same two figures, each labelled by its runtime."""

from __future__ import annotations

import json

import pytest
import yaml

from orchestrator.results import ResultsStore

pytestmark = pytest.mark.slow


def test_plan_run_and_report_show_the_same_two_labelled_predictions(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    data = yaml.safe_load(spec.read_text())
    data["name"] = "tiny-two-predictions"
    data["model"]["components"] = {"text_encoder": data["model"]["components"]["text_encoder"]}
    data["variants"] = {"precision": ["fp16"], "weights": ["none"], "attention": ["split_einsum_v2"],
                        "compute_units": ["cpu_and_ne"]}
    data["devices"] = ["virtual:iphone-12"]
    data["measure"] = {**data["measure"], "iterations": 2}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))

    planned = mlfarm("plan", path, "--json")
    assert planned.exit_code == 0, planned.err
    (device,) = planned.json()["devices"]
    chosen = device["chosen"]["text_encoder"]
    figures = chosen["predictions"]
    assert figures["device_runtime"] == "coreml" and figures["emulation_runtime"] == "mil-executor"
    device_mb, emulation_mb = figures["device_mb"], figures["emulation_mb"]
    assert device_mb == chosen["predicted_mb"] and emulation_mb == chosen["run_predicted_mb"]
    assert device_mb > emulation_mb + 100  # Core ML's runtime prior vs the executor's calibrated overhead
    label = f"{device_mb:,.0f} MB device (Core ML) · {emulation_mb:,.0f} MB emulation (MIL executor)"
    shown = mlfarm("plan", path)
    assert shown.exit_code == 0 and label in " ".join(shown.out.split()), shown.out

    ran = mlfarm("run", path, "--json")
    assert ran.exit_code == 0, ran.err
    run_id = ran.json()["run_id"]
    assert f"predicted {label}" in ran.err  # the job's line
    with ResultsStore(tmp_path / "results.db") as store:
        (job,) = store.jobs(run_id)
        assert job.status == "ok" and job.predicted_peak_mb == pytest.approx(emulation_mb, abs=0.05)

    out = tmp_path / "reports"
    reported = mlfarm("report", run_id, "--format", "json,md,html", "--out", out)
    assert reported.exit_code in (0, 1), reported.err
    (verdict,) = json.loads((out / "report.json").read_text())["verdicts"]
    assert verdict["predictions"]["device_mb"] == device_mb and verdict["predictions"]["emulation_mb"] == emulation_mb
    assert verdict["predictions"]["text"] == label
    for name in ("report.md", "report.html"):
        assert label in (out / name).read_text(), name
