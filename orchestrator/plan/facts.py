"""ArtifactFacts from an artifact manifest (its ``analysis`` and ``quality`` sections), and measured history
from the results store: the planner's two inputs that come from disk, read here so make_plan stays pure."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from orchestrator.plan.latency import History
from orchestrator.plan.model import ArtifactFacts
from orchestrator.results.store import ResultsStore

# MIL ops only attention computes in the models mlfarm meets (a CNN classifier has neither).
ATTENTION_OPS = frozenset({"softmax", "scaled_dot_product_attention"})


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
    ops = manifest.get("ops")
    has_attention = not isinstance(ops, Mapping) or bool(set(ops) & ATTENTION_OPS)
    return ArtifactFacts(
        component=str(manifest["component"]), variant=variant_id,
        weights_bytes_stored=int(analysis["weights_bytes_stored"]),
        weights_bytes_decompressed=int(analysis["weights_bytes_decompressed"]),
        activation_peak_bytes=int(analysis["activation_peak_bytes"]),
        flops=float(analysis["flops"]),
        psnr_db=float(psnr) if psnr is not None else None,
        artifact_id=artifact_id, has_attention=has_attention,
        executor_weights_bytes=_optional_int(analysis.get("executor_weights_bytes")),
        executor_activation_peak_bytes=_optional_int(analysis.get("executor_activation_peak_bytes")),
    )


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def history_from_store(store: ResultsStore, *, spec_name: str, runs: int = 5) -> History:
    """Median of per-job latency medians over the last ``runs`` finished runs of a spec, per
    (profile id, component, variant, compute units), with the spread of the launch medians behind it (every
    launch of every one of those runs: half their range over the median). Only real latencies count: real
    devices, and the host itself; emulated devices (``host:ID``, ``virtual:ID``) measure this machine, not the
    device."""
    medians: dict[tuple[str, str, str, str], list[float]] = {}
    launches: dict[tuple[str, str, str, str], list[float]] = {}
    for run in store.list_runs(spec_name=spec_name, limit=runs, status=("finished",)):
        profiles = {d.key: d.profile_id for d in store.devices(run.id)
                    if d.backend == "usbmux" or (d.backend == "host" and d.profile_id == "host")}
        for job, rows in store.run_measurements(run.id):
            lat = [m for m in rows if m.metric == "latency_ms"]
            if job.status != "ok" or not lat or job.device_key not in profiles:
                continue
            key = (profiles[job.device_key], job.component, job.variant, job.compute_units)
            medians.setdefault(key, []).append(statistics.median(m.value for m in lat))
            by_launch: dict[int, list[float]] = {}
            for m in lat:
                by_launch.setdefault(m.launch, []).append(m.value)
            launches.setdefault(key, []).extend(statistics.median(v) for v in by_launch.values())
    spread = {k: (max(v) - min(v)) / (2 * statistics.median(v)) for k, v in launches.items()
              if len(v) > 1 and statistics.median(v) > 0}
    return History({k: statistics.median(v) for k, v in medians.items()}, spread)


def previous_choices(store: ResultsStore, *, spec_name: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(device key, component) -> (variant, compute units) the latest finished run of the spec chose (its stored
    ``runs.plan``); what plan hysteresis keeps when a new candidate is not significantly faster."""
    rows = store.list_runs(spec_name=spec_name, limit=1, status=("finished",))
    if not rows:
        return {}
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for device in rows[0].plan.get("devices") or ():
        if not isinstance(device, Mapping):
            continue
        for component, chosen in (device.get("chosen") or {}).items():
            if isinstance(chosen, Mapping) and "variant" in chosen and "compute_units" in chosen:
                out[(str(device.get("key")), str(component))] = (str(chosen["variant"]), str(chosen["compute_units"]))
    return out
