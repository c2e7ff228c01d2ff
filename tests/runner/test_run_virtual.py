"""`mlfarm run` on two virtual iPhones in parallel: pymobiledevice3's client, the emulated usbmuxd and the
harness stand-in, end to end. The app already uses 2010 MB: the 4 GB iPhone 12 (limit 2048 MB) still runs the
text encoder (~13 MB above the app in the executor) and kills the UNet (60-80 MB above it), a jetsam read from
the JetsamEvent report the device writes; the 8 GB iPhone 15 Pro runs both."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.results import ResultsStore

pytestmark = pytest.mark.slow


def test_busy_app_jetsams_on_the_4gb_phone_and_passes_on_the_8gb_one(run_settings, mlfarm, tmp_path):
    spec, _ = run_settings
    data = yaml.safe_load(spec.read_text())
    data["name"] = "tiny-busy"
    data["model"]["components"] = {c: data["model"]["components"][c] for c in ("text_encoder", "unet")}
    data["variants"] = {"precision": ["fp16"], "weights": ["none"], "attention": ["split_einsum_v2"],
                        "compute_units": ["cpu_and_ne"]}
    data["app"] = {"footprint_mb": 2010, "min_ios": 17}
    data["devices"] = ["virtual:iphone-12", "virtual:iphone-15-pro"]
    busy = tmp_path / "busy.yaml"
    busy.write_text(yaml.safe_dump(data))

    planned = mlfarm("plan", busy, "--json")
    assert planned.exit_code == 0, planned.err
    by_key = {d["key"]: d for d in planned.json()["devices"]}
    for component in ("text_encoder", "unet"):  # the plan budgets Core ML's runtime: nothing fits the iPhone 12
        assert by_key["virtual:iphone-12"]["chosen"][component] is None
        assert by_key["virtual:iphone-15-pro"]["chosen"][component]["variant"] == "fp16-none-split_einsum_v2"

    result = mlfarm("run", busy, "--all-variants", "--json")
    assert result.exit_code == 0, result.err
    run_id = result.json()["run_id"]
    with ResultsStore(tmp_path / "results.db") as store:
        devices = {d.key: d for d in store.devices(run_id)}
        assert devices["virtual:iphone-12"].backend == "virtual" and devices["virtual:iphone-12"].info["emulated"]
        assert devices["virtual:iphone-12"].udid != devices["virtual:iphone-15-pro"].udid
        small = {j.component: j for j in store.jobs(run_id, device_key="virtual:iphone-12")}
        large = {j.component: j for j in store.jobs(run_id, device_key="virtual:iphone-15-pro")}
        assert small["text_encoder"].status == "ok" and small["unet"].status == "jetsam"
        assert {j.status for j in large.values()} == {"ok"}
        (event,) = store.events(run_id, kind="jetsam")
        assert event.job_id == small["unet"].id and event.data["reason"] == "per-process-limit"
        assert event.data["report"].startswith("JetsamEvent-") and event.data["limit_mb"] == 2048
        assert event.data["footprint_mb"] > 2048
        for job in (small["text_encoder"], *large.values()):
            peak = [m.value for m in store.measurements(job.id) if m.metric == "peak_footprint_mb"]
            assert 2010 < peak[0] < 2048 if job.device_key == "virtual:iphone-12" else 2010 < peak[0] < 3072
