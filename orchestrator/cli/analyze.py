"""``mlfarm analyze`` and ``mlfarm run-artifact``: look inside Core ML artifacts on any OS.

``analyze`` reports weight bytes (stored and decompressed), FLOPs, the activation peak with the tensors alive
there and, for artifacts of the store, PSNR against the fp32 PyTorch reference, which it also writes into the
manifests. ``run-artifact`` executes one artifact on mlfarm's MIL executor and prints output statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.cli._progress import RunProgress
from orchestrator.errors import EXIT_FAILED, EXIT_INPUT, ArtifactError, UsageError

_MIB = 2**20


def _is_spec(target: str) -> bool:
    return Path(target).is_file() and Path(target).suffix in (".yaml", ".yml")


@click.command()
@click.argument("target", metavar="ARTIFACT|SPEC")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Input seed for PSNR of a single artifact (a SPEC uses its measure.seed).")
@click.option("--min-psnr", "gate_db", type=float, default=None,
              help="PSNR gate in dB for a single artifact [default: 35 for stored artifacts] (a SPEC uses its "
                   "gates.min_psnr_db). Exit 2 when it cannot be evaluated (no reference for the artifact).")
@click.option("--top", type=int, default=5, show_default=True, help="Tensors listed at the activation peak.")
@json_option
@pass_app
@returns_exit_code
def analyze(app: App, target: str, seed: int, gate_db: float | None, top: int, as_json: bool) -> int:
    """Weights, FLOPs, peak activation memory and PSNR of an artifact (.mlpackage or id) or of a spec's builds."""
    from orchestrator.build.store import ArtifactStore
    from orchestrator.mil.check import check_entry, check_package, check_spec, find_artifact

    store = ArtifactStore(app.settings.artifacts_dir)
    if _is_spec(target):
        spec = app.spec(Path(target))
        with RunProgress(app.err, quiet=as_json) as ui:
            checks = check_spec(spec, store, spec_dir=Path(target).resolve().parent, progress=ui.check_event)
        if not any(c.analysis or c.error for c in checks):
            raise ArtifactError(f"no built artifacts of {spec.name} in {store.root}", path=target,
                                fix=f"build them first: `mlfarm build {target}`")
    else:
        entry = find_artifact(store, target)
        with RunProgress(app.err, quiet=as_json) as ui:
            checks = [check_entry(entry, store, seed=seed, gate_db=35.0 if gate_db is None else gate_db,
                                  progress=ui.check_event) if entry else check_package(Path(target))]
    # A gate asked for on an artifact without a reference cannot pass or fail: say so, never "passed".
    unevaluated = [c for c in checks if gate_db is not None and c.quality is None and c.error is None]
    data: dict[str, Any] = {"artifacts": [c.to_dict(top) for c in checks],
                            "passed": None if unevaluated else all(c.quality.passed is not False
                                                                   for c in checks if c.quality)}
    if unevaluated:
        data["gate"] = {"min_psnr_db": gate_db, "evaluated": False, "reason": unevaluated[0].note}
    app.emit(as_json, data, lambda console: _render_checks(console, checks, top))
    if any(c.error for c in checks):
        return EXIT_INPUT
    if unevaluated:
        app.err.print(f"[red]error:[/] the --min-psnr {gate_db:g} dB gate could not be evaluated for "
                      f"{unevaluated[0].path}: {unevaluated[0].note}")
        return EXIT_INPUT
    return 0 if data["passed"] else EXIT_FAILED


def _render_checks(console: Console, checks: list[Any], top: int) -> None:
    table = Table(title="Core ML artifacts (mlfarm MIL analysis)", show_lines=True)
    for column in ("artifact", "weights stored / decompressed", "GFLOPs", "peak activations", "largest at peak",
                   "PSNR (min)"):
        table.add_column(column, overflow="fold")
    for c in checks:
        name = f"{c.component}\n{c.variant}" if c.component else c.path  # each id whole on its own line
        if c.analysis is None:
            table.add_row(name, f"[red]{c.error}[/]" if c.error else f"[dim]{c.note}[/]", "", "", "", "")
            continue
        a = c.analysis
        tensors = "\n".join(f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype} {t.bytes / _MIB:,.1f} MiB"
                            for t in a.top_tensors(top))
        table.add_row(name, f"{a.weights_bytes_stored / 1e6:,.2f} / {a.weights_bytes_decompressed / 1e6:,.2f} MB",
                      f"{a.flops / 1e9:,.2f}", f"{a.activation_peak_bytes / _MIB:,.1f} MiB\nat {a.peak_op}",
                      tensors, _psnr_cell(c))
    console.print(table)


