"""Output quality: PSNR of an artifact's outputs against the fp32 PyTorch reference on seeded inputs.

PSNR is apple/ml-stable-diffusion's formula, ``20 * log10(max|reference| / RMSE)`` (infinite when the outputs
are identical). ``evaluate_component`` runs the component's fp32 PyTorch module (``orchestrator.models``) and
the artifact (mlfarm's executor, at the artifact's own precision) on the same inputs,
``source.example_inputs(component, component_spec, seed)``, and reports PSNR per output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.serialize import PSNR_CAP_DB

if TYPE_CHECKING:
    from orchestrator.mil.program import Program
    from orchestrator.models.source import ModelSource
    from orchestrator.spec.model import ComponentSpec


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """``20 * log10(max|reference| / RMSE)`` in dB; ``inf`` when ``test`` equals ``reference``."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(test, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"psnr: shapes differ: reference {ref.shape}, test {out.shape}")
    rmse = math.sqrt(float(np.mean((ref - out) ** 2))) if ref.size else 0.0
    if rmse == 0.0:
        return math.inf
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    if not math.isfinite(rmse):
        return -math.inf
    return 20.0 * math.log10(peak / rmse) if peak > 0 else -math.inf


@dataclass(frozen=True)
class Quality:
    """PSNR per output of one artifact vs its fp32 reference; ``to_dict`` is the manifest's ``quality`` section
    (values capped at ``PSNR_CAP_DB``, so identical outputs store as 200 dB, never as infinity)."""

    psnr_db: dict[str, float]
    seed: int
    precision: str  # the precision the executor ran the artifact at
    gate_db: float | None = None
    reference: str = "pytorch-fp32"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def psnr_min_db(self) -> float:
        return min(self.psnr_db.values()) if self.psnr_db else math.nan

    @property
    def passed(self) -> bool | None:
        return None if self.gate_db is None else self.psnr_min_db >= self.gate_db

    def to_dict(self) -> dict[str, Any]:
        return {"psnr_db": {k: _finite(v) for k, v in self.psnr_db.items()}, "psnr_min_db": _finite(self.psnr_min_db),
                "seed": self.seed, "precision": self.precision, "reference": self.reference,
                "gate_db": self.gate_db, "passed": self.passed, **self.extra}




def quality_from_dict(data: Mapping[str, Any], gate_db: float | None) -> Quality:
    """A ``Quality`` back from a manifest's ``quality`` section, judged against ``gate_db`` (a gate can change
    without the PSNR changing). Stored values are capped, so identical outputs come back as ``PSNR_CAP_DB``."""
    values = {k: (math.nan if v is None else float(v)) for k, v in dict(data["psnr_db"]).items()}
    return Quality(values, seed=int(data["seed"]), precision=str(data["precision"]), gate_db=gate_db,
                   reference=str(data.get("reference", "pytorch-fp32")))


def _finite(value: float) -> float | None:
    if math.isnan(value):
        return None
    return round(max(min(value, PSNR_CAP_DB), -PSNR_CAP_DB), 3)


def compare(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {name: psnr(reference[name], outputs[name]) for name in reference}


def reference_outputs(source: ModelSource, component: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The source's reference outputs of ``component`` on ``inputs`` (fp32 PyTorch, or a prebuilt package's own)."""
    return source.reference(component, inputs)


def evaluate(program: Program, reference: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], *, seed: int,
             gate_db: float | None = None, precision: str | None = "auto", label: str = "pytorch-fp32",
             on_op: Callable[[int, int], None] | None = None) -> Quality:
    """Run ``program`` on ``inputs`` and compare with ``reference`` (see ``reference_outputs``); ``label`` names
    what the reference is; ``on_op(done, total)`` reports the executor's progress."""
    from orchestrator.mil.executor import Executor

    executor = Executor(program, precision)
    outputs = executor.run(inputs, on_op=on_op).outputs
    return Quality(compare(reference, outputs), seed=seed, precision=executor.precision, gate_db=gate_db,
                   reference=label)


def evaluate_component(program: Program, source: ModelSource, component: str, component_spec: ComponentSpec, *,
                       seed: int, gate_db: float | None = None) -> Quality:
    """PSNR of ``program`` (one built artifact of ``component``) against the fp32 PyTorch reference."""
    inputs = source.example_inputs(component, component_spec, seed)
    reference = reference_outputs(source, component, inputs)
    return evaluate(program, reference, inputs, seed=seed, gate_db=gate_db)
