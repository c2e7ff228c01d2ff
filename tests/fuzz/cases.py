"""Generated hostile inputs, one per seed, shared by the hypothesis suite (tests/fuzz) and bench/fuzz.py.

Each ``*_case(rng, folder)`` writes or builds one input from a ``random.Random`` and runs it through mlfarm's
real entry point, returning a ``Verdict``: accepted, or rejected with whether every problem named its file, its
key and a fix. Anything else that escapes (an exception other than mlfarm's own) is a traceback, which is the
bug being looked for.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from orchestrator.errors import ContractError, MlfarmError, Problem

REPO = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((REPO / "examples" / "tiny-sd.yaml").read_text())
PROFILE = {"id": "lab-phone", "name": "Lab phone", "family": "iphone", "product_types": ["iPhone99,1"],
           "chip": "A14 Bionic", "ram_gb": 4, "os": {"name": "iOS", "max": 17}, "sources": ["lab"],
           "memory": {"app_limit_mb": 2048, "source": "lab", "basis": "jetsam-observed"}}
RESULT = {"schema_version": 1, "job_id": "run/0001", "status": "ok",
          "harness": {"name": "t", "version": "1", "runtime": "mil-executor"},
          "device": {"model": "m", "os": "o", "thermal_state_before": "nominal", "thermal_state_after": "fair",
                     "low_power_mode": False},
          "load_ms": {"cold": 1.0, "warm": 0.5}, "first_predict_ms": 2.0, "latencies_ms": [1.0, 1.1],
          "memory": {"peak_phys_footprint_mb": 10.0, "baseline_phys_footprint_mb": 5.0, "min_available_mb": None,
                     "samples": [[0.0, 5.0]]}, "outputs": {"y": "out_y.npy"}, "error": None}

HOSTILE: list[Any] = [
    None, True, 0, -1, 1, 2**32, 2**63, 10**30, 0.0, -0.5, 1e308, float("inf"), float("-inf"), float("nan"), "",
    "x", "window:0", "window:-1", "../../etc", "\ud800", "é" * 50, "a" * 5000, [], [None], [1, 2, 3], [[1]],
    {}, {"a": 1}, {"*": 0}, {"*": float("inf")}, {"<<": {"a": 1}}, "2GB", "last", "none", "palette5",
]


@dataclass(frozen=True)
class Verdict:
    kind: str  # accepted | rejected | traceback
    problems: int = 0
    with_file: int = 0
    with_key: int = 0
    with_fix: int = 0
    detail: str = ""


def _verdict_for(problems: list[Problem]) -> Verdict:
    return Verdict("rejected", len(problems), sum(bool(p.file) for p in problems),
                   sum(bool(p.key) for p in problems), sum(bool(p.fix) for p in problems),
                   "; ".join(f"{p} [fix: {p.fix}]" for p in problems if not (p.file and p.fix))[:500])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def mutate(doc: Any, rng: random.Random, steps: int) -> Any:
    """``doc`` with ``steps`` random edits: a value replaced by a hostile one, a key deleted or added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(steps):
        paths = _paths(doc)
        if not paths:
            return rng.choice(HOSTILE)
        path = rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        action = rng.random()
        if action < 0.7:
            parent[path[-1]] = rng.choice(HOSTILE)
        elif action < 0.85 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "<<", "gates", "measure", "seed", "x" * 30])] = rng.choice(HOSTILE)
    return doc


def _yaml_text(doc: Any, rng: random.Random) -> bytes:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, UnicodeEncodeError):
        text = b"{}"
    if rng.random() < 0.1:  # raw damage: truncation, a stray byte, a tab
        cut = rng.randrange(len(text) + 1)
        text = text[:cut] + rng.choice([b"", b"\xff", b"\t", b": :", b"&a *b", b"<<: *nope"]) + text[cut:]
    return text


