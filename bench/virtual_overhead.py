"""Orchestration overhead per job on a virtual device vs the harness's own work, in one run.

    .venv/bin/python bench/virtual_overhead.py [--jobs 7]

"harness alone" runs ``python -m orchestrator.harness job.json`` in a subprocess: the model's own work,
including the interpreter start the emulated app also pays. "virtual device" is what the usbmux backend does
per job against an emulated iPhone 12 (pymobiledevice3 over the emulated usbmuxd): ``prepare`` with the
harness already installed (a lookup, no install), ``push`` of a model already on the device (one stat), and
``run`` (job.json over AFC, DVT launch, sysmontap sampling until the pid is gone, result and outputs pulled
back over AFC, the job folder removed). The two are interleaved (A B A B ...) so a busy neighbour slows both
alike; the machine is shared (2 cores), so read the medians and the difference, not single runs.
Target: overhead <= 1.0 s per job.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.config import builtin_profiles_dir
from orchestrator.devices.usbmux_device import UsbmuxDevice, UsbmuxOptions, connect_device
from orchestrator.devices.virtual.farm import VirtualFarm
from orchestrator.devices.virtual.ipa import build_placeholder_ipa
from orchestrator.harness.contract import InputSpec, Job
from orchestrator.profiles import load_catalog

TARGET_S = 1.0
LAYER = """
import sys
import numpy as np
import coremltools as ct
from coremltools.converters.mil import Builder as mb
rows, cols = int(sys.argv[2]), int(sys.argv[3])
weight = np.random.RandomState(0).randn(cols, rows).astype(np.float32) * 0.05
@mb.program(input_specs=[mb.TensorSpec(shape=(1, rows))], opset_version=ct.target.iOS16)
def prog(x):
    return mb.relu(x=mb.linear(x=x, weight=weight), name="y")
ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
           compute_precision=ct.precision.FLOAT32).save(sys.argv[1])
"""


def build_layer_model(dest: Path, rows: int = 256, cols: int = 256) -> Path:
    """A one-layer ML Program (relu(linear)) built with coremltools' MIL builder."""
    subprocess.run([sys.executable, "-c", LAYER, str(dest), str(rows), str(cols)], check=True, capture_output=True)
    return dest


def make_job(job_id: str, rows: int = 256, iterations: int = 10) -> Job:
    return Job(job_id, "unset", "all", (InputSpec("x", (1, rows), "float32", 1),), warmup=1,
               iterations=iterations, sample_interval_ms=10, timeout_s=1800.0)


def harness_alone(root: Path, model: Path, job_id: str, rows: int = 256, iterations: int = 10) -> float:
    """Wall seconds of one harness run on this machine, the same job the device runs."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    if not (root / "models" / "m.mlpackage").exists():
        shutil.copytree(model, root / "models" / "m.mlpackage")
    job_dir = root / "jobs" / job_id
    job_dir.mkdir(parents=True)
    path = Job(**{**make_job(job_id, rows, iterations).__dict__, "model": "models/m.mlpackage"}).write(job_dir)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator.harness", str(path), "--root", str(root)], check=True,
                   capture_output=True)
    return time.perf_counter() - start


async def device_job(device: UsbmuxDevice, model: Path, digest: str, job_id: str) -> dict[str, float]:
    """One job as the runner does it on a device that already has the app and the model."""
    fresh = UsbmuxDevice(device.info, device.session, device.options)
    t0 = time.perf_counter()
    await fresh.prepare()
    t1 = time.perf_counter()
    ref = await fresh.push(model, digest)
    t2 = time.perf_counter()
    outcome = await fresh.run(make_job(job_id), model_ref=ref)
    t3 = time.perf_counter()
    if outcome.status != "ok" or fresh.installed:
        raise SystemExit(f"unexpected: status {outcome.status} ({outcome.error}), installed={fresh.installed}")
    return {"prepare": t1 - t0, "push": t2 - t1, "run": t3 - t2, "total": t3 - t0}


async def main(jobs: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="mlfarm-bench-"))
    try:
        model = build_layer_model(work / "layer.mlpackage")
        digest = hashlib.sha256(b"bench-layer").hexdigest()
        catalog = load_catalog([builtin_profiles_dir()])
        async with VirtualFarm(["iphone-12"]) as farm:
            device = await connect_device(farm.devices[0].udid, usbmux_address=farm.address, catalog=catalog,
                                          options=UsbmuxOptions(build_placeholder_ipa(work / "h.ipa")))
            t = time.perf_counter()
            await device.prepare()
            install_s = time.perf_counter() - t
            t = time.perf_counter()
            await device.push(model, digest)
            first_push_s = time.perf_counter() - t
            await device_job(device, model, digest, "warm")  # the OS file cache, like the direct side below
            harness_alone(work / "host", model, "warm")
            direct, virtual = [], []
            for n in range(jobs):
                direct.append(harness_alone(work / "host", model, f"d{n}"))
                virtual.append(await device_job(device, model, digest, f"v{n}"))
            await device.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    alone = statistics.median(direct)
    per_job = statistics.median(v["total"] for v in virtual)
    overhead = per_job - alone
    parts = {k: statistics.median(v[k] for v in virtual) for k in ("prepare", "push", "run")}
    print(f"virtual iPhone 12 (iOS 16.7.10, emulated), {jobs} jobs each, interleaved; medians:")
    print(f"  harness alone (python -m orchestrator.harness)        {alone:7.3f} s")
    print(f"  virtual device: prepare + push + run                   {per_job:7.3f} s"
          f"   (prepare {parts['prepare']:.3f}, push {parts['push']:.3f}, run {parts['run']:.3f})")
    verdict = "ok" if overhead <= TARGET_S else "OVER TARGET"
    print(f"  orchestration overhead per job                         {overhead:7.3f} s   target <= {TARGET_S:.1f} s:"
          f" {verdict}")
    print(f"  once per device: install {install_s:.3f} s, first push of the model {first_push_s:.3f} s")
    print(f"  spread: harness alone {min(direct):.2f}-{max(direct):.2f} s, "
          f"virtual {min(v['total'] for v in virtual):.2f}-{max(v['total'] for v in virtual):.2f} s")
    return 0 if overhead <= TARGET_S else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=7)
    sys.exit(asyncio.run(main(parser.parse_args().jobs)))
