"""Build the SD-1.5-size UNet (fp16 + palette6) and report wall time and peak RSS.

The UNet is ``builtin:sd15-unet-random`` (diffusers' UNet2DConditionModel with SD-1.5's config, 860M
parameters, seeded random weights) at 512x512: latent [2, 4, 64, 64], timestep [2], text [2, 77, 768].
``mlfarm build`` runs in a child process into a temporary store; a second child does a bare
torch.export + ct.convert of the same UNet (no mlfarm) as the reference measured in the same run. Peak RSS
is each child's own ``ru_maxrss`` from ``wait4``. Both run under the big-job lock (/tmp/mlfarm-big.lock):
the script re-executes itself under ``flock`` so two such jobs never share the machine's RAM.

    .venv/bin/python bench/build_sd15.py [--attention original] [--kmeans fast] [--no-baseline]

Reference figures from the issue (this machine, a bare conversion): export ~7 s, convert ~60 s, 6.5 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LOCK = "/tmp/mlfarm-big.lock"
BRIEF = {"export": 7.0, "convert": 60.0, "peak_gb": 6.5}
CLI = "from orchestrator.cli import entry_point; entry_point()"
SHAPES = {"sample": [2, 4, 64, 64], "timestep": [2], "encoder_hidden_states": [2, 77, 768]}

BARE = """
import json, time, numpy as np, torch, coremltools as ct
from orchestrator.models import load_source
unet = load_source("builtin:sd15-unet-random").module("unet", "original")
shapes = {shapes!r}
args = tuple(torch.zeros(s) for s in shapes.values())
t0 = time.perf_counter()
with torch.no_grad():
    ep = torch.export.export(unet, args).run_decompositions({{}})
t1 = time.perf_counter()
ct.convert(ep, inputs=[ct.TensorType(name=n, shape=s, dtype=np.float32) for n, s in shapes.items()],
           outputs=[ct.TensorType(name="noise_pred", dtype=np.float32)], convert_to="mlprogram",
           minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT16, skip_model_load=True)
t2 = time.perf_counter()
print("STAGES", json.dumps({{"export": t1 - t0, "convert": t2 - t1}}))
"""


def run_child(argv: list[str]) -> tuple[float, float, float, str]:
    """Run a child; return (wall seconds, CPU seconds, its peak RSS in GB, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]}... exited {proc.returncode}:\n{text[-2000:]}\n{errors[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime  # on a shared machine, wall time also measures the neighbours
    return wall, cpu, usage.ru_maxrss / 1024 / 1024, text  # ru_maxrss is in KiB on Linux


def write_spec(folder: Path, attention: str) -> Path:
    spec = {"name": "sd15-unet-bench", "model": {"source": "builtin:sd15-unet-random", "components": {
        "unet": {"inputs": {n: {"shape": s} for n, s in SHAPES.items()}}}},
        "variants": {"precision": ["fp16"], "weights": ["none", "palette6"], "attention": [attention]},
        "app": {"min_ios": 17}, "devices": ["host"]}
    path = folder / "sd15-unet.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def mlfarm_build(folder: Path, attention: str, kmeans: str) -> dict[str, float]:
    argv = [sys.executable, "-c", CLI, "--artifacts", str(folder / "artifacts"), "build",
            str(write_spec(folder, attention)), "--kmeans", kmeans, "--json"]
    wall, cpu, peak, out = run_child(argv)
    data = json.loads(out)
    manifests = {}
    for artifact in data["artifacts"]:
        manifest = json.loads((Path(artifact["path"]).parent / "manifest.json").read_text())
        manifests[artifact["variant"].split("-")[1]] = manifest
    stages = manifests["none"]["build"]["stages"]
    return {"wall": wall, "cpu": cpu, "peak_gb": peak, "export": stages["export"], "convert": stages["convert"],
            "save_fp16": stages["save"], "palette6": manifests["palette6"]["build"]["stages"]["compress"],
            "save_palette6": manifests["palette6"]["build"]["stages"]["save"],
            "fp16_gb": manifests["none"]["weights"]["bytes_stored"] / 1e9,
            "palette6_gb": manifests["palette6"]["weights"]["bytes_stored"] / 1e9}


def bare_convert() -> dict[str, float]:
    wall, cpu, peak, out = run_child([sys.executable, "-c", BARE.format(shapes=SHAPES)])
    stages = json.loads(out.split("STAGES", 1)[1].strip())
    return {"wall": wall, "cpu": cpu, "peak_gb": peak, **stages}


def report(ours: dict[str, float], bare: dict[str, float] | None, kmeans: str) -> None:
    def cell(d: dict[str, float] | None, key: str, unit: str) -> str:
        return f"{d[key]:8.1f} {unit}" if d and key in d else f"{'-':>8}   "

    print(f"SD-1.5 UNet (860M params) at 512x512, fp16 + palette6 (k-means: {kmeans})")
    print(f"{'':24}{'mlfarm build':>14}{'bare ct.convert':>18}{'issue reference':>18}")
    for key, unit in (("export", "s"), ("convert", "s")):
        print(f"{key:24}{cell(ours, key, unit):>14}{cell(bare, key, unit):>18}{cell(BRIEF, key, unit):>18}")
    for key in ("palette6", "save_fp16", "save_palette6"):
        print(f"{key:24}{cell(ours, key, 's'):>14}")
    print(f"{'wall (whole child)':24}{cell(ours, 'wall', 's'):>14}{cell(bare, 'wall', 's'):>18}")
    print(f"{'CPU user+sys':24}{cell(ours, 'cpu', 's'):>14}{cell(bare, 'cpu', 's'):>18}")
    print(f"{'peak RSS':24}{cell(ours, 'peak_gb', 'GB'):>14}{cell(bare, 'peak_gb', 'GB'):>18}"
          f"{cell(BRIEF, 'peak_gb', 'GB'):>18}")
    print(f"{'weights stored':24}{ours['fp16_gb']:9.2f} GB fp16, {ours['palette6_gb']:.2f} GB palette6 "
          f"(ratio {ours['palette6_gb'] / ours['fp16_gb']:.3f}, 6/16 = 0.375)")
    if bare:
        print(f"mlfarm / bare: wall x{ours['wall'] / bare['wall']:.2f} (mlfarm also palettizes, hashes and saves "
              f"two packages), peak RSS x{ours['peak_gb'] / bare['peak_gb']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attention", default="original", choices=["original", "split_einsum", "split_einsum_v2"])
    parser.add_argument("--kmeans", default="fast", choices=["fast", "coremltools"],
                        help="coremltools' scikit-learn k-means needs about an hour for this UNet on 2 cores")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare ct.convert reference")
    args = parser.parse_args()
    if os.environ.get("MLFARM_BIG_LOCK") != "held":
        os.environ["MLFARM_BIG_LOCK"] = "held"
        os.execvp("flock", ["flock", LOCK, sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="mlfarm-sd15-") as tmp:
        ours = mlfarm_build(Path(tmp), args.attention, args.kmeans)
    bare = None if args.no_baseline else bare_convert()
    report(ours, bare, args.kmeans)


if __name__ == "__main__":
    main()
