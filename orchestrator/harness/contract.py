"""The harness contract: job.json in, result.json (+ output .npy files) out, validated on both sides.

The JSON Schemas live in ``harness_app/contract/`` and are shared by the Python host harness and the Swift
app. Everything coming back from a harness is untrusted: ``read_result`` reads regular files only, bounds
sizes, parses strictly (finite numbers, bounded integers, valid Unicode: ``untrusted.py``), validates the
schema (keeping the first ``MAX_PROBLEMS`` errors, never collecting all), checks the job id, and refuses
output names that would leave the job folder (``..``, absolute paths, symlinks) or that two outputs share;
``load_outputs`` checks each ``.npy`` header before reading its data. Problems become ``ContractError``
with the file and key, never a traceback.

Layout under a harness root (on a device: the app's Documents folder; on the host: the device's work folder).
Models are pushed once and shared by every job that uses them:

    <root>/
        models/<sha256>.mlpackage/     job.model = "models/<sha256>.mlpackage" (relative to the root)
        jobs/<job-folder>/
            job.json
            result.json                written by the harness
            out_<name>.npy             first-prediction outputs, when return_outputs is true
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from orchestrator.config import contract_dir
from orchestrator.errors import ContractError, Problem
from orchestrator.harness.untrusted import UntrustedFileError, read_npy, read_regular, strict_json

SCHEMA_VERSION = 1
MAX_RESULT_BYTES = 32 << 20
MAX_OUTPUT_BYTES = 1 << 30  # all of one job's outputs together
MAX_PROBLEMS = 20


@cache
def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((contract_dir() / f"{name}.schema.json").read_text())
    return data


def _problems(doc: Any, name: str, display: str) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema(name))
    # the first errors only: a hostile document can hold hundreds of thousands, and sorting them all first
    # took minutes and gigabytes
    first = itertools.islice(validator.iter_errors(doc), MAX_PROBLEMS)
    out = []
    for err in sorted(first, key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        message = err.message if len(err.message) <= 300 else err.message[:297] + "..."
        out.append(Problem(display, key, message, f"see harness_app/contract/{name}.schema.json"))
    return out


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    seed: int = 0
    high: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "seed": self.seed}
        if self.high is not None:
            data["high"] = self.high
        return data


@dataclass(frozen=True)
class Job:
    job_id: str
    model: str
    compute_units: str
    inputs: tuple[InputSpec, ...]
    warmup: int = 1
    iterations: int = 10
    sample_interval_ms: int = 20
    timeout_s: float = 600.0
    return_outputs: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "job_id": self.job_id, "model": self.model,
            "compute_units": self.compute_units, "inputs": [i.to_json() for i in self.inputs],
            "warmup": self.warmup, "iterations": self.iterations, "sample_interval_ms": self.sample_interval_ms,
            "timeout_s": self.timeout_s, "return_outputs": self.return_outputs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, display: str = "job.json") -> Job:
        problems = _problems(data, "job", display)
        if problems:
            raise ContractError(problems)
        return cls(
            job_id=data["job_id"], model=data["model"], compute_units=data["compute_units"],
            inputs=tuple(InputSpec(i["name"], tuple(i["shape"]), i["dtype"], i["seed"], i.get("high"))
                         for i in data["inputs"]),
            warmup=data["warmup"], iterations=data["iterations"], sample_interval_ms=data["sample_interval_ms"],
            timeout_s=float(data["timeout_s"]), return_outputs=data["return_outputs"],
        )

    def write(self, job_dir: Path) -> Path:
        problems = _problems(self.to_json(), "job", str(job_dir / "job.json"))
        if problems:  # our own bug, but never send a device something it must reject
            raise ContractError(problems)
        path = job_dir / "job.json"
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path


@dataclass(frozen=True)
class HarnessResult:
    """A validated result.json; ``raw`` keeps the document as it came (already schema-checked)."""

    job_id: str
    status: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def latencies_ms(self) -> list[float]:
        return list(self.raw["latencies_ms"])

    @property
    def memory(self) -> dict[str, Any]:
        return dict(self.raw["memory"])

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.raw["outputs"])

    @property
    def error(self) -> str | None:
        return self.raw.get("error")


def load_job(path: Path) -> Job:
    display = str(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError([Problem(display, "", f"cannot read the job: {exc}", "regenerate the job")]) from exc
    return Job.from_json(data, display=display)


def _inside(job_dir: Path, name: str) -> Path | None:
    """The file ``name`` inside ``job_dir``, or None if it would leave the folder or is a symlink."""
    if os.path.isabs(name) or ".." in Path(name).parts or "/" in name or "\\" in name:
        return None
    candidate = job_dir / name
    if candidate.is_symlink():
        return None
    try:
        candidate.resolve().relative_to(job_dir.resolve())
    except ValueError:
        return None
    return candidate


def read_result(job_dir: Path, *, job_id: str, max_bytes: int = MAX_RESULT_BYTES) -> HarnessResult:
    """Read and validate ``job_dir/result.json``; raise ContractError describing what is wrong."""
    path = job_dir / "result.json"
    display = str(path)

    def fail(key: str, message: str, fix: str = "the harness wrote an invalid result; check its version") -> None:
        raise ContractError([Problem(display, key, message, fix)])

    try:
        data = strict_json(read_regular(path, max_bytes))
    except FileNotFoundError:
        fail("", "no result.json: the harness exited without writing one")
    except UntrustedFileError as exc:
        fail(exc.key, f"result.json: {exc}")
    problems = _problems(data, "result", display)
    if problems:
        raise ContractError(problems)
    if data["job_id"] != job_id:
        fail("job_id", f"result is for job {data['job_id']!r}, expected {job_id!r}")
    _check_outputs(job_dir, data["outputs"], fail)
    return HarnessResult(job_id=data["job_id"], status=data["status"], raw=data)


def _check_outputs(job_dir: Path, outputs: dict[str, str], fail: Any) -> None:
    """Each output a distinct regular file inside the job folder, all of them within ``MAX_OUTPUT_BYTES``."""
    seen: dict[str, str] = {}
    total = 0
    for name, filename in outputs.items():
        target = _inside(job_dir, filename)
        if filename in seen:
            fail(f"outputs.{name}", f"output file {filename!r} is also output {seen[filename]!r}: one file each")
        seen[filename] = name
        if target is None or filename in (".", ".."):
            fail(f"outputs.{name}", f"output file {filename!r} is outside the job folder")
        assert target is not None
        try:
            info = target.lstat()
        except FileNotFoundError:
            fail(f"outputs.{name}", f"output file {filename!r} is missing")
        if not stat.S_ISREG(info.st_mode):
            fail(f"outputs.{name}", f"output file {filename!r} is not a regular file")
        total += info.st_size
        if total > MAX_OUTPUT_BYTES:
            fail(f"outputs.{name}", f"outputs are larger than {MAX_OUTPUT_BYTES} bytes together")


def load_outputs(job_dir: Path, result: HarnessResult) -> dict[str, np.ndarray]:
    """The first-prediction outputs as arrays (no pickles, paths already checked by ``read_result``; each
    header checked against the file before its data is read)."""
    arrays = {}
    budget = MAX_OUTPUT_BYTES
    for name, filename in result.outputs.items():
        target = _inside(job_dir, filename)
        display = str(job_dir / filename)
        if target is None:
            raise ContractError([Problem(display, f"outputs.{name}", "output path leaves the job folder",
                                         "the harness wrote an invalid result; check its version")])
        try:
            arrays[name] = read_npy(target, budget)
        except (OSError, UntrustedFileError) as exc:
            raise ContractError([Problem(display, f"outputs.{name}", f"not a valid .npy file: {exc}",
                                         "the harness wrote an invalid result; check its version")]) from exc
        budget -= arrays[name].nbytes
    return arrays
