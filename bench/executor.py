"""mlfarm's MIL executor vs PyTorch eager on the same component, same attention, same inputs, same run.

For every tiny-sd component and a few variants, the built Core ML artifact runs on the executor (at the
artifact's own precision: fp32 artifacts in fp32, fp16 artifacts in fp16 device emulation) and the fp32 PyTorch
module with the same attention implementation runs eagerly; runs alternate (executor, torch, executor, ...)
so both see the same machine load, and the figure is the ratio of medians. Target: executor <= 2x torch.

    .venv/bin/python bench/executor.py [--repeats 7] [--artifacts DIR]
    .venv/bin/python bench/executor.py --sd15        # also the SD-1.5-size UNet at 64x64 (under the big-job lock)

The SD-1.5 run converts ``builtin:sd15-unet-random`` (fp16, iOS 17) and needs ~10 GB; the script re-executes
itself under ``flock /tmp/mlfarm-big.lock`` so it never shares the machine's RAM with another such job.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LOCK = "/tmp/mlfarm-big.lock"
VARIANTS = ("fp32-none-original", "fp16-none-original", "fp16-none-split_einsum_v2", "fp16-palette6-split_einsum_v2")


Times = list[tuple[float, float]]  # (wall seconds, process CPU seconds) per call


def interleaved(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[Times, Times]:
    """Wall and CPU times of a and b, alternating, after one warm-up call each."""
    a(), b()
    ta: Times = []
    tb: Times = []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return ta, tb


def row(name: str, ours: Times, theirs: Times, psnr: float) -> str:
    """Medians of wall time and the wall ratio; the CPU-time ratio is steadier when the machine is shared."""
    wo, wt = (statistics.median(t[0] for t in x) for x in (ours, theirs))
    co, ct = (statistics.median(t[1] for t in x) for x in (ours, theirs))
    return (f"{name:<46} executor {wo * 1000:9.1f} ms   torch eager {wt * 1000:9.1f} ms   "
            f"ratio wall {wo / wt:5.2f}  cpu {co / ct:5.2f}   PSNR {psnr:6.1f} dB")


def bench_tiny(repeats: int, artifacts: Path | None) -> None:
    import torch

    from orchestrator.build.builder import build_spec
    from orchestrator.build.store import ArtifactStore
    from orchestrator.mil import Executor, load, psnr
    from orchestrator.models import load_source
    from orchestrator.spec import load_spec

    spec = load_spec(REPO / "examples" / "tiny-sd.yaml")
    root = artifacts or Path(tempfile.mkdtemp(prefix="mlfarm-bench-executor-"))
    store = ArtifactStore(root)
    print(f"building/reusing tiny-sd artifacts in {root} ...", flush=True)
    entries = {(e.component, e.variant): e for e in build_spec(spec, store, variants=VARIANTS)}
    source = load_source(spec.model)
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, repeats: {repeats}")
    for component in source.components():
        inputs = source.example_inputs(component, spec.model.components[component], spec.measure.seed)
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        for variant in VARIANTS:
            executor = Executor(load(entries[(component, variant)].path))
            module = source.module(component, attention=variant.rsplit("-", 1)[-1])

            def eager(module: Any = module, tensors: dict[str, Any] = tensors) -> Any:
                with torch.inference_mode():
                    return module(**tensors)

            def ours_run(executor: Any = executor, inputs: dict[str, Any] = inputs) -> Any:
                return executor.run(inputs)

            ours, theirs = interleaved(ours_run, eager, repeats)
            reference = eager()[0].numpy()
            quality = psnr(reference, executor.run(inputs).outputs[source.output_names(component)[0]])
            print(row(f"{component} {variant}", ours, theirs, quality), flush=True)


def bench_sd15(repeats: int) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from orchestrator.mil import Executor, load, psnr
    from orchestrator.models import load_source
    from tests.mil.blocks import convert

    source = load_source("builtin:sd15-unet-random")
    rng = np.random.default_rng(0)
    inputs = {"sample": rng.standard_normal((2, 4, 64, 64)).astype(np.float32),
              "timestep": np.array([500.0, 500.0], np.float32),
              "encoder_hidden_states": rng.standard_normal((2, 77, 768)).astype(np.float32)}
    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
    for attention in ("original",):  # converts in ~1 min; split_einsum_v2 has thousands more ops
        module = source.module("unet", attention=attention)
        with tempfile.TemporaryDirectory(prefix="mlfarm-bench-sd15-") as folder:
            start = time.perf_counter()
            path = convert(module, inputs, Path(folder) / "unet.mlpackage", output="noise_pred")
            print(f"sd15 unet {attention}: converted in {time.perf_counter() - start:.0f} s", flush=True)
            start = time.perf_counter()
            executor = Executor(load(path))
            print(f"  loaded and prepared in {time.perf_counter() - start:.0f} s", flush=True)

            def eager(module: Any = module) -> Any:
                with torch.inference_mode():
                    return module(**tensors)

            def ours_run(executor: Any = executor) -> Any:
                return executor.run(inputs)

            ours, theirs = interleaved(ours_run, eager, repeats)
            quality = psnr(eager()[0].numpy(), executor.run(inputs).outputs["noise_pred"])
            print(row(f"sd15 unet fp16-none-{attention} (64x64)", ours, theirs, quality), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--artifacts", type=Path, help="reuse this artifact store (default: a temporary one)")
    parser.add_argument("--sd15", action="store_true", help="also the SD-1.5 UNet at 64x64 (big-job lock)")
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's choice)")
    args = parser.parse_args()
    if args.sd15 and os.environ.get("MLFARM_BIG_LOCK") != "held":
        os.environ["MLFARM_BIG_LOCK"] = "held"
        os.execvp("flock", ["flock", LOCK, sys.executable, *sys.argv])
    warnings.filterwarnings("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench_tiny(args.repeats, args.artifacts)
    if args.sd15:
        bench_sd15(max(2, args.repeats // 3))


if __name__ == "__main__":
    main()
