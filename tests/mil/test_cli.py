"""``mlfarm analyze`` and ``mlfarm run-artifact`` end to end (in-process CLI, real packages)."""

from __future__ import annotations

import shutil

import numpy as np


def test_analyze_a_package_reports_bytes_flops_and_the_peak(mlfarm, small_package):
    result = mlfarm("analyze", small_package, "--json")
    assert result.exit_code == 0, result.err
    (item,) = result.json()["artifacts"]
    a = item["analysis"]
    conv_flops = 2 * (1 * 8 * 6 * 6) * 3 * 9
    linear_flops = 2 * 10 * 288
    assert a["flops"] == conv_flops + linear_flops
    assert a["weights_bytes_decompressed"] >= 2 * (8 * 3 * 9 + 8 + 10 * 288 + 10)  # fp16 weights and biases
    assert a["activation_peak_bytes"] > 0 and a["top_tensors"][0]["bytes"] > 0
    assert item["quality"] is None and "no PyTorch reference" in item["note"]
    table = mlfarm("analyze", small_package)
    assert table.exit_code == 0 and "peak activations" in table.out
    # the table shows the same analysis as --json: the weights in MB and the largest tensor alive at the peak
    weights = f"{a['weights_bytes_stored'] / 1e6:,.2f} / {a['weights_bytes_decompressed'] / 1e6:,.2f} MB"
    assert weights in table.out and a["top_tensors"][0]["name"] in table.out, table.out


def test_analyze_an_artifact_id_writes_the_manifest(mlfarm, tiny_store_copy):
    entry = tiny_store_copy.get("tiny-sd", "vae_decoder", "fp16-palette6-split_einsum_v2")
    result = mlfarm("--artifacts", tiny_store_copy.root, "analyze", entry.id, "--json")
    assert result.exit_code == 0, result.err
    (item,) = result.json()["artifacts"]
    assert item["id"] == entry.id and 20 < item["quality"]["psnr_min_db"] < 60
    manifest = tiny_store_copy.get("tiny-sd", "vae_decoder", "fp16-palette6-split_einsum_v2").manifest
    assert manifest["quality"]["psnr_db"]["image"] == item["quality"]["psnr_db"]["image"]
    assert manifest["analysis"]["weights_bytes_stored"] < manifest["analysis"]["weights_bytes_decompressed"]


def test_run_artifact_is_seeded_and_prints_stats(mlfarm, small_package):
    first = mlfarm("run-artifact", small_package, "--inputs", "seed:4", "--json")
    again = mlfarm("run-artifact", small_package, "--inputs", "seed:4", "--json")
    other = mlfarm("run-artifact", small_package, "--inputs", "seed:5", "--precision", "fp32", "--json")
    assert first.exit_code == again.exit_code == other.exit_code == 0, first.err
    out = first.json()["outputs"]["out"]
    assert out["shape"] == [1, 10] and out["nonfinite"] == 0
    assert abs(out["mean"] - 0.1) < 1e-3  # a softmax over 10 classes
    assert first.json()["outputs"] == again.json()["outputs"]
    assert other.json()["outputs"] != first.json()["outputs"] and other.json()["precision"] == "fp32"
    assert first.json()["peak_live_bytes"] > 0
    text = mlfarm("run-artifact", small_package)
    assert text.exit_code == 0 and "out" in text.out and "1x10" in text.out


def test_run_artifact_reads_inputs_from_npz(mlfarm, small_package, tmp_path):
    arrays = tmp_path / "inputs.npz"
    np.savez(arrays, image=np.ones((1, 3, 6, 6), np.float32))
    result = mlfarm("run-artifact", small_package, "--inputs", arrays, "--json")
    assert result.exit_code == 0, result.err
    assert result.json()["inputs"] == {"image": {"shape": [1, 3, 6, 6], "dtype": "float32"}}


def test_bad_artifacts_and_arguments_exit_2_without_traceback(mlfarm, small_package, unsupported_package, tmp_path):
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(small_package, broken)
    weights = broken / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:200])
    path, op_type = unsupported_package
    cases = [
        (("analyze", broken), "cannot load the ML program"),
        (("run-artifact", broken), "cannot load the ML program"),
        (("run-artifact", path), f"MIL op '{op_type}' in {path} has no executor kernel"),
        (("run-artifact", small_package, "--inputs", "seed:x"), "the seed must be an integer"),
        (("run-artifact", small_package, "--inputs", "nope.txt"), "expected seed:N or an existing .npz"),
        (("analyze", "no-such-artifact"), "no artifact 'no-such-artifact'"),
    ]
    for args, message in cases:
        result = mlfarm(*args)
        assert result.exit_code == 2, (args, result.err)
        assert message in result.err, (args, result.err)
        assert "Traceback" not in result.err and "fix:" in result.err
    as_json = mlfarm("run-artifact", path, "--json")
    assert as_json.json()["error"]["type"] == "UnsupportedOpError"


def test_analyze_spec_without_builds_says_to_build(mlfarm, repo):
    result = mlfarm("analyze", repo / "examples" / "tiny-sd.yaml")
    assert result.exit_code == 2
    assert "no built artifacts of tiny-sd" in result.err and "mlfarm build" in result.err


def test_a_psnr_gate_without_a_reference_is_not_evaluated_not_passed(mlfarm, small_package):
    result = mlfarm("analyze", small_package, "--min-psnr", "40", "--json")
    assert result.exit_code == 2
    data = result.json()
    assert data["passed"] is None and data["gate"] == {"min_psnr_db": 40.0, "evaluated": False,
                                                       "reason": data["artifacts"][0]["note"]}
    assert "could not be evaluated" in result.err and "no PyTorch reference" in result.err
    assert mlfarm("analyze", small_package, "--json").exit_code == 0  # no gate asked: analysis only
