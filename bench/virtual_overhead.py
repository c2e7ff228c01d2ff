"""Orchestration overhead per job on a virtual device vs the harness's own work, in one run.

    .venv/bin/python bench/virtual_overhead.py [--jobs 7]

"virtual device" is what the usbmux backend does per job against an emulated iPhone 12 (pymobiledevice3 over
the emulated usbmuxd): ``prepare`` with the harness already installed (lookups, no install), ``push`` of a
model already on the device (one stat), and ``run`` (job.json over AFC, DVT launch, sysmontap sampling until
the pid is gone, result and outputs pulled back over AFC, the job folder removed).

The model's own work is the harness process (``python -m orchestrator.harness``, interpreter start included),
timed two ways in the same run: on the device side (the emulated app logs each harness run's wall time), and
alone on this host, interleaved with the device jobs (A B A B ...). Overhead per job = device job wall - that
job's harness wall on the device: it isolates our work from the harness's, whose own time swings by seconds on
a shared machine (2 cores, other jobs running). The alone-vs-device medians are printed as the cross-check.
Target: overhead <= 1.0 s per job.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
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


def harness_wall_on_device(folder: Path, job_id: str) -> float:
    """The wall time of the harness run for ``job_id``, as the emulated app logged it."""
    for line in reversed((folder / "harness-runs.jsonl").read_text().splitlines()):
        entry = json.loads(line)
        if f"/{job_id}/" in entry["job"]:
            return float(entry["wall_s"])
    raise SystemExit(f"no harness run logged for {job_id}")


async def device_job(device: UsbmuxDevice, model: Path, digest: str, job_id: str) -> dict[str, float]:
    """One job as the runner does it on a device that already has the app and the model."""
    fresh = UsbmuxDevice(device.info, device.session, device.options)  # shares the session and work folder
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
                                          options=UsbmuxOptions(build_placeholder_ipa(work / "h.ipa"),
                                                                work_dir=work / "pulled"))
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
                figures = await device_job(device, model, digest, f"v{n}")
                figures["harness"] = harness_wall_on_device(farm.devices[0].folder, f"v{n}")
                virtual.append(figures)
            await device.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(jobs, direct, virtual, install_s, first_push_s)


def report(jobs: int, direct: list[float], virtual: list[dict[str, float]], install_s: float,
           first_push_s: float) -> int:
    overheads = [v["total"] - v["harness"] for v in virtual]
    overhead = statistics.median(overheads)
    med = {k: statistics.median(v[k] for v in virtual) for k in ("prepare", "push", "run", "total", "harness")}
    print(f"virtual iPhone 12 (iOS 16.7.10, emulated), {jobs} jobs, medians:")
    print(f"  device job: prepare + push + run                       {med['total']:7.3f} s"
          f"   (prepare {med['prepare']:.3f}, push {med['push']:.3f}, run {med['run']:.3f})")
    print(f"  its harness process, timed on the device               {med['harness']:7.3f} s")
    verdict = "ok" if overhead <= TARGET_S else "OVER TARGET"
    print(f"  orchestration overhead per job (job - its harness)     {overhead:7.3f} s   target <= {TARGET_S:.1f} s:"
          f" {verdict}   (per job: {', '.join(f'{o:.2f}' for o in overheads)})")
    print(f"  cross-check, interleaved: harness alone on this host   {statistics.median(direct):7.3f} s"
          f"   (spread {min(direct):.1f}-{max(direct):.1f} s; device jobs "
          f"{min(v['total'] for v in virtual):.1f}-{max(v['total'] for v in virtual):.1f} s)")
    print(f"  once per device: install {install_s:.3f} s, first push of the model {first_push_s:.3f} s")
    return 0 if overhead <= TARGET_S else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=7)
    sys.exit(asyncio.run(main(parser.parse_args().jobs)))