def _psnr_cell(check: Any) -> str:
    from orchestrator.serialize import PSNR_CAP_DB

    q = check.quality
    if q is None:
        return f"[dim]{check.note or '-'}[/]"
    value = "identical" if q.psnr_min_db >= PSNR_CAP_DB else f"{q.psnr_min_db:.1f} dB"
    mark = "[green]pass[/]" if q.passed else "[red]FAIL[/]"
    return f"{value} ({q.precision})\n{mark} (gate {q.gate_db:g} dB)"


@click.command("run-artifact")
@click.argument("artifact", metavar="ARTIFACT")
@click.option("--inputs", "inputs_arg", default="seed:0", show_default=True, metavar="seed:N|FILE.npz",
              help="Seeded inputs (input k gets seed N + k, as jobs do) or arrays from an .npz file.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16"]), default="auto", show_default=True,
              help="fp32 reference, fp16 device emulation, or the artifact's own precision.")
@json_option
@pass_app
@returns_exit_code
def run_artifact(app: App, artifact: str, inputs_arg: str, precision: str, as_json: bool) -> int:
    """Execute an artifact (.mlpackage or artifact id) on mlfarm's MIL executor and print output statistics."""
    from orchestrator.build.store import ArtifactStore
    from orchestrator.mil.check import find_artifact
    from orchestrator.mil.executor import Executor
    from orchestrator.mil.load import load

    store = ArtifactStore(app.settings.artifacts_dir)
    entry = find_artifact(store, artifact)
    path = entry.path if entry else Path(artifact)
    program = load(path)
    inputs = _inputs(program, inputs_arg)
    with app.err.status(f"running {path.name}"):
        result = Executor(program, precision).run(inputs)
    data = {"artifact": str(path), "id": entry.id if entry else None, "precision": result.precision,
            "seconds": round(result.seconds, 4), "peak_live_bytes": result.peak_live_bytes, "peak_op": result.peak_op,
            "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in inputs.items()},
            "outputs": {k: _stats(v) for k, v in result.outputs.items()}}
    app.emit(as_json, data, lambda console: _render_run(console, data))
    return 0


def _inputs(program: Any, text: str) -> dict[str, np.ndarray]:
    from orchestrator.mil.inputs import seeded_inputs

    if text.startswith("seed:"):
        try:
            seed = int(text.removeprefix("seed:"))
        except ValueError:
            raise UsageError(f"--inputs {text!r}: the seed must be an integer",
                             fix="use --inputs seed:0 or --inputs FILE.npz") from None
        return seeded_inputs(program, seed)
    path = Path(text)
    if path.suffix != ".npz" or not path.is_file():
        raise UsageError(f"--inputs {text!r}: expected seed:N or an existing .npz file",
                         fix="use --inputs seed:0, or save arrays with numpy.savez(FILE.npz, name=array)")
    try:
        with np.load(path) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"--inputs {text}: cannot read: {exc}", fix="write it with numpy.savez") from exc


def _stats(array: np.ndarray) -> dict[str, Any]:
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    ok = values[finite]
    return {"shape": list(array.shape), "dtype": str(array.dtype), "nonfinite": int((~finite).sum()),
            "min": float(ok.min()) if ok.size else None, "max": float(ok.max()) if ok.size else None,
            "mean": float(ok.mean()) if ok.size else None, "std": float(ok.std()) if ok.size else None}


def _render_run(console: Console, data: dict[str, Any]) -> None:
    console.print(f"{data['artifact']}: {data['precision']} run in {data['seconds'] * 1000:,.1f} ms, peak live "
                  f"tensors {data['peak_live_bytes'] / _MIB:,.1f} MiB at {data['peak_op']}")
    table = Table("output", "shape", "dtype", "min", "max", "mean", "std", "non-finite")
    for name, s in data["outputs"].items():
        cells = [f"{s[k]:.5g}" if s[k] is not None else "-" for k in ("min", "max", "mean", "std")]
        table.add_row(name, "x".join(map(str, s["shape"])), s["dtype"], *cells, str(s["nonfinite"]))
    console.print(table)
