"""Qualification: each gate's verdict and reason, read from runs written through the real results store."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.report import build_report, report_exit_code
from orchestrator.report.model import Report
from orchestrator.report.qualify import JobVerdict
from tests.report.runs import FakeJob, RunWriter, jetsam_event, tiny_sd_jobs, tiny_spec, with_job


def report_of(writer: RunWriter, catalog, jobs, **kw) -> Report:
    run_id = writer.run(jobs, **kw)
    return build_report(writer.store, run_id, "none", catalog)


def verdict(report: Report, device: str, component: str) -> JobVerdict:
    [v] = [v for v in report.verdicts if (v.device_key, v.component) == (device, component) and v.gating]
    return v


@pytest.fixture
def jobs() -> list[FakeJob]:
    return tiny_sd_jobs(np.random.default_rng(7))


def test_a_clean_run_passes_every_gate(writer, catalog, jobs):
    report = report_of(writer, catalog, jobs)
    assert report.passed and report_exit_code(report) == 0
    assert len(report.gating) == 9  # 3 devices x 3 components
    assert {g.status for v in report.gating for g in v.gates} == {"pass"}
    assert report.headline.startswith("PASS: all 36 gates passed")


@pytest.mark.parametrize(("peak", "status", "words"), [
    (1700.0, "pass", "1,700 MB ≤ 1,741 MB allowed (2,048 MB limit − 15% headroom)"),
    (1800.0, "fail", "1,800 MB > 1,741 MB allowed (2,048 MB limit − 15% headroom); inside the headroom"),
    (2100.0, "fail", "over the limit itself"),
])
def test_memory_gate_keeps_the_headroom_free(writer, catalog, jobs, peak, status, words):
    report = report_of(writer, catalog, with_job(jobs, "virtual:iphone-12", "unet", peak_mb=peak))
    gate = verdict(report, "virtual:iphone-12", "unet").gate("memory")
    assert gate.status == status and words in gate.reason
    assert report_exit_code(report) == (0 if status == "pass" else 1)


def test_headroom_comes_from_the_spec_stored_with_the_run(writer, catalog, jobs):
    spec = tiny_spec(gates={"memory_headroom": 0.30})
    report = report_of(writer, catalog, with_job(jobs, "virtual:iphone-12", "unet", peak_mb=1700.0), spec=spec)
    gate = verdict(report, "virtual:iphone-12", "unet").gate("memory")
    assert gate.status == "fail" and "1,434 MB allowed (2,048 MB limit − 30% headroom)" in gate.reason


def test_jetsam_fails_memory_with_the_kill_figures(writer, catalog, jobs):
    jobs = with_job(jobs, "virtual:iphone-12", "unet", status="jetsam", peak_mb=2110.0, latencies=[], psnr_db=None,
                    events=[jetsam_event(2110.0, 2048.0)])
    report = report_of(writer, catalog, jobs)
    v = verdict(report, "virtual:iphone-12", "unet")
    assert v.status == "fail" and report_exit_code(report) == 1
    assert v.gate("memory").reason == "killed by emulated jetsam at 2,110 MB (limit 2,048 MB, per-process-limit)"
    assert v.gate("latency").status == "n/a"  # nothing to time after a kill
    assert report.headline == "FAIL: 1 gate failure, no baseline"


def test_error_and_timeout_fail_with_their_message(writer, catalog, jobs):
    jobs = with_job(jobs, "host", "unet", status="error", latencies=[], peak_mb=None, error="RuntimeError: boom")
    jobs = with_job(jobs, "host", "vae_decoder", status="timeout", latencies=[], peak_mb=None, error="after 3 of 10")
    report = report_of(writer, catalog, jobs)
    assert verdict(report, "host", "unet").gate("memory").reason == "job failed: RuntimeError: boom"
    assert verdict(report, "host", "vae_decoder").gate("memory").reason == "timed out: after 3 of 10"


def test_latency_gate_uses_p90_and_the_family_budget(writer, catalog, jobs):
    # 80% of predictions at 40 ms, 20% at 60 ms: the median is well inside a 50 ms budget, the p90 is not.
    slow_tail = [40.0] * 16 + [60.0] * 4
    spec = tiny_spec(gates={"latency_budget_ms": {"unet": {"iphone": 50, "*": 100}}})
    jobs = with_job(jobs, "virtual:iphone-12", "unet", latencies=slow_tail)
    jobs = with_job(jobs, "host", "unet", latencies=slow_tail)
    report = report_of(writer, catalog, jobs, spec=spec)
    phone = verdict(report, "virtual:iphone-12", "unet").gate("latency")
    assert phone.status == "fail" and phone.reason == "p90 60.0 ms > 50.0 ms budget"
    assert phone.flags == ("emulated: not device latency",)
    host = verdict(report, "host", "unet").gate("latency")
    assert host.status == "pass" and host.threshold == 100 and host.flags == ()
    # No budget for the text encoder in this spec: the gate does not apply, it does not fail.
    assert verdict(report, "host", "text_encoder").gate("latency").status == "n/a"


def test_quality_prefers_device_outputs_then_the_artifact(writer, catalog, jobs):
    jobs = with_job(jobs, "host", "unet", psnr_db=31.0, artifact_psnr_db=45.0)
    jobs = with_job(jobs, "host", "vae_decoder", psnr_db=None, artifact_psnr_db=38.0)
    jobs = with_job(jobs, "host", "text_encoder", psnr_db=None, artifact_psnr_db=None)
    report = report_of(writer, catalog, jobs)
    unet = verdict(report, "host", "unet")
    assert unet.gate("quality").status == "fail"
    assert unet.gate("quality").reason == "PSNR 31.0 dB < 35.0 dB (device outputs)"
    vae = verdict(report, "host", "vae_decoder")
    assert vae.gate("quality").status == "pass" and vae.psnr_source == "artifact" and vae.psnr_db == 38.0
    assert verdict(report, "host", "text_encoder").gate("quality").status == "n/a"


def test_high_cv_is_an_unstable_warning_not_a_failure(writer, catalog, jobs):
    rng = np.random.default_rng(3)
    noisy = list(rng.normal(48.0, 48.0 * 0.4, 30).clip(5))
    report = report_of(writer, catalog, with_job(jobs, "host", "unet", latencies=noisy))
    gate = verdict(report, "host", "unet").gate("stability")
    assert gate.status == "warn" and gate.reason.startswith("unstable measurement: CV ")
    assert gate.reason.endswith("> 25%; rerun advised")  # max_cv 0.25 from examples/tiny-sd.yaml
    assert report.passed and "1 unstable measurement" in report.headline


def test_unverified_limits_are_flagged(writer, catalog, jobs):
    report = report_of(writer, catalog, jobs)
    assert "limit unverified" in verdict(report, "virtual:iphone-15-pro", "unet").gate("memory").flags
    assert "limit unverified" not in verdict(report, "virtual:iphone-12", "unet").gate("memory").flags
    assert any(n.startswith("† memory limits no source confirms: virtual:iphone-15-pro") for n in report.notes)


def test_a_component_without_a_job_fails(writer, catalog, jobs):
    jobs = [j for j in jobs if (j.device, j.component) != ("virtual:iphone-12", "vae_decoder")]
    report = report_of(writer, catalog, jobs)
    v = verdict(report, "virtual:iphone-12", "vae_decoder")
    assert v.status == "fail" and "no job for this component" in v.gates[0].reason


def plan_for(jobs, *, nothing_fits=()):
    devices = {}
    for j in jobs:
        d = devices.setdefault(j.device, {"key": j.device, "allowed_mb": 1740.8, "chosen": {}, "candidates": []})
        d["chosen"][j.component] = {"component": j.component, "variant": j.variant, "compute_units": j.units}
    for device, component in nothing_fits:
        devices[device]["chosen"][component] = None
        devices[device]["candidates"].append({"component": component, "variant": "fp32-none-original",
                                              "compute_units": "cpu_only", "verdict": "rejected",
                                              "reasons": [{"rule": "memory", "message": "predicted 2,310 MB exceeds "
                                                           "the 1,741 MB allowed"}]})
    return {"devices": list(devices.values())}


def test_only_the_plans_choice_gates(writer, catalog, jobs):
    alternative = FakeJob("host", "unet", variant="fp32-none-original", latencies=[50.0] * 10, peak_mb=900.0,
                          psnr_db=20.0)  # fails quality, but the plan did not choose it
    report = report_of(writer, catalog, [*jobs, alternative], plan=plan_for(jobs))
    assert report.passed
    [other] = [v for v in report.verdicts if not v.gating]
    assert other.variant == "fp32-none-original" and other.status == "fail"


def test_nothing_fits_is_a_failure_with_the_plans_reason(writer, catalog, jobs):
    kept = [j for j in jobs if (j.device, j.component) != ("virtual:iphone-12", "unet")]
    plan = plan_for(kept, nothing_fits=[("virtual:iphone-12", "unet")])
    report = report_of(writer, catalog, kept, plan=plan)
    v = verdict(report, "virtual:iphone-12", "unet")
    assert v.status == "fail"
    assert v.gates[0].reason == ("no variant fits: all 1 candidate(s) rejected, e.g. fp32-none-original cpu_only: "
                                 "predicted 2,310 MB exceeds the 1,741 MB allowed")


def test_a_run_without_its_spec_uses_default_gates_and_says_so(writer, catalog, jobs):
    report = report_of(writer, catalog, jobs, spec={})
    assert report.run.gates.min_psnr_db == 35.0 and report.run.gates.max_cv == 0.15
    assert any("default gates" in n for n in report.notes)


def test_an_invalid_spec_section_falls_back_to_defaults_with_a_note(writer, catalog, jobs):
    report = report_of(writer, catalog, jobs, spec=tiny_spec(gates={"max_cv": -1}))
    assert report.run.gates.max_cv == 0.15
    assert any("spec.gates.max_cv" in n and "using the default gates" in n for n in report.notes)


def test_notes_say_what_executed_the_model_and_thermal_trouble(writer, catalog, jobs):
    report = report_of(writer, catalog, with_job(jobs, "host", "unet", thermal="serious"))
    assert any(n.startswith("latency on host, virtual:iphone-12, virtual:iphone-15-pro is mlfarm's MIL executor")
               for n in report.notes)
    assert "thermal state high after: host unet (serious); latency may be throttled" in report.notes
