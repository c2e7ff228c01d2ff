"""tiny-sd: a cold build of every variant, then the same build again (all cache hits).

Runs ``mlfarm build examples/tiny-sd.yaml --json`` twice in child processes on a fresh temporary store and
prints both wall times side by side (the reference for a cache hit is the cold build of the same run), plus
the in-process cost of planning the cached build (what a cache hit costs without Python start-up).

    .venv/bin/python bench/build_tiny.py [--variants ID,ID] [--components A,B]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "examples" / "tiny-sd.yaml"
CLI = "from orchestrator.cli import entry_point; entry_point()"


def build(store: Path, extra: list[str]) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CLI, "--artifacts", str(store), "build", str(SPEC), *extra, "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, json.loads(out)


def plan_seconds(store: Path, components: list[str] | None, variants: list[str] | None) -> float:
    from orchestrator.build.builder import plan_build
    from orchestrator.build.store import ArtifactStore
    from orchestrator.spec import load_spec

    start = time.perf_counter()
    plan = plan_build(load_spec(SPEC), ArtifactStore(store), components=components, variants=variants)
    seconds = time.perf_counter() - start
    assert not plan.misses, "the second build left misses"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components")
    parser.add_argument("--variants")
    args = parser.parse_args()
    extra = [*(["--components", args.components] if args.components else []),
             *(["--variants", args.variants] if args.variants else [])]
    with tempfile.TemporaryDirectory(prefix="mlfarm-tiny-") as tmp:
        store = Path(tmp) / "artifacts"
        cold, first = build(store, extra)
        cached, second = build(store, extra)
        planned = plan_seconds(store, args.components.split(",") if args.components else None,
                               args.variants.split(",") if args.variants else None)
    print(f"tiny-sd: {first['built']} artifacts built cold, {second['cached']} cached on the second build")
    print(f"{'cold build (child process)':36}{cold:9.2f} s")
    print(f"{'cached build (child process)':36}{cached:9.2f} s   x{cached / cold:.4f} of cold")
    print(f"{'cached build, in process (plan only)':36}{planned:9.3f} s   (hash checks of every blob included)")


if __name__ == "__main__":
    main()
