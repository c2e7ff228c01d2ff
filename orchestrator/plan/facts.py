"""ArtifactFacts from an artifact manifest (its ``analysis`` and ``quality`` sections), and measured history
from the results store: the planner's two inputs that come from disk, read here so make_plan stays pure."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from orchestrator.plan.latency import History
from orchestrator.plan.model import ArtifactFacts
from orchestrator.results.store import ResultsStore


def facts_from_manifest(manifest: Mapping[str, Any], *, artifact_id: str | None = None) -> ArtifactFacts | None:
    """None when the artifact has not been analysed yet (no ``analysis`` section)."""
    analysis = manifest.get("analysis")
    if not isinstance(analysis, Mapping):
        return None
    quality = manifest.get("quality") if isinstance(manifest.get("quality"), Mapping) else {}
    variant = manifest.get("variant", {})
    variant_id = (variant if isinstance(variant, str)
                  else f"{variant['precision']}-{variant['weights']}-{variant['attention']}")
    psnr = quality.get("psnr_min_db") if quality else None
    return ArtifactFacts(
        component=str(manifest["component"]), variant=variant_id,
        weights_bytes_stored=int(analysis["weights_bytes_stored"]),
        weights_bytes_decompressed=int(analysis["weights_bytes_decompressed"]),
        activation_peak_bytes=int(analysis["activation_peak_bytes"]),
        flops=float(analysis["flops"]),
        psnr_db=float(psnr) if psnr is not None else None,
        artifact_id=artifact_id,
        executor_weights_bytes=_optional_int(analysis.get("executor_weights_bytes")),
        executor_activation_peak_bytes=_optional_int(analysis.get("executor_activation_peak_bytes")),
    )


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def history_from_store(store: ResultsStore, *, spec_name: str, runs: int = 5) -> History:
    """Median of per-job latency medians over the last ``runs`` finished runs of a spec, per
    (profile id, component, variant, compute units). Only real latencies count: real devices, and the host
    itself; emulated devices (``host:ID``, ``virtual:ID``) measure this machine, not the device."""
    samples: dict[tuple[str, str, str, str], list[float]] = {}
    for run in store.list_runs(spec_name=spec_name, limit=runs, status=("finished",)):
        profiles = {d.key: d.profile_id for d in store.devices(run.id)
                    if d.backend == "usbmux" or (d.backend == "host" and d.profile_id == "host")}
        for job, rows in store.run_measurements(run.id):
            lat = sorted(m.value for m in rows if m.metric == "latency_ms")
            if job.status != "ok" or not lat or job.device_key not in profiles:
                continue
            key = (profiles[job.device_key], job.component, job.variant, job.compute_units)
            samples.setdefault(key, []).append(statistics.median(lat))
    return History({k: statistics.median(v) for k, v in samples.items()})
