"""What analysing and planning the full-size SD-1.5 UNet costs, beside torch's own forward pass of the same UNet.

For each built variant of ``examples/sd15-unet-random.yaml`` (default: fp16-none-original and
fp16-palette6-original) in one artifact store, measured in one process, in this order:

    static      mlfarm's static analysis (weights, FLOPs, liveness, tensors at the peak) from the package's
                protobuf (``mil.static_load``); median of 3
    ct-load     the same analysis after coremltools' milproto loader (what ``analyze`` did before); once
    psnr        the PSNR step: load for execution + one MIL-executor run at the artifact's precision (fp16
                emulation) + compare with the reference
    torch       torch's fp32 forward of the same UNet (original attention) on the same inputs: the reference
                every ratio is taken against

then ``mlfarm plan SPEC --devices all`` in a child process, twice: with the artifacts' analysis sections removed
(it analyses each artifact once) and again (everything cached). Build the artifacts first (~4 min, 6.5 GB):

    flock /tmp/mlfarm-big.lock .venv/bin/mlfarm --artifacts /work/sd15-store build SPEC

    .venv/bin/python bench/analysis_sd15.py --artifacts /work/sd15-store [--variants a,b] [--no-psnr]

The script re-executes itself under ``flock /tmp/mlfarm-big.lock`` (the PSNR run needs ~10 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LOCK = "/tmp/mlfarm-big.lock"
VARIANTS = ("fp16-none-original", "fp16-palette6-original")
CLI = "from orchestrator.cli import entry_point; entry_point()"


def write_spec(folder: Path, variants: list[str]) -> Path:
    """examples/sd15-unet-random.yaml restricted to ``variants`` (same name, so the same store entries)."""
    data = yaml.safe_load((REPO / "examples" / "sd15-unet-random.yaml").read_text())
    data["variants"]["weights"] = sorted({v.split("-")[1] for v in variants})
    data["variants"]["attention"] = sorted({v.split("-", 2)[2] for v in variants})
    path = folder / "sd15.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench_artifact(entry: Any, inputs: dict[str, Any], reference: dict[str, Any], psnr_step: bool) -> dict[str, Any]:
    from orchestrator.mil.analysis import analyze_program
    from orchestrator.mil.load import load
    from orchestrator.mil.quality import evaluate
    from orchestrator.mil.static_load import load_static

    static = [timed(lambda: analyze_program(load_static(entry.path))) for _ in range(3)]
    figures: dict[str, Any] = {"static_s": statistics.median(s for s, _ in static)}
    ct_s, ct_analysis = timed(lambda: analyze_program(load(entry.path)))
    figures["ct_load_s"] = ct_s
    figures["same_figures"] = ct_analysis.to_dict(top=8) == static[0][1].to_dict(top=8)
    if psnr_step:
        figures["psnr_s"], quality = timed(lambda: evaluate(load(entry.path), reference, inputs, seed=0))
        figures["psnr_db"] = round(quality.psnr_min_db, 1)
    return figures


def plan_seconds(store: Path, spec_path: Path, db: Path) -> tuple[float, int]:
    argv = [sys.executable, "-c", CLI, "--artifacts", str(store), "--db", str(db), "plan", str(spec_path),
            "--devices", "all", "--json"]
    seconds, proc = timed(lambda: subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False))
    if proc.returncode != 0:
        raise SystemExit(f"plan failed: {proc.stderr[-2000:]}")
    return seconds, len(json.loads(proc.stdout)["devices"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True, help="store holding the built SD-1.5 variants")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-psnr", action="store_true", help="skip the PSNR step and the torch reference")
    args = parser.parse_args()
    if os.environ.get("MLFARM_BIG_LOCK") != "held":
        os.environ["MLFARM_BIG_LOCK"] = "held"
        os.execvp("flock", ["flock", LOCK, sys.executable, *sys.argv])
    import torch

    from orchestrator.build.store import ArtifactStore
    from orchestrator.models import load_source
    from orchestrator.spec import load_spec

    variants = [v for v in args.variants.split(",") if v]
    store = ArtifactStore(args.artifacts)
    with tempfile.TemporaryDirectory(prefix="mlfarm-bench-analysis-") as tmp:
        spec = load_spec(write_spec(Path(tmp), variants))
        entries = [store.get(spec.name, "unet", v) for v in variants]
        missing = [v for v, e in zip(variants, entries, strict=True) if e is None]
        if missing:
            raise SystemExit(f"not built in {store.root}: {missing}; see the module docstring")
        source = load_source(spec.model)
        inputs = source.example_inputs("unet", spec.model.components["unet"], spec.measure.seed)
        module = source.module("unet", attention="original")
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        torch_s, reference = 0.0, {}
        if not args.no_psnr:
            with torch.inference_mode():
                module(**tensors)  # warm-up
                torch_s, out = timed(lambda: module(**tensors))
            reference = {name: t.float().numpy() for name, t in zip(source.output_names("unet"), out, strict=True)}
            print(f"torch fp32 forward of the SD-1.5 UNet (2x4x64x64): {torch_s:.1f} s "
                  f"({torch.get_num_threads()} threads)", flush=True)
        for variant, entry in zip(variants, entries, strict=True):
            f = bench_artifact(entry, inputs, reference, not args.no_psnr)
            line = (f"{variant:<24} static {f['static_s']:.2f} s | coremltools load + analysis {f['ct_load_s']:.1f} s"
                    f" ({f['ct_load_s'] / f['static_s']:.0f}x) | same figures: {f['same_figures']}")
            if torch_s:
                line += (f" | PSNR step {f['psnr_s']:.0f} s = {f['psnr_s'] / torch_s:.1f}x torch forward "
                         f"({f['psnr_db']} dB); static = {f['static_s'] / torch_s:.2f}x torch forward")
            print(line, flush=True)
        for entry in entries:  # the first plan analyses each artifact (once); the second finds it all cached
            fresh = store.get(entry.spec_name, entry.component, entry.variant)
            manifest = {k: v for k, v in fresh.manifest.items() if k != "analysis"}
            (store.blob_dir(fresh.sha256) / "manifest.json").write_text(json.dumps(manifest, indent=2))
        db = Path(tmp) / "results.db"
        spec_path = Path(tmp) / "sd15.yaml"
        cold, devices = plan_seconds(args.artifacts, spec_path, db)
        warm, _ = plan_seconds(args.artifacts, spec_path, db)
        print(f"plan --devices all ({devices} device configurations, {len(variants)} artifacts): "
              f"{cold:.1f} s analysing them, {warm:.1f} s cached", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
