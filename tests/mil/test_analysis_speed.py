"""Static analysis straight from the protobuf (``mil.static_load``), and the once-per-artifact caching of the
analysis and of PSNR in the manifest. What makes the SD-1.5 UNet's analysis take seconds, checked on real
tiny-sd packages: the same figures as the coremltools-loaded program, without importing coremltools or torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from orchestrator.errors import ArtifactError
from orchestrator.mil import Executor, analyze, load
from orchestrator.mil.check import CheckEvent, check_entry, check_spec
from orchestrator.mil.static_load import StoredWeight, load_static

VARIANTS = ("fp32-none-original", "fp16-none-split_einsum_v2", "fp16-palette6-split_einsum_v2",
            "fp16-palette4-split_einsum_v2")


def test_static_analysis_equals_the_coremltools_loaded_one(tiny_artifacts, tiny_programs):
    for component in ("unet", "vae_decoder", "text_encoder"):
        for variant in VARIANTS:
            path = tiny_artifacts[(component, variant)].path
            static = load_static(path)
            assert analyze(static).to_dict(top=8) == analyze(tiny_programs(component, variant)).to_dict(top=8), \
                (component, variant)
            assert static.inputs == tiny_programs(component, variant).inputs
            assert static.outputs == tiny_programs(component, variant).outputs
            assert any(isinstance(v, StoredWeight) for v in static.constants.values())


def test_static_load_imports_neither_coremltools_nor_torch(small_package):
    code = ("import sys, json; from orchestrator.mil.static_load import load_static; "
            "from orchestrator.mil.analysis import analyze_program; "
            f"a = analyze_program(load_static({str(small_package)!r})); "
            "print(json.dumps([a.flops, 'torch' in sys.modules, 'coremltools' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    flops, torch_loaded, coremltools_loaded = json.loads(out.stdout)
    assert flops == analyze(load(small_package)).flops
    assert not torch_loaded and not coremltools_loaded


def test_a_statically_read_program_cannot_be_executed(small_package):
    with pytest.raises(ValueError, match="static analysis only"):
        Executor(load_static(small_package))


def test_truncated_weights_are_caught_without_reading_them(small_package, tmp_path):
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(small_package, broken)
    weights = broken / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="cannot load the ML program"):
        load_static(broken)
    (broken / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="cannot read the Core ML package"):
        load_static(broken)


def test_analysis_in_the_manifest_is_not_redone(tiny_store_copy):
    entry = tiny_store_copy.get("tiny-sd", "vae_decoder", "fp16-palette6-split_einsum_v2")
    events: list[CheckEvent] = []
    first = check_entry(entry, tiny_store_copy, seed=0, gate_db=35.0, progress=events.append)
    assert first.analysis is not None and first.quality is not None
    stages = [e.stage for e in events]
    assert stages[0] == "analysed" and "psnr" in stages and stages[-1] == "psnr-done"
    psnr_events = [e for e in events if e.stage == "psnr"]
    assert psnr_events[-1].done == psnr_events[-1].total > 1  # progress counts every op of the run

    # A marker in the stored sections shows the second check reads them instead of recomputing.
    stored = tiny_store_copy.get("tiny-sd", "vae_decoder", "fp16-palette6-split_einsum_v2")
    tiny_store_copy.update_manifest(stored, "analysis", {**stored.manifest["analysis"], "flops": 12345})
    quality = dict(stored.manifest["quality"])
    quality["psnr_db"] = {k: 77.0 for k in quality["psnr_db"]}
    tiny_store_copy.update_manifest(stored, "quality", quality)
    events.clear()
    again = check_entry(tiny_store_copy.get("tiny-sd", "vae_decoder", "fp16-palette6-split_einsum_v2"),
                        tiny_store_copy, seed=0, gate_db=80.0, progress=events.append)
    assert [e.stage for e in events] == ["cached", "psnr-cached"]
    assert again.analysis is not None and again.analysis.flops == 12345
    assert again.quality is not None and again.quality.psnr_min_db == 77.0
    assert again.quality.passed is False  # the cached PSNR is judged against the gate asked for now

    other_seed = check_entry(tiny_store_copy.get("tiny-sd", "vae_decoder", "fp16-palette6-split_einsum_v2"),
                             tiny_store_copy, seed=1, gate_db=35.0)
    assert other_seed.quality is not None and other_seed.quality.seed == 1
    assert other_seed.quality.psnr_min_db != 77.0


def test_without_psnr_only_the_static_analysis_runs(tiny_store_copy, tiny_spec):
    events: list[CheckEvent] = []
    checks = check_spec(tiny_spec, tiny_store_copy, psnr=False, progress=events.append)
    built = [c for c in checks if c.analysis is not None]
    assert built and all(c.quality is None and "0 dB" in (c.note or "") for c in built)
    assert {e.stage for e in events} <= {"analysed", "cached"}


def test_analyze_spec_prints_plain_lines_when_piped_and_redoes_nothing(mlfarm, tiny_store_copy, tiny_spec):
    for entry in tiny_store_copy.entries():  # as freshly built: no analysis, no quality
        manifest = {k: v for k, v in entry.manifest.items() if k not in ("analysis", "quality")}
        (tiny_store_copy.blob_dir(entry.sha256) / "manifest.json").write_text(json.dumps(manifest))
    first = mlfarm("--artifacts", tiny_store_copy.root, "analyze", str(tiny_spec.path))
    assert first.exit_code in (0, 1), first.err
    built = [e for e in tiny_store_copy.entries() if e.spec_name == "tiny-sd"]
    for entry in built:  # one plain line per artifact and step on stderr (not a terminal here)
        assert f"analysed {entry.component} {entry.variant}" in " ".join(first.err.split())
        assert f"psnr {entry.component} {entry.variant}" in " ".join(first.err.split())
    assert "ops" in first.err  # the PSNR run's progress
    again = mlfarm("--artifacts", tiny_store_copy.root, "analyze", str(tiny_spec.path))
    assert again.exit_code == first.exit_code
    assert "analysed" not in again.err and f"cached {2 * len(built)}:" in " ".join(again.err.split())
