"""Activation liveness at SD-1.5 scale: static peak vs the executor's tracked peak, original vs split_einsum_v2.

The block is SD 1.5's first-level self-attention transformer block (320 channels, 8 heads of 40) at a 64x64
latent (4096 tokens), batch 2 (classifier-free guidance), fp16, with the project's attention implementations
(``orchestrator.models.attention``). For each implementation the script prints the static liveness peak and
the tensors alive there (``orchestrator.mil.analyze``), then runs the block on the executor and prints the peak
of live intermediate bytes it tracked while freeing tensors, and its own process peak RSS for scale. The
reference figure is DESIGN.md's: 2 x 8 x 4096 x 4096 fp16 scores = 512 MiB; split_einsum_v2 must be >= 4x lower.

    .venv/bin/python bench/liveness.py [--latent 64]

Runs under the big-job lock (/tmp/mlfarm-big.lock): executing ``original`` at 64x64 needs ~3 GB.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LOCK = "/tmp/mlfarm-big.lock"
MIB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latent", type=int, default=64)
    args = parser.parse_args()
    if os.environ.get("MLFARM_BIG_LOCK") != "held":
        os.environ["MLFARM_BIG_LOCK"] = "held"
        os.execvp("flock", ["flock", LOCK, sys.executable, *sys.argv])
    warnings.filterwarnings("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)

    from orchestrator.mil import Executor, analyze, load
    from tests.mil.blocks import attention_block, block_inputs, convert

    inputs = block_inputs(args.latent * args.latent)
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="mlfarm-bench-liveness-") as folder:
        for attention in ("original", "split_einsum_v2"):
            start = time.perf_counter()
            program = load(convert(attention_block(attention), inputs, Path(folder) / f"{attention}.mlpackage"))
            static = analyze(program)
            print(f"\n{attention} ({len(program.ops)} ops, converted in {time.perf_counter() - start:.0f} s)")
            print(f"  static peak    {static.activation_peak_bytes / MIB:10.1f} MiB at {static.peak_op} "
                  f"({static.peak_op_type})")
            for t in static.top_tensors(4):
                print(f"    {t.name:<28} {'x'.join(map(str, t.shape)):<20} {t.dtype} {t.bytes / MIB:8.1f} MiB "
                      f"({t.producer})")
            start = time.perf_counter()
            run = Executor(program).run(inputs)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            same = "==" if run.peak_live_bytes == static.activation_peak_bytes else "!="
            print(f"  executor peak  {run.peak_live_bytes / MIB:10.1f} MiB at {run.peak_op} ({same} static; "
                  f"run {time.perf_counter() - start:.1f} s, process max RSS so far {rss:,.0f} MiB)")
            peaks[attention] = static.activation_peak_bytes
    ratio = peaks["original"] / peaks["split_einsum_v2"]
    print(f"\nreference: scores 2x8x{args.latent ** 2}x{args.latent ** 2} fp16 = "
          f"{2 * 8 * args.latent ** 4 * 2 / MIB:,.0f} MiB; original/split_einsum_v2 peak ratio {ratio:.1f}x "
          f"(target >= 4x)")


if __name__ == "__main__":
    main()
