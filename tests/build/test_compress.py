"""Every compression variant, read back from the saved .mlpackage: op types, index widths, bytes stored."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from orchestrator.build.builder import build_spec
from orchestrator.build.compress import COMPRESSIONS, CompressionSettings, compress
from orchestrator.build.store import ArtifactEntry, ArtifactStore
from orchestrator.errors import UsageError
from orchestrator.spec import load_spec
from orchestrator.variants import WEIGHTS
from tests.build.programs import compressed_ops, dtype, load_program, op_types, weight_file_bytes
from tests.fixtures.build import TINY_SPEC_PATH

SCHEMES = ("none", "int8", "palette8", "palette6", "palette4", "palette4-g16")


def _spec(folder: Path, *, min_ios: int, weights: list[str], include: list[dict[str, str]]) -> Any:
    data = yaml.safe_load(TINY_SPEC_PATH.read_text())
    data["variants"] = {"precision": ["fp16"], "weights": weights, "attention": ["original"], "include": include}
    data["app"] = {"min_ios": min_ios}
    path = folder / f"spec-ios{min_ios}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ArtifactEntry]:
    """The tiny text encoder in every weight scheme (fp16), plus fp32 none/palette6 and int8 at iOS 18."""
    folder = tmp_path_factory.mktemp("compress")
    store = ArtifactStore(folder / "artifacts")
    spec = _spec(folder, min_ios=17, weights=list(SCHEMES),
                 include=[{"precision": "fp32", "weights": w, "attention": "original"} for w in ("none", "palette6")])
    built = {e.variant: e for e in build_spec(spec, store, components=["text_encoder"])}
    ios18 = _spec(folder, min_ios=18, weights=["int8"], include=[])
    built["ios18-int8"] = build_spec(ios18, store, components=["text_encoder"])[0]
    return built


def test_every_weight_scheme_has_a_compressor() -> None:
    assert set(COMPRESSIONS) == set(WEIGHTS.names())
    with pytest.raises(UsageError, match="unknown k-means"):
        CompressionSettings(kmeans="lloyd")  # type: ignore[arg-type]


def test_packages_reload_with_the_declared_interface(text_encoder: dict[str, ArtifactEntry]) -> None:
    import coremltools as ct

    for entry in text_encoder.values():
        spec = ct.models.MLModel(str(entry.path), skip_model_load=True).get_spec()
        assert [i.name for i in spec.description.input] == ["input_ids"]
        assert [o.name for o in spec.description.output] == ["last_hidden_state", "pooled_outputs"]
        assert entry.manifest["inputs"] == [{"name": "input_ids", "shape": [1, 77], "dtype": "int32"}]
        assert [o["dtype"] for o in entry.manifest["outputs"]] == ["float32", "float32"]


def test_uncompressed_variants_store_plain_weights(text_encoder: dict[str, ArtifactEntry]) -> None:
    fp16, fp32 = text_encoder["fp16-none-original"], text_encoder["fp32-none-original"]
    for entry, width in ((fp16, "fp16"), (fp32, "fp32")):
        program = load_program(entry.path)
        assert not any(t.startswith("constexpr_") for t in op_types(program))
        weights = [op.outputs[0] for op in program.functions["main"].operations
                   if op.op_type == "const" and op.outputs[0].shape and math.prod(op.outputs[0].shape) >= 2048
                   and dtype(op.outputs[0]) != "bool"]  # the causal mask is a bool constant, not a weight
        assert weights and {dtype(w) for w in weights} == {width}
    assert weight_file_bytes(fp32.path) == pytest.approx(2 * weight_file_bytes(fp16.path), rel=0.02)


@pytest.mark.parametrize(("variant", "bits"), [("fp16-palette8-original", 8), ("fp16-palette6-original", 6),
                                               ("fp16-palette4-original", 4), ("fp32-palette6-original", 6)])
def test_per_tensor_palettes(text_encoder: dict[str, ArtifactEntry], variant: str, bits: int) -> None:
    entry = text_encoder[variant]
    ops = compressed_ops(load_program(entry.path))
    assert ops and {c.op_type for c in ops} == {"constexpr_lut_to_dense"}
    for c in ops:
        dense = math.prod(c.op.outputs[0].shape)
        assert c.op.lut.shape == (2**bits,)  # one LUT per tensor
        assert c.op.indices.val.nbytes == math.ceil(dense * bits / 8)  # bit-packed N-bit indices
    lut_bytes = 4 if variant.startswith("fp32") else 2
    assert {dtype(c.op.lut) for c in ops} == {"fp32" if lut_bytes == 4 else "fp16"}
    stored = sum(c.stored_bytes for c in ops) / sum(c.dense_fp16_bytes for c in ops)
    assert bits / 16 <= stored <= bits / 16 + 0.04 * lut_bytes  # the LUTs are the only overhead
    assert entry.manifest["min_deployment_target"]["coremltools"] == "iOS17"


def test_grouped_palette_uses_the_ios18_opset(text_encoder: dict[str, ArtifactEntry]) -> None:
    entry = text_encoder["fp16-palette4-g16-original"]
    program = load_program(entry.path)
    ops = compressed_ops(program)
    assert ops and {c.op_type for c in ops} == {"constexpr_lut_to_dense"}
    for c in ops:
        out_channels = c.op.outputs[0].shape[0]
        assert dtype(c.op.indices) == "uint4" and c.op.indices.shape == c.op.outputs[0].shape
        assert c.op.lut.shape[0] == out_channels // 16 and c.op.lut.shape[-2] == 16  # a 16-entry LUT per group
    assert sum(c.stored_bytes for c in ops) / sum(c.dense_fp16_bytes for c in ops) == pytest.approx(0.25, abs=0.02)
    assert entry.manifest["min_deployment_target"] == {"iOS": 18, "macOS": 15, "coremltools": "iOS18"}
    assert entry.manifest["opset"] == "CoreML8"


def test_int8_per_channel_op_depends_on_the_opset(text_encoder: dict[str, ArtifactEntry]) -> None:
    ios17, ios18 = text_encoder["fp16-int8-original"], text_encoder["ios18-int8"]
    ops = compressed_ops(load_program(ios17.path))
    assert ops and {c.op_type for c in ops} == {"constexpr_affine_dequantize"}
    for c in ops:
        assert dtype(c.op.quantized_data) == "int8"
        channels = c.op.outputs[0].shape[c.op.axis.val]
        assert np.asarray(c.op.scale.val).size == channels  # one scale per output channel
    ops18 = compressed_ops(load_program(ios18.path))
    assert ops18 and {c.op_type for c in ops18} == {"constexpr_blockwise_shift_scale"}
    assert {dtype(c.op.data) for c in ops18} == {"int8"}
    for group in (ops, ops18):
        ratio = sum(c.stored_bytes for c in group) / sum(c.dense_fp16_bytes for c in group)
        assert 0.5 <= ratio <= 0.53  # int8 data plus a per-channel scale
    assert ios18.manifest["min_deployment_target"]["coremltools"] == "iOS18"


@pytest.mark.parametrize("variant", [v + "-original" for v in
                                     ("fp16-int8", "fp16-palette8", "fp16-palette6", "fp16-palette4",
                                      "fp16-palette4-g16")])
def test_weight_file_shrinks_by_bits_over_16(text_encoder: dict[str, ArtifactEntry], variant: str) -> None:
    """weights/weight.bin of a variant vs the fp16 one: bits/16 for the compressed tensors, 1 for the rest."""
    entry, base = text_encoder[variant], text_encoder["fp16-none-original"]
    ops = compressed_ops(load_program(entry.path))
    compressed_fp16 = sum(c.dense_fp16_bytes for c in ops)
    total_fp16 = entry.manifest["weights"]["bytes_decompressed_fp16"]
    bits = WEIGHTS[variant.removesuffix("-original").removeprefix("fp16-")].bits
    expected = (compressed_fp16 * bits / 16 + (total_fp16 - compressed_fp16)) / total_fp16
    measured = weight_file_bytes(entry.path) / weight_file_bytes(base.path)
    assert measured == pytest.approx(expected, abs=0.04)
    assert entry.manifest["weights"]["bytes_stored"] == weight_file_bytes(entry.path)
    assert entry.manifest["weights"]["compressed_tensors"] == len(ops)


@pytest.mark.slow  # the first test to ask for tiny_artifacts converts every component (about a minute)
@pytest.mark.parametrize("component", ["unet", "vae_decoder"])
@pytest.mark.parametrize("bits", [6, 4])
def test_unet_and_vae_palettes(tiny_artifacts: dict[tuple[str, str], ArtifactEntry], component: str,
                               bits: int) -> None:
    entry = tiny_artifacts[(component, f"fp16-palette{bits}-split_einsum_v2")]
    ops = compressed_ops(load_program(entry.path))
    assert ops and all(c.op.lut.shape == (2**bits,) for c in ops)
    assert sum(c.stored_bytes for c in ops) / sum(c.dense_fp16_bytes for c in ops) <= bits / 16 + 0.02
    base = tiny_artifacts[(component, "fp16-none-split_einsum_v2")]
    assert weight_file_bytes(entry.path) < (bits / 16 + 0.15) * weight_file_bytes(base.path)


@pytest.mark.parametrize("kmeans", ["coremltools", "fast"])
def test_both_kmeans_implementations_give_per_tensor_palettes(text_encoder: dict[str, ArtifactEntry],
                                                             kmeans: str) -> None:
    import coremltools as ct

    base = ct.models.MLModel(str(text_encoder["fp16-none-original"].path), skip_model_load=True)
    settings = CompressionSettings(kmeans=kmeans)  # type: ignore[arg-type]
    model = compress(base, "palette6", settings, where="text_encoder fp16-palette6-original").model
    luts = [op.lut.val for op in model._mil_program.functions["main"].operations
            if op.op_type == "constexpr_lut_to_dense"]
    assert len(luts) == text_encoder["fp16-palette6-original"].manifest["weights"]["compressed_tensors"]
    assert all(np.asarray(lut).size == 64 for lut in luts)
