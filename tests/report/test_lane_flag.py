"""A job measured while the host-CPU lane was shared anyway (another process measuring) is flagged in the
report; a job measured alone is not."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace

from orchestrator.report import build_report
from orchestrator.report.render_json import render_json
from orchestrator.report.render_markdown import render_markdown
from orchestrator.results import DeviceRow
from orchestrator.runner.engine import Runner
from orchestrator.runner.lane import HostCpuLane
from tests.runner.test_engine import ScriptedDevice, ok, setup


class HostLike(ScriptedDevice):
    def __init__(self, key: str, script: list[object]) -> None:
        super().__init__(key, script)
        self.info = replace(self.info, shares_host_cpu=True)


def _report(tmp_path, catalog, busy: list[bool]):
    store, run, items = setup(tmp_path, ["host"], len(busy))
    store.add_device(run, DeviceRow("host", "host", "host", info={"limit_mb": 24000.0}))
    answers = iter(busy)

    @contextlib.asynccontextmanager
    async def other_process() -> AsyncIterator[bool]:  # stands in for the cross-process lock's verdict
        yield next(answers)

    runner = Runner(store, run, references=lambda c: None, lane=HostCpuLane(outer=other_process))
    asyncio.run(runner.run({"host": HostLike("host", [ok(i.store_id) for i in items])}, items))
    store.set_run_status(run, "finished")
    return build_report(store, run, "none", catalog), items


def test_a_job_measured_on_a_shared_lane_is_flagged(tmp_path, catalog):
    report, items = _report(tmp_path, catalog, [False, True])
    alone, shared = (next(j for j in report.run.jobs if j.id == i.store_id) for i in items)
    assert (alone.lane_shared, shared.lane_shared) == (False, True)
    flagged = [n for n in report.notes if "shared this machine's CPU" in n]
    assert flagged == ["measured while another measurement shared this machine's CPU (latency may be inflated): "
                       "host unet v1"]
    assert flagged[0] in json.loads(render_json(report))["notes"]
    assert "shared this machine" in render_markdown(report)


def test_nothing_is_flagged_when_the_lane_was_ours(tmp_path, catalog):
    report, _ = _report(tmp_path, catalog, [False, False])
    assert not any("shared this machine's CPU" in n for n in report.notes)
