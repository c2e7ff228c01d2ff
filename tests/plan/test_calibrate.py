"""`mlfarm calibrate`: overheads refitted from measured peaks in a real results database."""

from __future__ import annotations

import yaml

from orchestrator.results import DeviceRow, Measurement, NewJob, ResultsStore

MB = 1024 * 1024


def seed_store(path, peaks_mb):
    manifest = {"component": "unet", "variant": {"precision": "fp16", "weights": "none", "attention": "original"},
                "analysis": {"weights_bytes_stored": 10 * MB, "weights_bytes_decompressed": 10 * MB,
                             "activation_peak_bytes": 5 * MB, "flops": 1e9}}
    with ResultsStore(path) as store:
        store.upsert_artifact("unet-a", component="unet", variant="fp16-none-original", sha256="s", manifest=manifest)
        for n, peak in enumerate(peaks_mb):
            run = store.create_run(spec_name="s", spec_digest="d", run_id=f"r{n}")
            store.add_device(run, DeviceRow("virtual:iphone-12", "virtual", "iphone-12"))
            (job,) = store.add_jobs(run, [NewJob("virtual:iphone-12", "unet", "fp16-none-original", "all", "unet-a")])
            store.start_job(job)
            store.finish_job(job, "ok", measurements=[Measurement("peak_footprint_mb", peak, "MB")])
            store.set_run_status(run, "finished")


def test_calibrate_fits_the_median_residual_and_the_planner_uses_it(tmp_path, mlfarm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # 25 MB app footprint (the spec default) + fp16 weights as loaded (10 MB) and their fp32 copies in the
    # executor (20 MB) + 5 MB of activations: residuals 150, 155, 375
    seed_store(tmp_path / "results.db", [210.0, 215.0, 435.0])
    dry = mlfarm("calibrate", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.err
    (group,) = dry.json()["groups"]
    assert group["runtime"] == "mil-executor" and group["family"] == "iphone" and group["jobs"] == 3
    assert group["fitted_mb"] == 155.0 and dry.json()["written"] is None
    assert not (tmp_path / ".mlfarm" / "overhead.yaml").exists()
    done = mlfarm("calibrate", "--json")
    written = yaml.safe_load((tmp_path / ".mlfarm" / "overhead.yaml").read_text())
    assert done.exit_code == 0 and written["mil-executor"]["iphone"]["all"] == 155.0
    from orchestrator.plan.memory import Overheads

    assert Overheads.load(tmp_path).get("mil-executor", "iphone", "all") == 155.0


def test_calibrate_without_measurements_is_a_usage_error(tmp_path, mlfarm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = mlfarm("calibrate")
    assert result.exit_code == 2 and "mlfarm run" in result.err
