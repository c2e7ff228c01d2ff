"""Hostile results from a harness (the audit's cases): each is one ContractError naming the file and key, read
without hanging and without reading more than the caps allow."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ContractError
from orchestrator.harness.contract import load_outputs, read_result
from tests.harness.test_contract import good_result, mutate, write


def refused(job_dir: Path, *, load: bool = False) -> ContractError:
    with pytest.raises(ContractError) as info:
        result = read_result(job_dir, job_id="run/0001")
        if load:
            load_outputs(job_dir, result)
    assert all(p.fix for p in info.value.problems)
    return info.value


@pytest.mark.parametrize("text, words", [
    (json.dumps(good_result()).replace('"first_predict_ms": 2.0', '"first_predict_ms": NaN'), "NaN"),
    (json.dumps(good_result()).replace('"first_predict_ms": 2.0', '"first_predict_ms": Infinity'), "Infinity"),
    (json.dumps(good_result()).replace('"first_predict_ms": 2.0', '"first_predict_ms": 1e999'), "overflows"),
    (json.dumps(good_result()).replace('"first_predict_ms": 2.0', '"first_predict_ms": ' + "9" * 5000), "digits"),
    (json.dumps(mutate(status="error", error="bad \ud800 surrogate")), "surrogate"),
])
def test_non_finite_huge_and_invalid_unicode_values_are_refused(tmp_path, text, words):
    write(tmp_path, text)
    assert words in refused(tmp_path).message


def test_a_lone_surrogate_in_a_key_path_is_named(tmp_path):
    write(tmp_path, json.dumps(mutate(status="error", error="x \udfff")))
    assert refused(tmp_path).problems[0].key == "error"


def test_result_json_that_is_a_directory_or_symlink_is_refused(tmp_path):
    (tmp_path / "result.json").mkdir()
    assert "regular file" in refused(tmp_path).message
    other = tmp_path / "other"
    other.mkdir()
    (other / "real.json").write_text(json.dumps(good_result()))
    (other / "result.json").symlink_to(other / "real.json")
    assert "regular file" in refused(other).message


def test_a_fifo_named_result_json_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "result.json")  # no writer ever opens it: a blocking open would wait forever
    assert "regular file" in refused(tmp_path).message


def test_a_fifo_output_is_refused(tmp_path):
    write(tmp_path, good_result(), npy=False)
    os.mkfifo(tmp_path / "out_y.npy")
    err = refused(tmp_path)
    assert err.problems[0].key == "outputs.y" and "regular file" in err.message


def test_outputs_sharing_one_file_are_refused(tmp_path):
    names = {f"y{i}": "out_y.npy" for i in range(64)}
    write(tmp_path, mutate(outputs=names))
    assert "one file each" in refused(tmp_path).message


def test_an_npz_named_npy_is_refused(tmp_path):
    write(tmp_path, good_result(), npy=False)
    buffer = io.BytesIO()
    np.savez(buffer, y=np.arange(4, dtype=np.float32))
    (tmp_path / "out_y.npy").write_bytes(buffer.getvalue())
    assert zipfile.is_zipfile(tmp_path / "out_y.npy")
    assert "zip archive" in refused(tmp_path, load=True).message


def test_an_npy_header_claiming_terabytes_is_refused_before_reading(tmp_path):
    write(tmp_path, good_result(), npy=False)
    header = {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20, 4)}  # 14.6 TiB of float32
    with (tmp_path / "out_y.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    assert "header claims" in refused(tmp_path, load=True).message


def test_an_npy_header_disagreeing_with_the_file_size_is_refused(tmp_path):
    write(tmp_path, good_result())
    with (tmp_path / "out_y.npy").open("ab") as f:
        f.write(b"\0" * 8)  # 4 float32 declared, 6 held
    assert "the file holds" in refused(tmp_path, load=True).message


def test_an_object_array_header_is_refused(tmp_path):
    write(tmp_path, good_result(), npy=False)
    with (tmp_path / "out_y.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        f.write(b"\0" * 8)
    assert "plain numeric" in refused(tmp_path, load=True).message


def test_a_fortran_ordered_npy_loads_with_its_values(tmp_path):
    write(tmp_path, good_result(), npy=False)
    array = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.save(tmp_path / "out_y.npy", array)
    loaded = load_outputs(tmp_path, read_result(tmp_path, job_id="run/0001"))["y"]
    assert loaded.tolist() == array.tolist()


def test_hundreds_of_thousands_of_schema_errors_stop_at_twenty(tmp_path):
    """400k bad latencies: the first 20 problems are kept; the validator is not asked for the rest."""
    doc = mutate(latencies_ms=[-1.0] * 99_999 + [1.0])
    doc["memory"]["samples"] = [[-1.0, -1.0]] * 150_000
    write(tmp_path, doc)
    err = refused(tmp_path)
    assert len(err.problems) == 20 and all(p.key.startswith(("latencies_ms.", "memory.")) for p in err.problems)