def spec_case(rng: random.Random, folder: Path) -> Verdict:
    from orchestrator.spec import load_spec

    path = folder / "spec.yaml"
    path.write_bytes(_yaml_text(mutate(TINY, rng, rng.randint(1, 4)), rng))
    try:
        load_spec(path)
    except MlfarmError as exc:
        return _verdict_for(list(getattr(exc, "problems", [])) or [Problem(str(path), "", exc.message, exc.fix)])
    return Verdict("accepted")


def profile_case(rng: random.Random, folder: Path) -> Verdict:
    from orchestrator.profiles import load_profile_file

    path = folder / "iphone" / "lab-phone.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_yaml_text(mutate(PROFILE, rng, rng.randint(1, 4)), rng))
    _profile, problems = load_profile_file(path)
    return _verdict_for(problems) if problems else Verdict("accepted")


def result_case(rng: random.Random, folder: Path) -> Verdict:
    from orchestrator.harness.contract import load_outputs, read_result

    doc = mutate(RESULT, rng, rng.randint(0, 3))
    text = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    trick = rng.random()
    result = folder / "result.json"
    if trick < 0.05:
        result.mkdir()
    elif trick < 0.1:
        os.mkfifo(result)
    elif trick < 0.15:
        result.write_text(json.dumps(RESULT).replace("2.0", "9" * rng.choice([30, 5000])))
    else:
        result.write_bytes(text)
    npy = folder / "out_y.npy"
    if rng.random() < 0.2:
        buffer = io.BytesIO()
        np.savez(buffer, y=np.ones(3, np.float32))
        npy.write_bytes(buffer.getvalue())
    elif rng.random() < 0.2:
        with npy.open("wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": rng.choice(["<f4", "|O", "<c8"]),
                                                     "fortran_order": False, "shape": (1 << 40,)})
    else:
        np.save(npy, np.arange(4, dtype=np.float32))
    try:
        load_outputs(folder, read_result(folder, job_id="run/0001"))
    except ContractError as exc:
        return _verdict_for(exc.problems)
    return Verdict("accepted")


CLI_TOKENS = ["spec", "check", "profiles", "runs", "report", "plan", "--json", "--db", "--devices", "host",
              "--family", "iphone", "--profiles", "--limit", "-1", "0", "999999999999", "nan", "", "\udcff",
              "examples/tiny-sd.yaml", "/dev/zero", "/nonexistent", "--help", "--resume", "x", "all"]


def cli_case(rng: random.Random, folder: Path) -> Verdict:
    """One random command line run in-process; a rejection must be exit 2 with a fix (or usage) message."""
    from orchestrator.cli import main

    argv = [rng.choice(["spec", "profiles", "runs"])] + [rng.choice(CLI_TOKENS) for _ in range(rng.randint(0, 5))]
    argv = [str(folder / "db.sqlite") if a == "--db-path" else a for a in argv]
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.chdir(cwd)
    text = out.getvalue() + err.getvalue()
    if "Traceback" in text or code not in (0, 1, 2):
        return Verdict("traceback", detail=f"{argv!r} -> exit {code}: {text[-400:]}")
    if code == 2:
        has_fix = "fix:" in text or "Usage:" in text or '"fix"' in text
        return Verdict("rejected", 1, 1, 1, int(has_fix), "" if has_fix else f"{argv!r}: {text[-300:]}")
    return Verdict("accepted")


KINDS: dict[str, Callable[[random.Random, Path], Verdict]] = {
    "spec": spec_case, "profile": profile_case, "result": result_case, "cli": cli_case}


def run_case(kind: str, seed: int, folder: Path) -> Verdict:
    """One case; any exception that is not mlfarm's own is reported as a traceback verdict."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return KINDS[kind](random.Random(f"{kind}/{seed}"), folder)
    except Exception as exc:  # the bug being looked for: report it, keep going
        return Verdict("traceback", detail=f"{kind} seed {seed}: {type(exc).__name__}: {exc}"[:500])
