"""Two virtual devices in parallel vs each alone, in one run: wall(both) / wall(slower alone).

    .venv/bin/python bench/parallel_devices.py [--jobs 2] [--device-s 8] [--rounds 3] [--host-bound]

An emulated iPhone 12 and iPhone 15 Pro behind one emulated usbmuxd, driven through the usbmux backend
(pymobiledevice3), each device taking ``--jobs`` jobs in a row, the way the runner's per-device workers do
(``mlfarm run ... --devices virtual:iphone-12,virtual:iphone-15-pro`` does the same through the runner).
Measured: iPhone 12 alone, iPhone 15 Pro alone, then both at once (asyncio, one worker per device).

On a real device the model runs on the device and the host only waits. Here the emulated app runs the Python
harness on this host, so its CPU work (interpreter, imports, model load) competes for the host's cores. The
harness's MLFARM_HARNESS_DELAY_FACTOR stretches every prediction with a sleep; it is calibrated so each job
spends about ``--device-s`` seconds "on the device" (waiting), like an SD-sized model's predictions on a phone,
spread over 200 short predictions so that one prediction slowed by a busy neighbour barely moves the total.
``--host-bound`` also measures without the stretch (host CPU only). The machine is shared (2 cores, other
jobs running): each round measures alone/alone/both back to back (order alternating between rounds) and the
median ratio over rounds is the figure. Target: both <= 1.2 x the slower alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from virtual_overhead import build_layer_model, harness_alone, make_job

from orchestrator.config import builtin_profiles_dir
from orchestrator.devices.usbmux_device import UsbmuxDevice, UsbmuxOptions, connect_device
from orchestrator.devices.virtual.farm import VirtualFarm
from orchestrator.devices.virtual.ipa import build_placeholder_ipa
from orchestrator.profiles import load_catalog

TARGET = 1.2
ITERATIONS = 200  # many short stretched predictions: one slow prediction barely moves the total
ROWS = 1024
PROFILES = ("iphone-12", "iphone-15-pro")


async def worker(device: UsbmuxDevice, model: Path, digest: str, jobs: int, tag: str) -> float:
    """The device's queue, one job after another (prepare, push, run); wall seconds."""
    start = time.perf_counter()
    await device.prepare()
    for n in range(jobs):
        ref = await device.push(model, digest)
        outcome = await device.run(make_job(f"{tag}-{n}", rows=ROWS, iterations=ITERATIONS), model_ref=ref)
        if outcome.status != "ok":
            raise SystemExit(f"{device.info.key}: {outcome.status}: {outcome.error}")
    return time.perf_counter() - start


async def measure(jobs: int, rounds: int, delay: float, work: Path, model: Path) -> list[tuple[dict[str, float],
                                                                                                float]]:
    """Per round: ({profile: seconds alone}, seconds both)."""
    catalog = load_catalog([builtin_profiles_dir()])
    digest = hashlib.sha256(b"bench-parallel").hexdigest()
    ipa = build_placeholder_ipa(work / "h.ipa")
    results = []
    async with VirtualFarm(list(PROFILES), env={"MLFARM_HARNESS_DELAY_FACTOR": str(delay)}) as farm:
        devices = {p: await connect_device(farm.udid(p), usbmux_address=farm.address, catalog=catalog,
                                           options=UsbmuxOptions(ipa)) for p in PROFILES}
        for device in devices.values():  # install + push + one job, outside the timings
            await worker(device, model, digest, 1, "warm")

        async def both(tag: str) -> float:
            start = time.perf_counter()
            await asyncio.gather(*(worker(d, model, digest, jobs, f"{tag}-{p}") for p, d in devices.items()))
            return time.perf_counter() - start

        for r in range(rounds):
            order = list(devices.items()) if r % 2 == 0 else list(devices.items())[::-1]
            together = await both(f"both{r}") if r % 2 else 0.0
            alone = {p: await worker(d, model, digest, jobs, f"alone{r}-{p}") for p, d in order}
            together = together or await both(f"both{r}")
            results.append((alone, together))
        for device in devices.values():
            await device.cleanup()
    return results


def report(label: str, rounds: list[tuple[dict[str, float], float]], *, target: bool) -> bool:
    ratios = [both / max(alone.values()) for alone, both in rounds]
    ratio = statistics.median(ratios)
    print(f"{label}:")
    for n, (alone, both) in enumerate(rounds):
        singles = ", ".join(f"{p} {s:.1f} s" for p, s in alone.items())
        print(f"  round {n + 1}: alone {singles}; both in parallel {both:.1f} s "
              f"(serial {sum(alone.values()):.1f} s) -> ratio {both / max(alone.values()):.2f}")
    line = f"  median ratio both / slower alone {ratio:.2f}"
    print(line + (f"   target <= {TARGET}: {'ok' if ratio <= TARGET else 'OVER TARGET'}" if target else
                  "   (host-bound reference, not the target)"))
    return ratio <= TARGET


def calibrate(work: Path, model: Path, device_s: float) -> float:
    """The delay factor that makes one job's predictions take about ``device_s`` seconds."""
    root = work / "calibrate"
    harness_alone(root, model, "c0", rows=ROWS, iterations=ITERATIONS)
    result = json.loads((root / "jobs" / "c0" / "result.json").read_text())
    predicted_ms = (ITERATIONS + 2) * statistics.median(result["latencies_ms"])
    return max(device_s * 1000.0 / predicted_ms, 1.0)


async def main(jobs: int, rounds: int, device_s: float, host_bound: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="mlfarm-bench-"))
    try:
        model = build_layer_model(work / "layer.mlpackage", rows=ROWS, cols=4096)  # ~ms per prediction
        delay = calibrate(work, model, device_s)
        ok = report(f"{jobs} jobs per device, ~{device_s:g} s of (emulated) device work per job "
                    f"(delay factor {delay:.0f})", await measure(jobs, rounds, delay, work, model), target=True)
        if host_bound:
            report(f"{jobs} jobs per device, no device work (the harness's CPU competes for the shared cores)",
                   await measure(jobs, rounds, 1.0, work, model), target=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="jobs per device [2]")
    parser.add_argument("--rounds", type=int, default=3, help="alone/alone/both rounds [3]")
    parser.add_argument("--device-s", type=float, default=8.0, help="emulated device seconds per job [8]")
    parser.add_argument("--host-bound", action="store_true", help="also measure without the device work")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.jobs, args.rounds, args.device_s, args.host_bound)))
