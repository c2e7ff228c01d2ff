"""Faults on virtual devices under the real runner and results store: a device that dies mid-job is retried per
policy (or the job fails after the retries), and the other device's work is never lost."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from orchestrator.devices.usbmux_device import UsbmuxOptions, connect_device
from orchestrator.harness.contract import InputSpec, Job
from orchestrator.results.store import NewJob, ResultsStore
from orchestrator.runner import Runner, WorkItem
from tests.devices.conftest import FarmHandle, harness_started, job_json_on_device

KEYS = {"virtual:iphone-12": "iphone-12", "virtual:iphone-15-pro": "iphone-15-pro"}


def plan(tmp_path: Path, model: Path) -> tuple[ResultsStore, str, list[WorkItem]]:
    store = ResultsStore(tmp_path / "results.db")
    run = store.create_run(spec_name="faults", spec_digest="d")
    ids = store.add_jobs(run, [NewJob(key, "layer", "fp32", "all") for key in KEYS])
    digest = hashlib.sha256(str(model).encode()).hexdigest()
    items = [WorkItem(jid, key, "layer", "fp32", model, digest,
                      Job(jid, "unset", "all", (InputSpec("x", (1, 64), "float32", 7),), warmup=1, iterations=3,
                          sample_interval_ms=10, timeout_s=120.0), None, 2048.0)
             for jid, key in zip(ids, KEYS, strict=True)]
    return store, run, items


async def kill_mid_job(farm: FarmHandle, item: WorkItem, back_after_s: float | None) -> None:
    """Detach the device once its app runs the harness on the job (seen as a host process, bounded wait): the
    harness needs seconds to import its runtime before its first prediction, so it is mid-job; maybe bring the
    device back."""
    udid = farm.udid(KEYS[item.device_key])
    await harness_started(job_json_on_device(farm, udid, item.job.job_id))
    await asyncio.to_thread(farm.control, "detach", udid=udid)
    if back_after_s is not None:
        await asyncio.sleep(back_after_s)
        await asyncio.to_thread(farm.control, "attach", udid=udid)


def run_with_fault(farm: FarmHandle, catalog: Any, ipa: Path, items: list[WorkItem], runner: Runner,
                   back_after_s: float | None) -> Any:
    async def main() -> Any:
        devices = {key: await connect_device(farm.udid(profile), usbmux_address=farm.address, catalog=catalog,
                                             options=UsbmuxOptions(ipa, report_wait_s=1.0))
                   for key, profile in KEYS.items()}
        summary, _ = await asyncio.gather(runner.run(devices, items), kill_mid_job(farm, items[0], back_after_s))
        return summary

    try:
        return asyncio.run(main())
    finally:
        farm.control("attach", udid=farm.udid("iphone-12"))


@pytest.mark.slow
def test_device_killed_mid_job_is_retried_and_the_run_continues(farm, catalog, stand_in_ipa, tiny_model, tmp_path):
    store, run, items = plan(tmp_path, tiny_model)
    runner = Runner(store, run, references=lambda c: None, retries=2, backoff_s=2.0)
    summary = run_with_fault(farm, catalog, stand_in_ipa, items, runner, back_after_s=0.5)
    assert summary.statuses == {items[0].store_id: "ok", items[1].store_id: "ok"}
    retries = store.events(run, kind="transport-retry", job_id=items[0].store_id)
    assert retries and retries[0].data["udid"] == farm.udid("iphone-12")
    assert not store.events(run, kind="transport-retry", job_id=items[1].store_id)
    for item in items:  # both results are stored, figures included
        assert {m.metric for m in store.measurements(item.store_id)} >= {"latency_ms", "peak_footprint_mb"}


def test_device_that_stays_gone_fails_its_job_after_the_retries(farm, catalog, stand_in_ipa, tiny_model, tmp_path):
    store, run, items = plan(tmp_path, tiny_model)
    runner = Runner(store, run, references=lambda c: None, retries=1, backoff_s=0.2)
    summary = run_with_fault(farm, catalog, stand_in_ipa, items, runner, back_after_s=None)
    assert summary.statuses == {items[0].store_id: "error", items[1].store_id: "ok"}
    failed = store.get_job(items[0].store_id)
    assert failed is not None and "transport failed 2 times" in (failed.error or "")
    assert len(store.events(run, kind="transport-retry", job_id=items[0].store_id)) == 2
