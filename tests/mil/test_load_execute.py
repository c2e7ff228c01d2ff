"""Loading real packages, executing them through the public API, and the errors bad artifacts give."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import orchestrator.mil as mil
from orchestrator.errors import ArtifactError, UnsupportedOpError
from orchestrator.mil.kernels import KERNELS
from tests.mil.conftest import SmallNet


def test_load_gives_names_shapes_dtypes_and_program_order(small_package):
    program = mil.load(small_package)
    assert program.inputs == ("image",) and program.outputs == ("out",)
    assert program.types["image"].shape == (1, 3, 6, 6) and program.types["image"].dtype == "fp32"
    assert program.types["out"].shape == (1, 10) and program.types["out"].dtype == "fp32"
    assert program.compute_precision == "fp16"
    types = [op.type for op in program.ops]
    assert types[0] == "cast" and types[-1] == "cast"  # fp32 in, fp16 compute, fp32 out
    assert types.index("conv") < types.index("linear") < types.index("softmax")
    produced = program.producers()
    for i, op in enumerate(program.ops):  # every input exists before the op that reads it
        assert all(n in program.constants or n in program.inputs or produced[n] < i for n in op.input_names())


def test_execute_matches_pytorch_through_the_public_api(small_package):
    torch.manual_seed(0)
    reference_model = SmallNet().eval()  # same seed, same weights as the package
    image = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    with torch.inference_mode():
        reference = reference_model(torch.from_numpy(image))[0].numpy()
    for source in (small_package, str(small_package), mil.load(small_package)):
        out = mil.execute(source, {"image": image}, precision="fp32")
        assert set(out) == {"out"} and out["out"].dtype == np.float32
        assert mil.psnr(reference, out["out"]) > 60
    fp16 = mil.execute(small_package, {"image": image}, precision="fp16")["out"]
    assert 40 < mil.psnr(reference, fp16) < mil.psnr(reference, mil.execute(small_package, {"image": image},
                                                                             precision="fp32")["out"])


def test_inputs_are_checked(small_package):
    program = mil.load(small_package)
    with pytest.raises(ArtifactError, match=r"missing: \['image'\]"):
        mil.execute(program, {"img": np.zeros((1, 3, 6, 6), np.float32)})
    with pytest.raises(ArtifactError, match=r"input 'image' has shape \(3, 6, 6\), the model takes fp32\[1x3x6x6\]"):
        mil.execute(program, {"image": np.zeros((3, 6, 6), np.float32)})


def test_unsupported_op_names_the_op_and_the_artifact(unsupported_package):
    path, op_type = unsupported_package
    assert op_type not in KERNELS, "pick another op for this test: this one has a kernel now"
    program = mil.load(path)  # loading and analysis need no kernels
    assert op_type in mil.analyze(program).op_histogram
    with pytest.raises(UnsupportedOpError) as info:
        mil.execute(program, {"x": np.zeros((1, 4, 5, 5), np.float32)})
    assert info.value.op_type == op_type and str(path) in str(info.value)
    assert info.value.exit_code == 2 and "orchestrator/mil/kernels" in (info.value.fix or "")


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(("damage", "message"), [
    ("truncate_weights", "cannot load the ML program"),
    ("truncate_spec", "cannot read the Core ML package"),
    ("drop_manifest", "not an .mlpackage"),
    ("garbage_manifest", "cannot read the Core ML package"),
    ("drop_weights", "cannot load the ML program"),
])
def test_damaged_packages_raise_artifact_error(small_package, tmp_path, damage, message):
    package = _copy(small_package, tmp_path)
    data = package / "Data" / "com.apple.CoreML"
    weights = data / "weights" / "weight.bin"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    elif damage == "truncate_spec":
        spec = data / "model.mlmodel"
        spec.write_bytes(spec.read_bytes()[:100])
    elif damage == "drop_manifest":
        (package / "Manifest.json").unlink()
    elif damage == "garbage_manifest":
        (package / "Manifest.json").write_text("{not json")
    else:
        weights.unlink()
    with pytest.raises(ArtifactError, match=message) as info:
        mil.load(package)
    assert str(package) in info.value.message and info.value.fix


def test_paths_that_are_not_packages(tmp_path):
    with pytest.raises(ArtifactError, match="no such Core ML package"):
        mil.load(tmp_path / "missing.mlpackage")
    (tmp_path / "model.mlmodel").write_bytes(b"\x00")
    with pytest.raises(ArtifactError, match=r"not an \.mlpackage"):
        mil.load(tmp_path / "model.mlmodel")


def test_an_unsupported_form_of_a_supported_op_is_an_unsupported_op_error():
    from coremltools.converters.mil import Builder as mb

    from tests.mil.programs import build

    table = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    program = build(lambda i: mb.gather_nd(x=table, indices=i, batch_dims=1), {"i": (2, 1)}, opset="iOS16",
                    dtype="int32")
    with pytest.raises(UnsupportedOpError, match=r"gather_nd \(batch_dims > 0\)' in <in-memory program>"):
        mil.execute(program, {"i": np.zeros((2, 1), np.int32)})
